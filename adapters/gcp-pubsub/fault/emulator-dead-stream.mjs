// Reproduction without Switchyard (the raw @google-cloud/pubsub client) of the emulator behaviour
// behind the Pub/Sub fault tests' losses (README, "Dead streams"): the emulator keeps delivering to
// the StreamingPull stream of a process that was SIGKILLed, until that stream's deadline (the
// client's: 30 minutes). A consumer process receives and acks 100 messages and is SIGKILLed (or, with
// `term`, closed cleanly) while idle; a new subscriber then receives 2,000 messages published after
// it opened. Prints the delivery attempt each message first arrived with, the messages the emulator
// dead-lettered (maxDeliveryAttempts 5) that the new subscriber never received, and those never seen.
//
//   node fault/emulator-dead-stream.mjs [kill|term] [ordering 0|1] [streams]
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
