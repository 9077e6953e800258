// Reproduction without Switchyard (the raw @google-cloud/pubsub client) of the emulator behaviour
// behind the Pub/Sub fault tests' losses (README, "Dead streams"): the emulator keeps delivering to
// the StreamingPull stream of a process that was SIGKILLed, until that stream's deadline (the
// client's: 30 minutes). A consumer process receives and acks 100 messages and is SIGKILLed (or, with
// `term`, closed cleanly) while idle; a new subscriber then receives 2,000 messages published after
// it opened. Prints the delivery attempt each message first arrived with, the messages the emulator
// dead-lettered (maxDeliveryAttempts 5) that the new subscriber never received, and those never seen.
//
//   node fault/emulator-dead-stream.mjs [kill|term] [ordering 0|1] [streams]
//   node fault/emulator-dead-stream.mjs order [runs]   (the consumer-kill shape with ordering keys, below)
//   env: PUBSUB_EMULATOR_HOST (127.0.0.1:8085), STREAM_DEADLINE_MS (each StreamingPull's deadline,
//   for both consumers), DELAY_MS (from the new subscriber's start to the first publish, 2,000),
//   MAX_ATTEMPTS (the dead-letter policy's, 5), DEBUG_RAW=1 (the client's stream events).
//
// Creates its own topics and subscriptions on the emulator and deletes them at the end.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { PubSub } from "@google-cloud/pubsub";

