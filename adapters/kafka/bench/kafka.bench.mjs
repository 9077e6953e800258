// `pnpm bench kafka [--quick]`: each driver against its own raw client on the same broker and topic
// settings (3 partitions), ~1 KiB JSON messages (`{ id, note }`), in one run:
//   publish/s  raw: JSON.stringify each message, idempotent acks=all batches of 500 in sequence;
//              Switchyard: `bus.publishBatch` of 500 in sequence (schema check, envelope, JSON encode,
//              6 CloudEvents `ce_` headers per record, the adapter's idempotent producer). Also
//              reported: Switchyard single publishes, 500 in flight (publishSinglesPerSec).
//   consume/s  a backlog of N read by a raw consumer that only counts (rawConsumePerSec), by a raw
//              consumer that also JSON.parses each value (rawParseConsumePerSec: the least a user
//              does), and by a Switchyard consumer (decode, schema check, handler, ack, commit);
//              timed from the first message (the group join is not in it). consumeRatio is over
//              the counting raw consumer; consumeRatioVsParse over the parsing one.
//   same format raw publish and parse-consume of records in the format Switchyard writes (BENCH_
//              CONTENT_MODE: structured by default, one content-type header and the CloudEvent as
//              the JSON value; binary: six `ce_` headers) — throughputRatioSameHeaders,
//              consumeRatioSameHeaders: the client's own cost of the format is then on both sides,
//              and the ratio is what the pipeline adds.
//   Three rounds (one with --quick, BENCH_ROUNDS=N), alternating which side runs first; every
//   figure is the median of the rounds.
//   latency    p50/p99 publish-to-handler at a fixed rate, one message per publish (raw: a plain
//              producer, acks=all; Switchyard: its idempotent batching producer); both consumers are
//              seen receiving (a probe message) before the paced run starts.
// Ends with one JSON line per driver, the default driver (platformatic) last.
import { randomUUID } from "node:crypto";
import os from "node:os";
import { Consumer as PltConsumer, Producer as PltProducer, ProduceAcks } from "@platformatic/kafka";
import { createBus, createEnvelope, defineMessage, toWire } from "@switchyard/core";
import { Kafka, logLevel } from "kafkajs";
import { paced, percentile, pool, profiled, shapeSchema, sleep } from "../../../scripts/bench-kit.mjs";
import { createTransport } from "../dist/index.js";

const quick = process.argv.includes("--quick");
const brokers = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
const N = quick ? 10_000 : 50_000;
const BATCH = 500;
// messages/s for the latency run: one produce request per message on the raw side, which a loaded
// 2-core machine cannot sustain at 2,000/s (its backlog, not the client, then makes the latency)
const RATE = 500;
const LATENCY_N = quick ? 1_000 : 3_000;
const body = Buffer.alloc(1024, 7);
const NOTE = "x".repeat(1024 - 40);
const payload = (id) => ({ id, note: NOTE }); // ~1 KiB as JSON
const schema = shapeSchema({ id: "number", note: "string" });
const Bench = defineMessage({ type: "bench.kafka", versions: { 1: schema } });
const contentMode = process.env.BENCH_CONTENT_MODE ?? "structured";
/** A record as Switchyard writes it in `contentMode`, for the raw runs that carry the same format. */
const switchyardRecord = (id) => {
  const wire = toWire(
    createEnvelope({ type: "bench.kafka", schemaVersion: 1, data: payload(id) }, { source: "bench" }),
    {},
    contentMode,
  );
  return { value: Buffer.from(wire.body), headers: wire.headers };
};
/** The message id in a record of that format. */
const idOf = (value) => {
  const parsed = JSON.parse(value.toString());
  return contentMode === "structured" ? parsed.data.id : parsed.id;
};
/** CPU µs (user + system) this process spent per message while `run` ran. */
async function cpuPerMessage(count, run) {
  const before = process.cpuUsage();
  const result = await run();
  const used = process.cpuUsage(before);
  return { result, cpuUs: (used.user + used.system) / count };
}
const name = (what) => `bench-${what}-${randomUUID().slice(0, 8)}`;
const fast = { heartbeatIntervalMs: 250, sessionTimeoutMs: 6000, rebalanceTimeoutMs: 10000, maxWaitMs: 100 };

