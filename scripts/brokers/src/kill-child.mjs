// The processes of the kill fault case (processKillCase in fault.ts), which SIGKILLs one of them
// mid-stream. Spawned with the parent's Node, cwd the adapter's folder: @switchyard/core and the
// adapter (through the URL's scheme) are resolved from there, built (dist), as an application would.
// Lines on stdout (to a pipe they are written synchronously on Linux: a line is out before the next
// step, e.g. before the ack):
//
//   node kill-child.mjs producer   stdin `publish FROM TO` publishes messages FROM…TO-1 in batches of
//                                  FAULT_BATCH, one batch at a time; writes `s A B` before a batch's
//                                  publish, `p A B` once it resolved, `f A B ERROR` when it rejected (it
//                                  is sent again 500 ms later), `done TO` after the last.
//   node kill-child.mjs consumer   handles the target; writes `r N G A` when a handler starts on message
//                                  N published by producer generation G, delivered for the A-th time
//                                  (the delivery attempt), `h N G A` when it has handled it,
//                                  `x WHAT` for anything that is not a whole message of the stream (a
//                                  dead letter, a skipped or foreign message, a body that is not N's).
//                                  After stdin `hold` (answered `holding`), handlers started from then
//                                  on never finish, so the test kills a process that holds messages.
//
// Both write `ready ORDERING` (the transport's ordering capability) once connected (the consumer: once
// it receives), and end cleanly on SIGTERM. Each message: id `FAULT_RUN-N`, key `kN%FAULT_KEYS`,
// source `fault-producer-G`, data `{ n, text }` with a text made from N, so a torn body shows.
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const require = createRequire(join(process.cwd(), "noop.js"));
const { createBus, defineMessage } = await import(pathToFileURL(require.resolve("@switchyard/core")).href);

const env = process.env;
const role = process.argv[2];
const target = JSON.parse(env.FAULT_TARGET);
const keys = Number(env.FAULT_KEYS ?? 16);
const out = (line) => process.stdout.write(`${line}\n`);

/** What message N's text must be: ~200 bytes that depend on N, so a mixed-up or cut body fails. */
const textOf = (n) => `${n}:`.padEnd(200, `${(n * 7919) % 10007}.`);

// A Standard Schema validator without a library: the children load only the core and the adapter.
const PingSchema = {
  "~standard": {
    version: 1,
    vendor: "switchyard-fault",
    validate: (value) =>
      value !== null &&
      typeof value === "object" &&
      Number.isInteger(value.n) &&
      typeof value.text === "string"
        ? { value }
        : { issues: [{ message: "not a fault-stream message" }] },
  },
};
const Ping = defineMessage({ type: "fault.ping", versions: { 1: PingSchema } });

const bus = createBus({
  url: env.FAULT_URL,
  adapterOptions: JSON.parse(env.FAULT_ADAPTER_OPTIONS ?? "{}"),
  source: `fault-${role}-${env.FAULT_GENERATION ?? 1}`,
  hooks: {
    onDeadLetter: (event) => out(`x dead-letter ${event.reason} ${event.envelope?.id ?? "?"}`),
    onSkip: (event) => out(`x skip ${event.why} ${event.envelope.id}`),
  },
});

if (role === "producer") {
  const batch = Number(env.FAULT_BATCH ?? 100);
  const publish = (numbers) => {
    const items = numbers.map((n) => ({
      data: { n, text: textOf(n) },
      options: { id: `${env.FAULT_RUN}-${n}`, key: `k${n % keys}` },
    }));
    return target.kind === "queue"
      ? bus.sendBatch(target.name, Ping, items)
      : bus.publishBatch(target.name, Ping, items);
  };
  let queue = Promise.resolve();
  createInterface({ input: process.stdin }).on("line", (line) => {
    const [what, from, to] = line.split(" ");
    if (what !== "publish") return;
    queue = queue.then(async () => {
      for (let a = Number(from); a < Number(to); a += batch) {
        const b = Math.min(a + batch, Number(to));
        const numbers = Array.from({ length: b - a }, (_, i) => a + i);
        for (;;) {
          out(`s ${a} ${b}`);
          try {
            await publish(numbers);
            out(`p ${a} ${b}`);
            break;
          } catch (error) {
            out(`f ${a} ${b} ${String(error).replaceAll("\n", " ").slice(0, 200)}`);
            await new Promise((resolve) => setTimeout(resolve, 500));
          }
        }
      }
      out(`done ${to}`);
    });
  });
  await bus.transport();
} else if (role === "consumer") {
  const handlerMs = Number(env.FAULT_HANDLER_MS ?? 5);
  let hold = false;
  createInterface({ input: process.stdin }).on("line", (line) => {
    if (line !== "hold") return;
    hold = true;
    out("holding"); // every handler started after this line never finishes: the process dies holding them
  });
  const builder =
    target.kind === "queue" ? bus.consume(target.name) : bus.subscribe(target.name, target.subscription);
  await builder
    .on(Ping, async (msg, ctx) => {
      const { n } = msg.data;
      const generation = msg.source.slice(msg.source.lastIndexOf("-") + 1);
      if (msg.data.text !== textOf(n) || msg.id !== `${env.FAULT_RUN}-${n}`) out(`x torn ${msg.id}`);
      out(`r ${n} ${generation} ${ctx.attempt}`);
      // A handler that takes a moment; after `hold`, one that never ends.
      await new Promise((resolve) => (hold ? undefined : setTimeout(resolve, handlerMs)));
      out(`h ${n} ${generation} ${ctx.attempt}`);
    })
    .onAny(async (msg) => out(`x foreign ${msg.id}`), { foreign: true })
    .start({ concurrency: Number(env.FAULT_CONCURRENCY ?? 32) });
} else {
  throw new Error(`kill-child.mjs: unknown role ${role}`);
}
out(`ready ${(await bus.capabilities()).ordering}`);
process.on("SIGTERM", () => {
  bus.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
