// The two processes of the HTTP feed fault test (http-feed.fault.ts), which SIGKILLs both mid-stream.
// They run the built adapter (dist), each on its own SQLite file, as two services would.
//
//   node child.mjs producer   serves the feed of FAULT_TOPIC on 127.0.0.1:FAULT_PORT/feeds from the
//                             store FAULT_STORE, and publishes on command: stdin `publish FROM TO`
//                             appends events FROM…TO-1 in one batch (id `ev-N`, so a batch sent again
//                             after a crash is not appended twice; subject and key `sN%SUBJECTS`) and
//                             answers `p TO` once the batch has committed. Writes `ready` when serving.
//   node child.mjs consumer   polls FAULT_FEED_URL for FAULT_TOPIC (subscription `fault`), its position
//                             and pending rows in FAULT_STORE; writes `r N` when a handler starts on
//                             event N and `h N` when it has handled it (stdout to a pipe is synchronous
//                             on Linux: the line is out before the ack), `ready` once consuming.
//                             After stdin `hold`, handlers started from then on never finish (the
//                             test kills the process holding them).
//
// Both end cleanly on SIGTERM.
import { createInterface } from "node:readline";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { HttpFeedTransport } from "@switchyard/http-feed";

const { Ping } = messages;
const role = process.argv[2];
const topic = process.env.FAULT_TOPIC;
const store = process.env.FAULT_STORE;
const subjects = Number(process.env.FAULT_SUBJECTS ?? 10);
let bus;

if (role === "producer") {
  bus = createBus({
    transport: new HttpFeedTransport({
      store,
      serve: { host: "127.0.0.1", port: Number(process.env.FAULT_PORT), basePath: "/feeds" },
    }),
    source: "fault-producer",
  });
  await bus.ensure([{ kind: "topic", name: topic }]);
  const commands = createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  commands.on("line", (line) => {
    const [what, from, to] = line.split(" ");
    if (what !== "publish") return;
    queue = queue.then(async () => {
      const items = [];
      for (let n = Number(from); n < Number(to); n++) {
        const subject = `s${n % subjects}`;
        items.push({ data: { n }, options: { id: `ev-${n}`, subject, key: subject } });
      }
      await bus.publishBatch(topic, Ping, items);
      process.stdout.write(`p ${to}\n`);
    });
  });
} else if (role === "consumer") {
  let hold = false;
  createInterface({ input: process.stdin }).on("line", (line) => {
    if (line === "hold") {
      hold = true;
      process.stdout.write("holding\n"); // every handler started after this line never finishes
    }
  });
  bus = createBus({
    transport: new HttpFeedTransport({
      store,
      feedUrl: process.env.FAULT_FEED_URL,
      // Short: a feed server that comes back is polled again soon, and what the killed consumer
      // held (leased) is handed out again within seconds, and the poller lease it held lapses as soon.
      pollTimeoutMs: 1000,
      leaseMs: 1500,
      readerLeaseMs: 1500,
      pageSize: 200,
    }),
    source: "fault-consumer",
  });
  await bus
    .subscribe(topic, "fault")
    .on(Ping, async (msg) => {
      process.stdout.write(`r ${msg.data.n}\n`);
      // A handler that takes a moment; after `hold`, one that never ends.
      await new Promise((resolve) => (hold ? undefined : setTimeout(resolve, 1)));
      process.stdout.write(`h ${msg.data.n}\n`);
    })
    .start({ concurrency: 16 });
} else {
  throw new Error(`child.mjs: unknown role ${role}`);
}
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  bus.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