process.env.METADATA_SERVER_DETECTION = "none";
const emulator = process.env.PUBSUB_EMULATOR_HOST ?? "127.0.0.1:8085";
const numberOf = (m) => Number(m.data.toString().split(".")[0]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** STREAM_DEADLINE_MS: the deadline of each StreamingPull call (the client's own is 30 minutes). */
function shortStreams(consumer) {
  const ms = Number(process.env.STREAM_DEADLINE_MS ?? 0);
  if (!ms) return consumer;
  const subscriber = consumer._subscriber;
  const getClient = subscriber.getClient.bind(subscriber);
  subscriber.getClient = async () => {
    const client = await getClient();
    if (!client.shortStreams) {
      client.shortStreams = true;
      await client.initialize();
      client.subscriberStub = client.subscriberStub.then((stub) => {
        const streamingPull = stub.streamingPull.bind(stub);
        stub.streamingPull = (options) => streamingPull({ ...options, deadline: Date.now() + ms });
        return stub;
      });
    }
    return client;
  };
  return consumer;
}

if (process.argv[2] === "child") {
  const pubsub = new PubSub({ projectId: "switchyard-repro", apiEndpoint: emulator });
  const consumer = shortStreams(
    pubsub.subscription(process.argv[3], { streamingOptions: { maxStreams: Number(process.argv[4]) } }),
  );
  consumer.on("message", (m) => {
    m.ack();
    process.stdout.write(`r ${numberOf(m)}\n`);
  });
  process.on("SIGTERM", () => consumer.close().then(() => process.exit(0)));
} else if (process.argv[2] === "order-child") {
  orderChild(process.argv[3]);
} else if (process.argv[2] === "order") {
  const runs = Number(process.argv[3] ?? 1);
  for (let i = 0; i < runs; i++) console.log(JSON.stringify(await orderRun()));
} else {
  const how = process.argv[2] ?? "kill";
  const ordering = Number(process.argv[3] ?? 0);
  const streams = Number(process.argv[4] ?? 1);
  const run = `raw-${Math.random().toString(36).slice(2, 8)}`;
  const pubsub = new PubSub({ projectId: "switchyard-repro", apiEndpoint: emulator });
  const [topic] = await pubsub.createTopic(`${run}-t`);
  const [dlTopic] = await pubsub.createTopic(`${run}-dl`);
  const [dlSub] = await dlTopic.createSubscription(`${run}-dl`);
  const [sub] = await topic.createSubscription(`${run}-s`, {
    ackDeadlineSeconds: 10,
    enableMessageOrdering: ordering === 1,
    deadLetterPolicy: {
      deadLetterTopic: dlTopic.name,
      maxDeliveryAttempts: Number(process.env.MAX_ATTEMPTS ?? 5),
    },
  });
  const deadLettered = new Set();
  dlSub.on("message", (m) => {
    deadLettered.add(numberOf(m));
    m.ack();
  });
  const publisher = pubsub.topic(`${run}-t`, { messageOrdering: ordering === 1 });
  const publish = (from, count) =>
    Promise.all(
      Array.from({ length: count }, (_, i) =>
        publisher.publishMessage({
          data: Buffer.from(String(from + i).padEnd(200, ".")),
          ...(ordering === 1 ? { orderingKey: `k${(from + i) % 16}` } : {}),
        }),
      ),
    );
  // The first consumer: receives and acks 100 messages, then is killed (or closed) while idle.
  const child = spawn(process.execPath, [process.argv[1], "child", `${run}-s`, streams], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let firstReceived = 0;
  const firstDone = new Promise((resolve) =>
    createInterface({ input: child.stdout }).on("line", () => ++firstReceived === 100 && resolve()),
  );
  await sleep(1000);
  await publish(100_000, 100);
  await firstDone;
  await sleep(500);
  child.kill(how === "term" ? "SIGTERM" : "SIGKILL");
  await new Promise((resolve) => child.on("exit", resolve));
  // The new subscriber.
  const firstAttempt = new Map();
  const consumer = shortStreams(
    pubsub.subscription(`${run}-s`, { streamingOptions: { maxStreams: streams } }),
  );
  consumer.on("debug", (d) => process.env.DEBUG_RAW && console.error(`debug ${d.message}`));
  consumer.on("error", (e) => console.error(`error ${e.code} ${e.message.split("\n")[0]}`));
  consumer.on("message", (m) => {
    const n = numberOf(m);
    if (!firstAttempt.has(n)) firstAttempt.set(n, m.deliveryAttempt);
    m.ack();
  });
  await sleep(Number(process.env.DELAY_MS ?? 2000));
  const started = Date.now();
  for (let a = 0; a < 2000; a += 100) {
    await publish(a, 100);
    await sleep(250);
  }
  while (firstAttempt.size + deadLettered.size < 2000 && Date.now() - started < 90_000) await sleep(200);
  await sleep(1000);
  const attempts = {};
  for (const a of firstAttempt.values()) attempts[a] = (attempts[a] ?? 0) + 1;
  const lost = [...deadLettered].filter((n) => !firstAttempt.has(n));
  console.log(
    JSON.stringify({
      how,
      ordering,
      streams,
      received: firstAttempt.size,
      firstAttempts: attempts,
      deadLetteredNeverReceived: lost.length,
      missing: 2000 - firstAttempt.size - lost.length,
      seconds: (Date.now() - started) / 1000,
    }),
  );
  await consumer.close();
  await dlSub.close();
  for (const s of [sub, dlSub]) await s.delete();
  for (const t of [topic, dlTopic]) await t.delete();
  await pubsub.close();
}

// The consumer-kill fault test's shape (fault/pubsub-kill-consumer.fault.ts) with the raw client: 10,000
// messages on 16 ordering keys (kN%16) published in batches of 100, one batch at a time, to an ordered
// subscription (ack deadline 10 s, dead-letter policy after 5 attempts). A consumer process handles
// them like an application would: 32 handlers at a time, one at a time per key in receipt order, 5 ms
// each, ack when done (so acks go out in receipt order per key). Once it handled 3,000 its handlers stop
// finishing, and it is SIGKILLed as the next one starts (it dies holding messages); a new consumer
// process takes over. An order break: the first handling of a message after a later one of its key was
// handled (across both processes, as the fault test counts them). Prints one JSON line per run.
//   env: FLOW=hold (default: the client's flow control off and 32 handlers kept by the app, as the
//   adapter does on the emulator) or FLOW=pause (the client's flow control at 32: the stream pauses);
//   STREAM_DEADLINE_MS (20,000 by default here, the adapter's on the emulator); STREAMS (StreamingPull
//   streams per consumer: 1 by default here, as the adapter's `maxStreams`; the client's default is 5);
//   PUBLISH_DELAY_MS (from the first consumer's start to the first publish: moves the kill later in
//   the life of its stream).

/** The consumer processes of `order`: lines `a N ATTEMPT` (arrived), `r N` (handler started), `h N` (acked). */
function orderChild(subscription) {
  const hold = process.env.FLOW !== "pause";
  const pubsub = new PubSub({ projectId: "switchyard-repro", apiEndpoint: emulator });
  process.env.STREAM_DEADLINE_MS ??= "20000";
  const consumer = shortStreams(
    pubsub.subscription(subscription, {
      flowControl: hold
        ? { maxMessages: 100_000, maxBytes: 1024 ** 3, allowExcessMessages: false }
        : { maxMessages: 32, allowExcessMessages: false },
      streamingOptions: { maxStreams: Number(process.env.STREAMS ?? 1) },
    }),
  );
  const out = (line) => process.stdout.write(`${line}\n`);
  const waiting = new Map(); // per key, messages received and not started, in receipt order
  const busy = new Set(); // keys with a handler running
  let running = 0;
  let holding = false;
  const pump = () => {
    for (const [key, queue] of waiting) {
      if (running >= 32) return;
      if (busy.has(key) || queue.length === 0) continue;
      const m = queue.shift();
      busy.add(key);
      running++;
      out(`r ${numberOf(m)}`);
      if (holding) continue; // never finishes: the process dies holding it
      setTimeout(() => {
        m.ack();
        out(`h ${numberOf(m)}`);
        busy.delete(key);
        running--;
        pump();
      }, 5);
    }
  };
  consumer.on("error", (e) => console.error(`error ${e.code} ${e.message.split("\n")[0]}`));
  consumer.on("message", (m) => {
    out(`a ${numberOf(m)} ${m.deliveryAttempt}`);
    const queue = waiting.get(m.orderingKey);
    if (queue) queue.push(m);
    else waiting.set(m.orderingKey, [m]);
    pump();
  });
  createInterface({ input: process.stdin }).on("line", (line) => {
    if (line !== "hold") return;
    holding = true;
    out("holding");
  });
  process.on("SIGTERM", () => consumer.close().then(() => process.exit(0)));
  // Ready once the stream is open (as the adapter's subscribe()).
  const ready = setInterval(() => {
    const streams = consumer._subscriber._stream?._streams;
    if (streams?.length > 0 && streams.every((s) => s.stream)) {
      clearInterval(ready);
      out("ready");
    }
  }, 5);
}

async function orderRun() {
  const total = 10_000;
  const keys = 16;
  const run = `raw-${Math.random().toString(36).slice(2, 8)}`;
  const pubsub = new PubSub({ projectId: "switchyard-repro", apiEndpoint: emulator });
  const [topic] = await pubsub.createTopic(`${run}-t`);
  const [dlTopic] = await pubsub.createTopic(`${run}-dl`);
  const [dlSub] = await dlTopic.createSubscription(`${run}-dl`);
  const [sub] = await topic.createSubscription(`${run}-s`, {
    ackDeadlineSeconds: 10,
    enableMessageOrdering: true,
    deadLetterPolicy: { deadLetterTopic: dlTopic.name, maxDeliveryAttempts: 5 },
  });
  const deadLettered = new Set();
  dlSub.on("message", (m) => {
    deadLettered.add(numberOf(m));
    m.ack();
  });
  const started = Date.now();
  const handled = new Set();
  let calls = 0;
  const highestByKey = new Map();
  /** Per key: per delivery attempt, the highest number first handled at that attempt. */
  const highestByKeyAttempt = new Map();
  let breaksNotByFewerAttempts = 0;
  /** Each break: the message, the higher one of its key handled before it, how it arrived. */
  const breaks = [];
  const consumers = [];
  const startConsumer = (generation) => {
    const c = {
      generation,
      child: spawn(process.execPath, [process.argv[1], "order-child", `${run}-s`], {
        stdio: ["pipe", "pipe", "inherit"],
      }),
      arrived: new Map(), // number -> attempts it arrived with, in order
      handled: new Set(),
      holding: false,
      onLine: undefined,
    };
    c.ready = new Promise((resolve) =>
      createInterface({ input: c.child.stdout }).on("line", (line) => {
        const [what, value, attempt] = line.split(" ");
        const n = Number(value);
        if (what === "ready") return resolve();
        if (what === "holding") c.holding = true;
        if (what === "a") c.arrived.set(n, [...(c.arrived.get(n) ?? []), Number(attempt)]);
        if (what === "h") {
          calls++;
          if (!handled.has(n)) {
            const highest = highestByKey.get(n % keys) ?? -1;
            const attempts = c.arrived.get(n);
            // Was n overtaken only by messages delivered fewer times than n (attempts[0])?
            const byAttempt = highestByKeyAttempt.get(n % keys) ?? new Map();
            highestByKeyAttempt.set(n % keys, byAttempt);
            let overtakenBySame = false;
            for (const [attempt, m] of byAttempt) if (attempt >= attempts[0] && m > n) overtakenBySame = true;
            if (overtakenBySame) breaksNotByFewerAttempts++;
            byAttempt.set(attempts[0], Math.max(n, byAttempt.get(attempts[0]) ?? -1));
            if (n < highest) {
              const heldByFirst = consumers[0].arrived.has(n);
              breaks.push({ n, after: highest, by: generation, attempts, heldByFirst });
            }
            highestByKey.set(n % keys, Math.max(n, highest));
          }
          handled.add(n);
          c.handled.add(n);
        }
        c.onLine?.(what, n);
      }),
    );
    c.exited = new Promise((resolve) => c.child.on("close", resolve));
    consumers.push(c);
    return c;
  };
  const first = startConsumer(1);
  await first.ready;
  const firstReadyAt = Date.now();
  await sleep(Number(process.env.PUBLISH_DELAY_MS ?? 0));
  const publisher = pubsub.topic(`${run}-t`, { messageOrdering: true });
  const publishedAt = [];
  const publishing = (async () => {
    for (let a = 0; a < total; a += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          publisher.publishMessage({
            data: Buffer.from(String(a + i).padEnd(200, ".")),
            orderingKey: `k${(a + i) % keys}`,
          }),
        ),
      );
      publishedAt.push(Date.now());
    }
  })();
  let killedAt = 0;
  await new Promise((resolve) => {
    first.onLine = (what) => {
      if (what === "h" && first.handled.size >= 3000 && !first.told) {
        first.told = true;
        first.child.stdin.write("hold\n");
      }
      if (what === "r" && first.holding && !killedAt) {
        killedAt = Date.now();
        first.child.kill("SIGKILL");
        resolve();
      }
    };
  });
  await first.exited;
  const heldAtKill = [...first.arrived.keys()].filter((n) => !first.handled.has(n));
  const second = startConsumer(2);
  await second.ready;
  const readyAt = Date.now();
  await publishing;
  const allPublishedAt = Date.now();
  while (handled.size < total && Date.now() - readyAt < 120_000) await sleep(200);
  await sleep(1000);
  second.child.kill("SIGTERM");
  await second.exited;
  const result = {
    flow: process.env.FLOW === "pause" ? "pause" : "hold",
    streams: Number(process.env.STREAMS ?? 1),
    handled: calls,
    distinct: handled.size,
    lost: total - handled.size,
    duplicates: calls - handled.size,
    deadLettered: deadLettered.size,
    killedAtHandled: first.handled.size,
    // How long the killed process's stream had lived (its first one; they last STREAM_DEADLINE_MS).
    killIntoStreamMs: (killedAt - firstReadyAt) % Number(process.env.STREAM_DEADLINE_MS ?? 20_000),
    receivedByKilled: first.arrived.size,
    heldAtKill: heldAtKill.length,
    publishedBeforeKill: publishedAt.filter((t) => t <= killedAt).length * 100,
    publishedInMs: allPublishedAt - started,
    orderBreaks: breaks.length,
    // Breaks where a message was overtaken by one of its key delivered as many times or more (the
    // emulator's breaks: overtaken only by messages delivered fewer times than it).
    breaksNotByFewerAttempts,
    breakKeys: new Set(breaks.map((b) => b.n % keys)).size,
    breaksHeldByKilled: breaks.filter((b) => b.heldByFirst).length,
    breaksFirstArrivedAtAttempt: breaks.reduce((counts, b) => {
      const a = b.attempts?.[0] ?? 0;
      counts[a] = (counts[a] ?? 0) + 1;
      return counts;
    }, {}),
    breakSamples: breaks.slice(0, 3).map((b) => `${b.n} after ${b.after} (attempts ${b.attempts})`),
    seconds: (Date.now() - started) / 1000,
  };
  await dlSub.close();
  for (const s of [sub, dlSub]) await s.delete();
  for (const t of [topic, dlTopic]) await t.delete();
  await pubsub.close();
  return result;
}