// ---- raw clients, one per driver, each doing what the driver does with the same library ----

function rawKafkajs() {
  const kafka = new Kafka({ clientId: "bench-raw", brokers, logLevel: logLevel.NOTHING });
  return {
    name: "kafkajs",
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
          for (const m of batch.messages) onMessage(m.headers, m.value);
        },
      });
      return () => consumer.disconnect();
    },
  };
}

function rawPlatformatic() {
  const bootstrapBrokers = brokers;
  return {
    name: "platformatic",
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
        onMessage(Object.fromEntries([...m.headers].map(([k, v]) => [k.toString(), v])), m.value),
      );
      return async () => {
        await stream.close();
        await consumer.close(true);
      };
    },
  };
}

/** Sends a probe every 250 ms until `seen()`: the consumer is receiving (its group join is done). */
async function probe(send, seen, timeoutMs = 60_000) {
  const started = Date.now();
  while (!seen()) {
    if (Date.now() - started > timeoutMs) throw new Error("the latency consumer never received a probe");
    await send();
    for (let i = 0; i < 25 && !seen(); i++) await sleep(10);
  }
  await sleep(200); // probes still in flight land before the paced run
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
  const batchOf = (from) =>
    Array.from({ length: BATCH }, (_, i) => ({ value: Buffer.from(JSON.stringify(payload(from + i))) }));
  await producer.send(topic, batchOf(0).slice(0, 10)); // warm-up: connections and metadata
  const t = performance.now();
  const { cpuUs: publishCpuUs } = await cpuPerMessage(N, () =>
    profiled(`kafka-${client.name}-raw-publish`, async () => {
      for (let sent = 0; sent < N; sent += BATCH) await producer.send(topic, batchOf(sent));
    }),
  );
  const publish = N / ((performance.now() - t) / 1000);
  // consume the backlog (plus the warm-up): counting only, then parsing each value
  const consumeWith = async (parse) => {
    let got = 0;
    let first = 0;
    let sink = 0;
    const stop = await client.consume(topic, (_headers, value) => {
      if (got++ === 0) first = performance.now();
      if (parse) sink += JSON.parse(value.toString()).id;
    });
    await until(() => got >= N + 10, "raw backlog");
    const rate = (N + 9) / ((performance.now() - first) / 1000);
    await stop();
    if (sink < 0) console.log(sink);
    return rate;
  };
  const consume = await consumeWith(false);
  const { result: consumeParse, cpuUs: consumeCpuUs } = await cpuPerMessage(N, () =>
    profiled(`kafka-${client.name}-raw-consume`, () => consumeWith(true)),
  );
  // The same with Switchyard's headers on every record: publish and parse the same bytes, so the
  // ratio against it shows what the pipeline costs beyond the client's own header handling.
  const headed = name("raw-headed");
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: headed, numPartitions: 3 }] });
  const headedBatch = (from) => Array.from({ length: BATCH }, (_, i) => switchyardRecord(from + i));
  await producer.send(headed, headedBatch(0).slice(0, 10));
  const th = performance.now();
  for (let sent = 0; sent < N; sent += BATCH) await producer.send(headed, headedBatch(sent));
  const publishHeaders = N / ((performance.now() - th) / 1000);
  const consumeHeaders = await (async () => {
    let got = 0;
    let first = 0;
    let sink = 0;
    const stop = await client.consume(headed, (_headers, value) => {
      if (got++ === 0) first = performance.now();
      sink += idOf(value);
    });
    await until(() => got >= N + 10, "raw backlog with headers");
    const rate = (N + 9) / ((performance.now() - first) / 1000);
    await stop();
    if (sink < 0) console.log(sink);
    return rate;
  })();
  // latency
  const latTopic = name("raw-lat");
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: latTopic, numPartitions: 3 }] });
  const latencies = [];
  let probes = 0;
  const stopLat = await client.consume(latTopic, (headers) => {
    const sent = headers.sent.toString();
    if (sent === "probe") probes++;
    else latencies.push(performance.now() - Number(sent));
  });
  // One message per send: the plain, not idempotent producer (acks=all), as the raw clients' own
  // latency figures are usually taken; the idempotent one allows a single request in flight.
  const latProducer = await client.producer(false);
  await probe(
    () => latProducer.send(latTopic, [{ value: body, headers: { sent: "probe" } }]),
    () => probes > 0,
  );
  await paced(LATENCY_N, RATE, () =>
    latProducer.send(latTopic, [{ value: body, headers: { sent: String(performance.now()) } }]),
  );
  await until(() => latencies.length >= LATENCY_N, "raw latency");
  await stopLat();
  await Promise.all([producer.close(), latProducer.close()]);
  return {
    publish,
    publishCpuUs,
    consumeCpuUs,
    publishHeaders,
    consume,
    consumeParse,
    consumeHeaders,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

async function measureSwitchyard(driver) {
  const transport = () =>
    createTransport(
      new URL(`kafka://${brokers.join(",")}?driver=${driver}&contentMode=${contentMode}`),
      fast,
    );
  const bus = createBus({ transport: transport(), source: "bench" });
  const raw = { type: "bench.bytes", dataContentType: "application/octet-stream", data: body };
  // publish
  const queue = name("sy");
  await bus.sendBatch(queue, Bench, [{ data: payload(-1) }]); // warm-up and provisioning
  let t = performance.now();
  const { cpuUs: publishCpuUs } = await cpuPerMessage(N, () =>
    profiled(`kafka-${driver}-switchyard-publish`, async () => {
      for (let sent = 0; sent < N; sent += BATCH)
        await bus.sendBatch(
          queue,
          Bench,
          Array.from({ length: BATCH }, (_, i) => ({ data: payload(sent + i) })),
        );
    }),
  );
  const publish = N / ((performance.now() - t) / 1000);
  // single publishes, 500 in flight, to another topic (not consumed)
  const singles = name("sy-singles");
  await bus.send(singles, Bench, payload(-1));
  t = performance.now();
  await pool(N, BATCH, (i) => bus.send(singles, Bench, payload(i)));
  const publishSingles = N / ((performance.now() - t) / 1000);
  // consume the backlog
  const consumerBus = createBus({ transport: transport() });
  let got = 0;
  let first = 0;
  let sink = 0;
  const { cpuUs: consumeCpuUs } = await cpuPerMessage(N, () =>
    profiled(`kafka-${driver}-switchyard-consume`, async () => {
      await consumerBus
        .consume(queue)
        .on(Bench, async (msg) => {
          if (got++ === 0) first = performance.now();
          sink += msg.data.id;
        })
        .start({ concurrency: 64, prefetch: 1024 });
      await until(() => got >= N + 1, "switchyard backlog");
    }),
  );
  const consume = N / ((performance.now() - first) / 1000);
  if (sink < -N) console.log(sink);
  // latency
  const latQueue = name("sy-lat");
  const latencies = [];
  let probes = 0;
  await consumerBus
    .consume(latQueue)
    .onAny(async (_m, ctx) => {
      const sent = ctx.wire.headers.sent;
      if (sent === "probe") probes++;
      else latencies.push(performance.now() - Number(sent));
    })
    .start({ concurrency: 64 });
  await probe(
    () => bus.publishRaw({ kind: "queue", name: latQueue }, { ...raw, headers: { sent: "probe" } }),
    () => probes > 0,
  );
  await paced(LATENCY_N, RATE, () =>
    bus.publishRaw(
      { kind: "queue", name: latQueue },
      { ...raw, headers: { sent: String(performance.now()) } },
    ),
  );
  await until(() => latencies.length >= LATENCY_N, "switchyard latency");
  await Promise.all([bus.close(), consumerBus.close()]);
  return {
    publish,
    publishCpuUs,
    publishSingles,
    consume,
    consumeCpuUs,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

const admin = new Kafka({ clientId: "bench-admin", brokers, logLevel: logLevel.NOTHING }).admin();
await admin.connect();
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (quick ? 1 : 3));
/** Each numeric field's median over the rounds. */
function medians(rounds) {
  if (rounds.length === 0) return {};
  const out = {};
  for (const field of Object.keys(rounds[0])) {
    const values = rounds.map((r) => r[field]).sort((a, b) => a - b);
    out[field] = values[Math.floor(values.length / 2)];
  }
  return out;
}
const round = (x, d = 0) => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);
const lines = [];
for (const driver of (process.env.BENCH_DRIVERS ?? "kafkajs,platformatic").split(",")) {
  const client = driver === "kafkajs" ? rawKafkajs() : rawPlatformatic();
  // BENCH_SIDE=switchyard|raw runs one side alone (for profiling); ratios then are null.
  const side = process.env.BENCH_SIDE;
  // Rounds alternate which side goes first (the broker and the machine warm up, other work
  // comes and goes); every figure is the median over the rounds.
  const rawRounds = [];
  const syRounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const runRaw = async () => side !== "switchyard" && rawRounds.push(await measureRaw(client, admin));
    const runSy = async () => side !== "raw" && syRounds.push(await measureSwitchyard(driver));
    if (r % 2 === 0) {
      await runRaw();
      await runSy();
    } else {
      await runSy();
      await runRaw();
    }
  }
  const raw = medians(rawRounds);
  const sy = medians(syRounds);
  console.error(
    `${driver.padEnd(12)} publish/s raw ${round(raw.publish)} switchyard ${round(sy.publish)} | ` +
      `(singles ${round(sy.publishSingles)}) | consume/s raw ${round(raw.consume)} raw+JSON.parse ${round(raw.consumeParse)} switchyard ${round(sy.consume)} | ` +
      `p50/p99 ms raw ${round(raw.p50, 2)}/${round(raw.p99, 2)} switchyard ${round(sy.p50, 2)}/${round(sy.p99, 2)}`,
  );
  lines.push({
    bench: "kafka",
    driver,
    messages: N,
    bytes: body.byteLength,
    rawPublishPerSec: round(raw.publish),
    publishPerSec: round(sy.publish),
    publishSinglesPerSec: round(sy.publishSingles),
    rawConsumePerSec: round(raw.consume),
    rawParseConsumePerSec: round(raw.consumeParse),
    rawSameHeadersPublishPerSec: round(raw.publishHeaders),
    rawSameHeadersConsumePerSec: round(raw.consumeHeaders),
    consumePerSec: round(sy.consume),
    rawP50Ms: round(raw.p50, 2),
    rawP99Ms: round(raw.p99, 2),
    p50Ms: round(sy.p50, 2),
    p99Ms: round(sy.p99, 2),
    throughputRatio: round(sy.publish / raw.publish, 3),
    consumeRatio: round(sy.consume / raw.consume, 3),
    consumeRatioVsParse: round(sy.consume / raw.consumeParse, 3),
    throughputRatioSameHeaders: round(sy.publish / raw.publishHeaders, 3),
    consumeRatioSameHeaders: round(sy.consume / raw.consumeHeaders, 3),
    p99DeltaMs: round(sy.p99 - raw.p99, 2),
    // CPU of this process per message: raw parse-consume and batch publish against Switchyard's
    rawPublishCpuUs: round(raw.publishCpuUs, 1),
    publishCpuUs: round(sy.publishCpuUs, 1),
    rawConsumeCpuUs: round(raw.consumeCpuUs, 1),
    consumeCpuUs: round(sy.consumeCpuUs, 1),
    loadAverage: os.loadavg().map((x) => round(x, 2)),
    rounds: ROUNDS,
    contentMode,
  });
}
await admin.disconnect();
for (const line of lines) console.log(JSON.stringify(line));
process.exit(0);
