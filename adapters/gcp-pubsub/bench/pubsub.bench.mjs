// `pnpm bench pubsub [--quick]`: raw @google-cloud/pubsub against Switchyard on the same emulator
// (PUBSUB_EMULATOR_HOST or 127.0.0.1:8085), in one run, 1 KiB messages:
//   publish/s  N messages, 500 publishes in flight; both go through `topic.publishMessage` with the
//              client's default batching (Switchyard's adapter publishes that way). The raw side sends
//              1 KiB of data and no attributes; Switchyard adds its CloudEvents attributes (~7 `ce-`
//              attributes, ~250 bytes) to each message.
//              A second raw figure publishes with the same six attributes (throughputRatioSameAttributes).
//   consume/s  the backlog of N (2N for raw: both publish runs) read by a raw subscriber (flow control 100, counts and acks) vs a
//              Switchyard consumer (prefetch 100, concurrency 50: decode the envelope, run the handler,
//              ack). The body is opaque bytes on both sides, so there is no JSON decode to add to raw.
//   latency    p50/p99 publish-to-handler at a fixed rate (200 msg/s), one message per publish, on a
//              fresh topic and subscription on each side.
// Ends with one JSON line {"bench":"pubsub","throughputRatio":…,"consumeRatio":…,"p99DeltaMs":…}.
import { randomUUID } from "node:crypto";
import { PubSub } from "@google-cloud/pubsub";
import { BYTES_CONTENT_TYPE, createBus } from "@switchyard/core";
import { completion, paced, percentile, pool, sleep } from "../../../scripts/bench-kit.mjs";
import { createTransport } from "../dist/index.js";

const quick = process.argv.includes("--quick");
const emulator = process.env.PUBSUB_EMULATOR_HOST ?? "127.0.0.1:8085";
process.env.PUBSUB_EMULATOR_HOST = emulator;
process.env.METADATA_SERVER_DETECTION = "none";
const project = "switchyard-bench";
const N = quick ? 2_000 : 10_000;
const IN_FLIGHT = 500;
const WARMUP = 1_000; // published (untimed) before each publish run, consumed with the backlog
const RATE = 200;
const LATENCY_N = quick ? 400 : 1_500;
const body = Buffer.alloc(1024, 7);
const run = randomUUID().slice(0, 8);

