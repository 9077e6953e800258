// `pnpm bench kafka [--quick]`: each driver against its own raw client on the same broker and topic
// settings (3 partitions), 1 KiB messages, in one run:
//   publish/s  raw: idempotent acks=all batches of 500 in sequence; Switchyard: bus publishes, 500 in flight
//   consume/s  a backlog of N read by a raw consumer (counting) vs a Switchyard consumer (handler, ack,
//              commit), timed from the first message (the group join is not in it)
//   latency    p50/p99 publish-to-handler at a fixed rate, one message per publish (raw: a plain
//              producer, acks=all; Switchyard: its idempotent batching producer)
// Ends with one JSON line per driver, the default driver (platformatic) last.
import { randomUUID } from "node:crypto";
import { Consumer as PltConsumer, Producer as PltProducer, ProduceAcks } from "@platformatic/kafka";
import { createBus } from "@switchyard/core";
import { Kafka, logLevel } from "kafkajs";
import { createTransport } from "../dist/index.js";

const quick = process.argv.includes("--quick");
const brokers = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
const N = quick ? 10_000 : 50_000;
const BATCH = 500;
const RATE = 2000; // messages/s for the latency run
const LATENCY_N = quick ? 2_000 : 6_000;
const body = Buffer.alloc(1024, 7);
const fast = { heartbeatIntervalMs: 250, sessionTimeoutMs: 6000, rebalanceTimeoutMs: 10000, maxWaitMs: 100 };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};
const name = (what) => `bench-${what}-${randomUUID().slice(0, 8)}`;

async function pool(total, inFlight, send) {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) await send(next++);
    }),
  );
}

/** Paced sends: message i leaves at start + i/RATE; returns when all were sent. */
async function paced(total, send) {
  const start = performance.now();
  const pending = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(send(i));
  }
  await Promise.all(pending);
}

// ---- raw clients, one per driver, each doing what the driver does with the same library ----

function rawKafkajs() {
  const kafka = new Kafka({ clientId: "bench-raw", brokers, logLevel: logLevel.NOTHING });
  return {
    async producer(idempotent = true) {
      const producer = kafka.producer(idempotent ? { idempotent: true, maxInFlightRequests: 1 } : {});
      await producer.connect();
      return {
        send: (topic, messages) => producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages }] }),
        close: () => producer.disconnect(),
      };
    },
    async consume(topic, onMessage) {
      const consumer = kafka.consumer({ groupId: name("raw"), maxWaitTimeInMs: 100 });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages) onMessage(m.headers);
        },
      });
      return () => consumer.disconnect();
    },
  };
}

function rawPlatformatic() {
  const bootstrapBrokers = brokers;
  return {
    async producer(idempotent = true) {
      const producer = new PltProducer({
        clientId: "bench-raw",
        bootstrapBrokers,
        idempotent,
        acks: ProduceAcks.ALL,
      });
      return {
        send: (topic, messages) =>
          producer.send({
            messages: messages.map((m) => ({
              topic,
              value: m.value,
              headers: new Map(
                Object.entries(m.headers ?? {}).map(([k, v]) => [Buffer.from(k), Buffer.from(v)]),
              ),
            })),
          }),
        close: () => producer.close(),
      };
    },
    async consume(topic, onMessage) {
      const consumer = new PltConsumer({
        clientId: "bench-raw",
        groupId: name("raw"),
        bootstrapBrokers,
        maxWaitTime: 100,
      });
      const stream = await consumer.consume({ topics: [topic], mode: "earliest", autocommit: false });
      stream.on("data", (m) =>
        onMessage(Object.fromEntries([...m.headers].map(([k, v]) => [k.toString(), v]))),
      );
      return async () => {
        await stream.close();
        await consumer.close(true);
      };
    },
  };
}

function until(check, what, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      if (check()) {
        clearInterval(timer);
        resolve();
      } else if (Date.now() - started > timeoutMs) {
        clearInterval(timer);
        reject(new Error(`timed out waiting for ${what}`));
      }
    }, 2);
  });
}

