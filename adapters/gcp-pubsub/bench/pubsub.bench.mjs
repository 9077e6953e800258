// `pnpm bench pubsub [--quick]`: raw @google-cloud/pubsub against Switchyard on the same emulator
// (PUBSUB_EMULATOR_HOST or 127.0.0.1:8085), in one run, 1 KiB messages:
//   publish/s  N messages, 500 publishes in flight, through `topic.publishMessage` with the client's
//              default batching on both sides, to topics without subscriptions. Three sides take
//              turns for ROUNDS rounds (the machine is shared, so one pass each is mostly noise):
//              raw without attributes, raw with the six `ce-` attributes Switchyard sends, and
//              Switchyard (`bus.publishRaw`, ~7 `ce-` attributes). Reported: the median rate of each
//              side, and the bench process's CPU time per message (median), steadier than rates.
//   consume/s  a backlog of N + warm-up, published untimed on each side, read by a raw subscriber
//              (flow control 100, counts and acks) vs a Switchyard consumer (prefetch 100,
//              concurrency 50: decode the envelope, run the handler, ack). The body is opaque bytes
//              on both sides, so there is no JSON decode to add to raw.
//   latency    p50/p99 publish-to-handler at a fixed rate (200 msg/s), one message per publish, on a
//              fresh topic and subscription on each side.
// Ends with one JSON line {"bench":"pubsub","throughputRatio":…,"consumeRatio":…,"p99DeltaMs":…}.
import { randomUUID } from "node:crypto";
import { PubSub } from "@google-cloud/pubsub";
import { BYTES_CONTENT_TYPE, createBus } from "@switchyard/core";
import { completion, median, paced, percentile, pool, sleep } from "../../../scripts/bench-kit.mjs";
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
const ROUNDS = quick ? 1 : 3;
const LATENCY_N = quick ? 400 : 1_500;
const body = Buffer.alloc(1024, 7);
const run = randomUUID().slice(0, 8);

const attributes = () => ({
  "ce-id": randomUUID(),
  "ce-type": "bench.bytes",
  "ce-source": "bench",
  "ce-specversion": "1.0",
  "ce-time": new Date().toISOString(),
  "ce-datacontenttype": BYTES_CONTENT_TYPE,
});

/** One timed publish run: messages per second and the process's CPU µs per message. */
async function timed(send) {
  const cpu = process.cpuUsage();
  const t = performance.now();
  await pool(N, IN_FLIGHT, send);
  const rate = N / ((performance.now() - t) / 1000);
  const used = process.cpuUsage(cpu);
  return { rate, cpuUs: (used.user + used.system) / N };
}

/** Publish: the three sides take turns, ROUNDS times, each to a topic without subscriptions. */
async function publishRounds() {
  const client = new PubSub({ projectId: project, apiEndpoint: emulator });
  const [topic] = await client.createTopic(`bench-raw-pub-${run}`);
  const bus = createBus({
    transport: createTransport(new URL(`pubsub://${project}?emulator=${emulator}&prefix=bench${run}`)),
    source: "bench",
  });
  const destination = { kind: "topic", name: "pub" };
  await bus.ensure([{ kind: "topic", name: "pub" }]);
  const sides = {
    raw: () => topic.publishMessage({ data: body }),
    rawAttributes: () => topic.publishMessage({ data: body, attributes: attributes() }),
    switchyard: () =>
      bus.publishRaw(destination, { type: "bench.bytes", dataContentType: BYTES_CONTENT_TYPE, data: body }),
  };
  for (const send of Object.values(sides)) await pool(WARMUP, IN_FLIGHT, send);
  const runs = { raw: [], rawAttributes: [], switchyard: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [side, send] of Object.entries(sides)) runs[side].push(await timed(send));
  }
  await bus.close();
  await topic.delete().catch(() => {});
  await client.close();
  const summary = {};
  for (const [side, list] of Object.entries(runs)) {
    summary[side] = {
      rate: median(list.map((r) => r.rate)),
      cpuUs: median(list.map((r) => r.cpuUs)),
      rates: list.map((r) => Math.round(r.rate)),
    };
  }
  return summary;
}

async function raw() {
  const client = new PubSub({ projectId: project, apiEndpoint: emulator });
  const [topic] = await client.createTopic(`bench-raw-${run}`);
  const [subscription] = await topic.createSubscription(`bench-raw-${run}`, { ackDeadlineSeconds: 60 });
  await pool(N + WARMUP, IN_FLIGHT, () => topic.publishMessage({ data: body }));
  const backlog = completion("raw consume", () => got);
  let got = 0;
  const sub = client.subscription(subscription.name, {
    flowControl: { maxMessages: 100, allowExcessMessages: false },
  });
  const onMessage = (m) => {
    m.ack();
    if (++got === N + WARMUP) backlog.done();
  };
  sub.on("message", (m) => onMessage(m));
  const t = performance.now();
  await backlog.promise;
  const consumeRate = (N + WARMUP) / ((performance.now() - t) / 1000);

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
  await pool(N + WARMUP, IN_FLIGHT, () => bus.publishRaw({ kind: "queue", name: queue }, message()));
  const backlog = completion("switchyard consume", () => got);
  let got = 0;
  const t = performance.now();
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
  return { consumeRate, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

const load = (await import("node:os")).loadavg()[0];
const p = await publishRounds();
const r = await raw();
const s = await switchyard();
const round = (x) => Math.round(x * 100) / 100;
console.log(
  `publish (median of ${ROUNDS}): raw ${Math.round(p.raw.rate)}/s (${round(p.raw.cpuUs)} µs CPU/msg), raw with the six ce- attributes ${Math.round(p.rawAttributes.rate)}/s (${round(p.rawAttributes.cpuUs)} µs), switchyard ${Math.round(p.switchyard.rate)}/s (${round(p.switchyard.cpuUs)} µs); rates per round ${JSON.stringify({ raw: p.raw.rates, rawAttributes: p.rawAttributes.rates, switchyard: p.switchyard.rates })}`,
);
for (const [label, x] of [
  ["raw @google-cloud/pubsub", r],
  ["switchyard              ", s],
]) {
  console.log(
    `${label}: ${Math.round(x.consumeRate)} receive+ack/s, p50 ${round(x.p50)} ms, p99 ${round(x.p99)} ms`,
  );
}
console.log(
  JSON.stringify({
    bench: "pubsub",
    messages: N,
    rounds: ROUNDS,
    loadAverage: round(load),
    rawPublishPerSec: Math.round(p.raw.rate),
    rawPublishWithAttributesPerSec: Math.round(p.rawAttributes.rate),
    publishPerSec: Math.round(p.switchyard.rate),
    throughputRatio: round(p.switchyard.rate / p.raw.rate),
    throughputRatioSameAttributes: round(p.switchyard.rate / p.rawAttributes.rate),
    rawPublishCpuUsPerMsg: round(p.raw.cpuUs),
    rawPublishWithAttributesCpuUsPerMsg: round(p.rawAttributes.cpuUs),
    publishCpuUsPerMsg: round(p.switchyard.cpuUs),
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
