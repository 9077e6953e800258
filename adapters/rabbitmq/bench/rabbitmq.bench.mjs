// `pnpm bench rabbitmq [--quick]`: raw amqplib (confirm channel, persistent) against Switchyard on the
// same broker in the same run, 1 KiB messages: confirmed publishes/s with 500 in flight, consume-and-ack/s
// with prefetch 100, and p50/p99 end-to-end latency at a fixed rate. Ends with one JSON line.
// Same work? Raw publishes 1 KiB with a messageId and no headers; Switchyard adds the CloudEvents
// attributes (five `cloudEvents:*` headers, datacontenttype in the content-type property), so raw is
// also measured publishing the same (throughputRatioSameHeaders). The raw consumer acks; Switchyard's decodes, runs the handler, acks.
// Three rounds (one with --quick), alternating which side goes first; each rate is the median of its
// rounds, latency is measured in the first round only. BENCH_COALESCE=0 publishes each message on
// its own (`coalesce: false`), BENCH_COALESCE=N caps the bus's batches at N messages.
import { randomUUID } from "node:crypto";
import { createBus } from "@switchyard/core";
import amqp from "amqplib";
import { interleaved, medians, percentile, pool, profiled } from "../../../scripts/bench-kit.mjs";
import { createTransport } from "../dist/index.js";

const quick = process.argv.includes("--quick");
const url = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const N = quick ? 5_000 : 20_000;
const IN_FLIGHT = 500;
const RATE = 1000; // messages/s for the latency run
const LATENCY_N = quick ? 1_000 : 3_000;
const body = new Uint8Array(1024).fill(7);
const raw1k = (headers = {}) => ({
  type: "bench.bytes",
  dataContentType: "application/octet-stream",
  data: body,
  headers,
});

// The broker blocks publishing connections under a memory or disk alarm (connection.blocked), which
// makes a run's figures meaningless rather than slow. RabbitMQ tells only connections that publish,
// so a watcher publishes a tiny unroutable message every 100 ms (dropped by the default exchange) and
// reports how long it was blocked.
let blockedMs = 0;
let blockedSince;
const blockReasons = new Set();
const watcher = await amqp.connect(url);
const watchChannel = await watcher.createChannel();
const watchTimer = setInterval(
  () => watchChannel.publish("", `bench-watch-${randomUUID()}`, Buffer.alloc(0)),
  100,
);
watcher.on("blocked", (reason) => {
  blockedSince ??= performance.now();
  blockReasons.add(String(reason));
});
watcher.on("unblocked", () => {
  if (blockedSince !== undefined) blockedMs += performance.now() - blockedSince;
  blockedSince = undefined;
});