async function measureRaw(client, admin) {
  const producer = await client.producer();
  // publish
  const topic = name("raw");
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 3 }] });
  const messages = Array.from({ length: BATCH }, () => ({ value: body }));
  await producer.send(topic, messages.slice(0, 10)); // warm-up: connections and metadata
  const t = performance.now();
  for (let sent = 0; sent < N; sent += BATCH) await producer.send(topic, messages);
  const publish = N / ((performance.now() - t) / 1000);
  // consume the backlog (plus the warm-up)
  let got = 0;
  let first = 0;
  const stop = await client.consume(topic, () => {
    if (got++ === 0) first = performance.now();
  });
  await until(() => got >= N + 10, "raw backlog");
  const consume = (N + 9) / ((performance.now() - first) / 1000);
  await stop();
  // latency
  const latTopic = name("raw-lat");
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: latTopic, numPartitions: 3 }] });
  const latencies = [];
  const stopLat = await client.consume(latTopic, (headers) => {
    latencies.push(performance.now() - Number(headers.sent.toString()));
  });
  await sleep(1000);
  // One message per send: the plain, not idempotent producer (acks=all), as the raw clients' own
  // latency figures are usually taken; the idempotent one allows a single request in flight.
  const latProducer = await client.producer(false);
  await paced(LATENCY_N, () =>
    latProducer.send(latTopic, [{ value: body, headers: { sent: String(performance.now()) } }]),
  );
  await until(() => latencies.length >= LATENCY_N, "raw latency");
  await stopLat();
  await Promise.all([producer.close(), latProducer.close()]);
  return { publish, consume, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function measureSwitchyard(driver) {
  const transport = () => createTransport(new URL(`kafka://${brokers.join(",")}?driver=${driver}`), fast);
  const bus = createBus({ transport: transport(), source: "bench" });
  const raw = { type: "bench.bytes", dataContentType: "application/octet-stream", data: body };
  // publish
  const queue = name("sy");
  await bus.publishRaw({ kind: "queue", name: queue }, raw); // warm-up and provisioning
  const t = performance.now();
  await pool(N, BATCH, () => bus.publishRaw({ kind: "queue", name: queue }, raw));
  const publish = N / ((performance.now() - t) / 1000);
  // consume the backlog
  const consumerBus = createBus({ transport: transport() });
  let got = 0;
  let first = 0;
  await consumerBus
    .consume(queue)
    .onAny(async () => {
      if (got++ === 0) first = performance.now();
    })
    .start({ concurrency: 64, prefetch: 1024 });
  await until(() => got >= N + 1, "switchyard backlog");
  const consume = N / ((performance.now() - first) / 1000);
  // latency
  const latQueue = name("sy-lat");
  const latencies = [];
  await consumerBus
    .consume(latQueue)
    .onAny(async (_m, ctx) => {
      latencies.push(performance.now() - Number(ctx.wire.headers.sent));
    })
    .start({ concurrency: 64 });
  await sleep(1000);
  await paced(LATENCY_N, () =>
    bus.publishRaw(
      { kind: "queue", name: latQueue },
      { ...raw, headers: { sent: String(performance.now()) } },
    ),
  );
  await until(() => latencies.length >= LATENCY_N, "switchyard latency");
  await Promise.all([bus.close(), consumerBus.close()]);
  return { publish, consume, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

const admin = new Kafka({ clientId: "bench-admin", brokers, logLevel: logLevel.NOTHING }).admin();
await admin.connect();
const round = (x, d = 0) => Number(x.toFixed(d));
const lines = [];
for (const driver of (process.env.BENCH_DRIVERS ?? "kafkajs,platformatic").split(",")) {
  const client = driver === "kafkajs" ? rawKafkajs() : rawPlatformatic();
  const raw = await measureRaw(client, admin);
  const sy = await measureSwitchyard(driver);
  console.error(
    `${driver.padEnd(12)} publish/s raw ${round(raw.publish)} switchyard ${round(sy.publish)} | ` +
      `consume/s raw ${round(raw.consume)} switchyard ${round(sy.consume)} | ` +
      `p50/p99 ms raw ${round(raw.p50, 2)}/${round(raw.p99, 2)} switchyard ${round(sy.p50, 2)}/${round(sy.p99, 2)}`,
  );
  lines.push({
    bench: "kafka",
    driver,
    messages: N,
    bytes: body.byteLength,
    rawPublishPerSec: round(raw.publish),
    publishPerSec: round(sy.publish),
    rawConsumePerSec: round(raw.consume),
    consumePerSec: round(sy.consume),
    rawP50Ms: round(raw.p50, 2),
    rawP99Ms: round(raw.p99, 2),
    p50Ms: round(sy.p50, 2),
    p99Ms: round(sy.p99, 2),
    throughputRatio: round(sy.publish / raw.publish, 3),
    consumeRatio: round(sy.consume / raw.consume, 3),
    p99DeltaMs: round(sy.p99 - raw.p99, 2),
  });
}
await admin.disconnect();
for (const line of lines) console.log(JSON.stringify(line));
process.exit(0);