async function raw() {
  const client = new PubSub({ projectId: project, apiEndpoint: emulator });
  const [topic] = await client.createTopic(`bench-raw-${run}`);
  const [subscription] = await topic.createSubscription(`bench-raw-${run}`, { ackDeadlineSeconds: 60 });
  await pool(WARMUP, IN_FLIGHT, () => topic.publishMessage({ data: body }));
  let t = performance.now();
  await pool(N, IN_FLIGHT, () => topic.publishMessage({ data: body }));
  const publishRate = N / ((performance.now() - t) / 1000);
  // The same, carrying the six CloudEvents attributes Switchyard sends (fresh id and time each).
  t = performance.now();
  await pool(N, IN_FLIGHT, () =>
    topic.publishMessage({
      data: body,
      attributes: {
        "ce-id": randomUUID(),
        "ce-type": "bench.bytes",
        "ce-source": "bench",
        "ce-specversion": "1.0",
        "ce-time": new Date().toISOString(),
        "ce-datacontenttype": BYTES_CONTENT_TYPE,
      },
    }),
  );
  const publishAttrRate = N / ((performance.now() - t) / 1000);

  const backlog = completion("raw consume", () => got);
  let got = 0;
  const sub = client.subscription(subscription.name, {
    flowControl: { maxMessages: 100, allowExcessMessages: false },
  });
  const onMessage = (m) => {
    m.ack();
    if (++got === 2 * N + WARMUP) backlog.done();
  };
  sub.on("message", (m) => onMessage(m));
  t = performance.now();
  await backlog.promise;
  const consumeRate = (2 * N + WARMUP) / ((performance.now() - t) / 1000);

  await sub.close();

  // latency: a fresh topic and subscription, so nothing of the backlog is in the way
  const [latTopic] = await client.createTopic(`bench-raw-lat-${run}`);
  const [latSubscription] = await latTopic.createSubscription(`bench-raw-lat-${run}`, {
    ackDeadlineSeconds: 60,
  });
  const latencies = [];
  const latency = completion("raw latency", () => latencies.length);
  const latSub = client.subscription(latSubscription.name, {
    flowControl: { maxMessages: 100, allowExcessMessages: false },
  });
  latSub.on("message", (m) => {
    m.ack();
    latencies.push(performance.now() - Number(m.attributes.sent));
    if (latencies.length === LATENCY_N) latency.done();
  });
  await sleep(500); // the streaming pull opens
  await paced(LATENCY_N, RATE, () =>
    latTopic.publishMessage({ data: body, attributes: { sent: String(performance.now()) } }),
  );
  await latency.promise;
  await latSub.close();
  for (const x of [subscription, topic, latSubscription, latTopic]) await x.delete().catch(() => {});
  await client.close();
  return {
    publishRate,
    publishAttrRate,
    consumeRate,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

async function switchyard() {
  const bus = createBus({
    transport: createTransport(new URL(`pubsub://${project}?emulator=${emulator}&prefix=bench${run}`)),
    source: "bench",
  });
  const queue = "q";
  await bus.ensure([{ kind: "queue", name: queue }]);
  const message = (headers = {}) => ({
    type: "bench.bytes",
    dataContentType: BYTES_CONTENT_TYPE,
    data: body,
    headers,
  });
  await pool(WARMUP, IN_FLIGHT, () => bus.publishRaw({ kind: "queue", name: queue }, message()));
  let t = performance.now();
  await pool(N, IN_FLIGHT, () => bus.publishRaw({ kind: "queue", name: queue }, message()));
  const publishRate = N / ((performance.now() - t) / 1000);

  const backlog = completion("switchyard consume", () => got);
  let got = 0;
  t = performance.now();
  const consumer = await bus
    .consume(queue)
    .onAny(async () => {
      if (++got === N + WARMUP) backlog.done();
    })
    .start({ concurrency: 50, prefetch: 100 });
  await backlog.promise;
  const consumeRate = (N + WARMUP) / ((performance.now() - t) / 1000);
  await consumer.stop();

  // latency: a second queue (topic and subscription), so nothing of the backlog is in the way
  const latQueue = "lat";
  await bus.ensure([{ kind: "queue", name: latQueue }]);
  const latencies = [];
  const latency = completion("switchyard latency", () => latencies.length);
  const latencyConsumer = await bus
    .consume(latQueue)
    .onAny(async (msg) => {
      latencies.push(performance.now() - Number(msg.headers.sent));
      if (latencies.length === LATENCY_N) latency.done();
    })
    .start({ concurrency: 50, prefetch: 100 });
  await paced(LATENCY_N, RATE, () =>
    bus.publishRaw({ kind: "queue", name: latQueue }, message({ sent: String(performance.now()) })),
  );
  await latency.promise;
  await latencyConsumer.stop();
  await bus.close();
  // Clean up the bench's topic and subscription.
  const client = new PubSub({ projectId: project, apiEndpoint: emulator });
  const [subs] = await client.getSubscriptions();
  for (const s of subs) if (s.name.includes(`bench${run}`)) await s.delete().catch(() => {});
  const [topics] = await client.getTopics();
  for (const tp of topics) if (tp.name.includes(`bench${run}`)) await tp.delete().catch(() => {});
  await client.close();
  return { publishRate, consumeRate, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

const r = await raw();
const s = await switchyard();
const round = (x) => Math.round(x * 100) / 100;
console.log(`raw publish with Switchyard's six ce- attributes: ${Math.round(r.publishAttrRate)} publishes/s`);
for (const [label, x] of [
  ["raw @google-cloud/pubsub", r],
  ["switchyard              ", s],
]) {
  console.log(
    `${label}: ${Math.round(x.publishRate)} publishes/s, ${Math.round(x.consumeRate)} receive+ack/s, p50 ${round(x.p50)} ms, p99 ${round(x.p99)} ms`,
  );
}
console.log(
  JSON.stringify({
    bench: "pubsub",
    messages: N,
    rawPublishPerSec: Math.round(r.publishRate),
    rawPublishWithAttributesPerSec: Math.round(r.publishAttrRate),
    publishPerSec: Math.round(s.publishRate),
    throughputRatio: round(s.publishRate / r.publishRate),
    throughputRatioSameAttributes: round(s.publishRate / r.publishAttrRate),
    rawConsumePerSec: Math.round(r.consumeRate),
    consumePerSec: Math.round(s.consumeRate),
    consumeRatio: round(s.consumeRate / r.consumeRate),
    rawP50Ms: round(r.p50),
    rawP99Ms: round(r.p99),
    p50Ms: round(s.p50),
    p99Ms: round(s.p99),
    p99DeltaMs: round(s.p99 - r.p99),
  }),
);
process.exit(0);