async function raw(round) {
  const model = await amqp.connect(url);
  model.on("blocked", (reason) => blockReasons.add(String(reason)));
  const ch = await model.createConfirmChannel();
  const queue = `bench-raw-${randomUUID().slice(0, 8)}`;
  await ch.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
  const content = Buffer.from(body);
  const publish = (headers = {}, contentType = undefined) =>
    new Promise((resolve, reject) => {
      const options = { persistent: true, messageId: randomUUID(), headers };
      if (contentType) options.contentType = contentType;
      ch.sendToQueue(queue, content, options, (e) => (e ? reject(e) : resolve()));
    });
  let t = performance.now();
  await pool(N, IN_FLIGHT, () => publish());
  const publishRate = N / ((performance.now() - t) / 1000);
  t = performance.now();
  await profiled("raw-publish-headers", () =>
    pool(N, IN_FLIGHT, () =>
      publish(
        {
          "cloudEvents:id": randomUUID(),
          "cloudEvents:type": "bench.bytes",
          "cloudEvents:source": "bench",
          "cloudEvents:specversion": "1.0",
          "cloudEvents:time": new Date().toISOString(),
        },
        "application/octet-stream", // datacontenttype's home in the AMQP binding, as Switchyard sends it
      ),
    ),
  );
  const publishHeadersRate = N / ((performance.now() - t) / 1000);

  const consumer = await model.createChannel();
  await consumer.prefetch(100);
  t = performance.now();
  let got = 0;
  await new Promise((resolve) => {
    consumer.consume(queue, (m) => {
      consumer.ack(m);
      if (++got === 2 * N) resolve();
    });
  });
  const consumeRate = (2 * N) / ((performance.now() - t) / 1000);
  if (round > 0) {
    await consumer.close();
    await ch.deleteQueue(queue);
    await model.close();
    return { publishRate, publishHeadersRate, consumeRate };
  }

  const latencies = [];
  let done;
  const finished = new Promise((r) => {
    done = r;
  });
  await consumer.close();
  const latencyChannel = await model.createChannel();
  await latencyChannel.prefetch(100);
  await latencyChannel.consume(queue, (m) => {
    latencies.push(performance.now() - Number(m.properties.headers.sent));
    latencyChannel.ack(m);
    if (latencies.length === LATENCY_N) done();
  });
  for (let i = 0; i < LATENCY_N; i++) {
    void publish({ sent: String(performance.now()) });
    await new Promise((r) => setTimeout(r, 1000 / RATE));
  }
  await finished;
  await ch.deleteQueue(queue);
  await model.close();
  return {
    publishRate,
    publishHeadersRate,
    consumeRate,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

async function switchyard(round) {
  const bus = createBus({
    transport: createTransport(new URL(url)),
    source: "bench",
    ...(process.env.BENCH_COALESCE === "0"
      ? { coalesce: false }
      : process.env.BENCH_COALESCE
        ? { coalesce: { maxMessages: Number(process.env.BENCH_COALESCE) } }
        : {}),
  });
  const queue = `bench-sy-${randomUUID().slice(0, 8)}`;
  await bus.ensure([{ kind: "queue", name: queue }]);
  let t = performance.now();
  await profiled("switchyard-publish", () =>
    pool(N, IN_FLIGHT, () => bus.publishRaw({ kind: "queue", name: queue }, raw1k())),
  );
  const publishRate = N / ((performance.now() - t) / 1000);

  t = performance.now();
  let got = 0;
  let resolveAll;
  const all = new Promise((r) => {
    resolveAll = r;
  });
  const consumer = await bus
    .consume(queue)
    .onAny(async () => {
      if (++got === N) resolveAll();
    })
    .start({ concurrency: 50, prefetch: 100 });
  await all;
  const consumeRate = N / ((performance.now() - t) / 1000);
  await consumer.stop();
  if (round > 0) {
    await bus.close();
    await deleteQueue(queue);
    return { publishRate, consumeRate };
  }

  const latencies = [];
  let done;
  const finished = new Promise((r) => {
    done = r;
  });
  await bus
    .consume(queue)
    .onAny(async (msg) => {
      latencies.push(performance.now() - Number(msg.headers.sent));
      if (latencies.length === LATENCY_N) done();
    })
    .start({ concurrency: 50, prefetch: 100 });
  for (let i = 0; i < LATENCY_N; i++) {
    void bus.publishRaw({ kind: "queue", name: queue }, raw1k({ sent: String(performance.now()) }));
    await new Promise((r) => setTimeout(r, 1000 / RATE));
  }
  await finished;
  await bus.close();
  await deleteQueue(queue);
  return {
    publishRate,
    consumeRate,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

async function deleteQueue(queue) {
  const model = await amqp.connect(url);
  const ch = await model.createChannel();
  await ch.deleteQueue(queue);
  await model.close();
}

const ROUNDS = quick ? 1 : 3;
const rounds = await interleaved(ROUNDS, { raw, switchyard });
const r = { ...medians(rounds.raw), p50: rounds.raw[0].p50, p99: rounds.raw[0].p99 };
const s = { ...medians(rounds.switchyard), p50: rounds.switchyard[0].p50, p99: rounds.switchyard[0].p99 };
if (blockedSince !== undefined) blockedMs += performance.now() - blockedSince;
clearInterval(watchTimer);
await watcher.close();
if (blockReasons.size > 0)
  console.log(
    `the broker blocked publishers for ${Math.round(blockedMs)} ms: ${[...blockReasons].join("; ")}`,
  );
const round = (x) => Math.round(x * 100) / 100;
console.log(
  `raw amqplib: ${Math.round(r.publishRate)} confirmed publishes/s (${Math.round(r.publishHeadersRate)} with the same CloudEvents attributes), ${Math.round(r.consumeRate)} consume+ack/s, p50 ${round(r.p50)} ms, p99 ${round(r.p99)} ms`,
);
console.log(
  `switchyard:  ${Math.round(s.publishRate)} confirmed publishes/s, ${Math.round(s.consumeRate)} consume+ack/s, p50 ${round(s.p50)} ms, p99 ${round(s.p99)} ms`,
);
console.log(
  JSON.stringify({
    bench: "rabbitmq",
    messages: N,
    rounds: ROUNDS,
    rawPublishPerSec: Math.round(r.publishRate),
    rawPublishWithHeadersPerSec: Math.round(r.publishHeadersRate),
    publishPerSec: Math.round(s.publishRate),
    rawConsumePerSec: Math.round(r.consumeRate),
    consumePerSec: Math.round(s.consumeRate),
    rawP50Ms: round(r.p50),
    rawP99Ms: round(r.p99),
    p50Ms: round(s.p50),
    p99Ms: round(s.p99),
    throughputRatio: round(s.publishRate / r.publishRate),
    throughputRatioByRound: rounds.raw.map((x, i) => round(rounds.switchyard[i].publishRate / x.publishRate)),
    throughputRatioSameHeaders: round(s.publishRate / r.publishHeadersRate),
    consumeRatio: round(s.consumeRate / r.consumeRate),
    consumeRatioByRound: rounds.raw.map((x, i) => round(rounds.switchyard[i].consumeRate / x.consumeRate)),
    p99DeltaMs: round(s.p99 - r.p99),
    ratio: round(s.publishRate / r.publishRate),
    brokerBlockedMs: Math.round(blockedMs),
  }),
);
