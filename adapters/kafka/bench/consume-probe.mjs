// A focused consume probe for hot-path work on Kafka (not part of `pnpm bench`): one backlog of N
// records in the format Switchyard writes (structured mode) and one of plain JSON, then read in
// alternating rounds by a raw @platformatic/kafka consumer that parses each value (plain, and the
// same records) and by a Switchyard consumer. Prints the medians of rate (from the first message)
// and CPU µs per message of each, and their ratios. Usage, after `pnpm build`:
//   node adapters/kafka/bench/consume-probe.mjs
// PROBE_N (50,000), PROBE_ROUNDS (3), PROBE_DRIVER (platformatic|kafkajs), PROBE_CONCURRENCY (64),
// PROBE_PREFETCH (1024), PROBE_ONLY=switchyard (skip the raw rounds), PROBE_PROFILE=DIR (one CPU
// profile per round; `node scripts/profile-summary.mjs FILE` splits it into client/core/adapter/gc).
import { randomUUID } from "node:crypto";
import os from "node:os";
import { PerformanceObserver, constants as perfConstants } from "node:perf_hooks";
import { Consumer as PltConsumer, Producer as PltProducer, ProduceAcks } from "@platformatic/kafka";
import { createBus, createEnvelope, defineMessage, toWire } from "@switchyard/core";
import { Kafka, logLevel } from "kafkajs";
import { profiled, shapeSchema } from "../../../scripts/bench-kit.mjs";
import { createTransport } from "../dist/index.js";

const N = Number(process.env.PROBE_N ?? 50_000);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 3);
const driver = process.env.PROBE_DRIVER ?? "platformatic";
const brokers = ["127.0.0.1:9092"];
const NOTE = "x".repeat(1024 - 40);
const Bench = defineMessage({
  type: "bench.kafka",
  versions: { 1: shapeSchema({ id: "number", note: "string" }) },
});
const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
await admin.connect();
const topic = `sy-probe-${randomUUID().slice(0, 8)}`;
const plainTopic = `${topic}-plain`;
await admin.createTopics({
  waitForLeaders: true,
  topics: [
    { topic, numPartitions: 3 },
    { topic: plainTopic, numPartitions: 3 },
  ],
});
const producer = new PltProducer({
  clientId: "probe",
  bootstrapBrokers: brokers,
  idempotent: true,
  acks: ProduceAcks.ALL,
});
console.error("producing");
for (let sent = 0; sent < N; sent += 500) {
  const batch = [];
  const plain = [];
  for (let i = sent; i < sent + 500; i++) {
    const wire = toWire(
      createEnvelope(
        { type: "bench.kafka", schemaVersion: 1, data: { id: i, note: NOTE } },
        { source: "probe" },
      ),
      {},
      "structured",
    );
    batch.push({
      topic,
      value: Buffer.from(wire.body),
      headers: new Map(Object.entries(wire.headers).map(([k, v]) => [Buffer.from(k), Buffer.from(v)])),
    });
    plain.push({ topic: plainTopic, value: Buffer.from(JSON.stringify({ id: i, note: NOTE })) });
  }
  await producer.send({ messages: batch });
  await producer.send({ messages: plain });
}
await producer.close();

// GC counts by kind are steadier than CPU time on a loaded machine: a major GC (mark-sweep) means
// objects lived long enough to be promoted out of the young generation.
const gcSeen = { minor: 0, major: 0, ms: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcSeen.ms += entry.duration;
    if (entry.detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) gcSeen.major++;
    else gcSeen.minor++;
  }
}).observe({ entryTypes: ["gc"] });
function cpu(run) {
  return async () => {
    const before = process.cpuUsage();
    const gcBefore = { ...gcSeen };
    const first = await run();
    const ms = performance.now() - first;
    // Event-loop utilization from the first message to the last: below 1, the loop sat idle
    // (waiting for fetches) while records were still to come.
    const elu = +performance.eventLoopUtilization(eluAtFirst).utilization.toFixed(2);
    const used = process.cpuUsage(before);
    return {
      perSec: Math.round(N / (ms / 1000)),
      cpuUs: +((used.user + used.system) / N).toFixed(2),
      minorGc: gcSeen.minor - gcBefore.minor,
      majorGc: gcSeen.major - gcBefore.major,
      gcUs: +(((gcSeen.ms - gcBefore.ms) * 1000) / N).toFixed(2),
      elu,
    };
  };
}
const waitFor = (check) =>
  new Promise((resolve) => {
    const t = setInterval(() => {
      if (check()) {
        clearInterval(t);
        resolve();
      }
    }, 1);
  });

const rawRun = (from, parse) =>
  cpu(async () => {
    const consumer = new PltConsumer({
      clientId: "probe-raw",
      groupId: `raw-${randomUUID()}`,
      bootstrapBrokers: brokers,
      maxWaitTime: 100,
    });
    const stream = await consumer.consume({ topics: [from], mode: "earliest", autocommit: false });
    let got = 0;
    let sink = 0;
    let first = 0;
    await profiled(`probe-raw-${from === plainTopic ? "plain" : "same"}-${round}`, async () => {
      stream.on("data", (m) => {
        if (got++ === 0) {
          first = performance.now();
          eluAtFirst = performance.eventLoopUtilization();
        }
        sink += parse(m.value);
      });
      await waitFor(() => got >= N);
    });
    const end = performance.now();
    await stream.close();
    await consumer.close(true);
    if (sink < 0) console.log(sink);
    return first + (performance.now() - end);
  });
let round = 0;
/** performance.eventLoopUtilization() at the current round's first message. */
let eluAtFirst;
const syRun = () =>
  cpu(async () => {
    const bus = createBus({
      transport: createTransport(
        new URL(`kafka://${brokers[0]}?driver=${driver}${process.env.PROBE_URL_EXTRA ?? ""}`),
        {
          maxWaitMs: 100,
          commitIntervalMs: 100,
        },
      ),
    });
    let got = 0;
    let sink = 0;
    let first = 0;
    let end = 0;
    await profiled(`probe-${driver}-${round++}`, async () => {
      await bus
        .subscribe(topic, `probe-${randomUUID().slice(0, 8)}`)
        .on(Bench, async (msg) => {
          if (got++ === 0) {
            first = performance.now();
            eluAtFirst = performance.eventLoopUtilization();
          }
          sink += msg.data.id;
        })
        .start({
          concurrency: Number(process.env.PROBE_CONCURRENCY ?? 64),
          prefetch: Number(process.env.PROBE_PREFETCH ?? 1024),
        });
      await waitFor(() => got >= N);
      end = performance.now();
    });
    await bus.close();
    if (sink < 0) console.log(sink);
    return first + (performance.now() - end);
  });
process.env.BENCH_PROFILE = process.env.PROBE_PROFILE ?? "";
if (!process.env.BENCH_PROFILE) delete process.env.BENCH_PROFILE;
console.error("produced");
const results = { rawPlain: [], rawSame: [], switchyard: [] };
for (let r = 0; r < ROUNDS; r++) {
  if (process.env.PROBE_ONLY === "switchyard") {
    results.rawPlain.push({ perSec: 1, cpuUs: 1 });
    results.rawSame.push({ perSec: 1, cpuUs: 1 });
    results.switchyard.push(await syRun()());
    continue;
  }
  results.rawPlain.push(await rawRun(plainTopic, (v) => JSON.parse(v.toString()).id)());
  console.error("raw plain", results.rawPlain.at(-1));
  results.switchyard.push(await syRun()());
  results.rawSame.push(await rawRun(topic, (v) => JSON.parse(v.toString()).data.id)());
}
const median = (xs, f) => xs.map((x) => x[f]).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = Object.fromEntries(
  Object.entries(results).flatMap(([k, v]) => [
    [`${k}PerSec`, median(v, "perSec")],
    [`${k}CpuUs`, median(v, "cpuUs")],
    [`${k}Gc`, `${median(v, "minorGc")}/${median(v, "majorGc")} ${median(v, "gcUs")}µs`],
    [`${k}Elu`, median(v, "elu")],
  ]),
);
out.ratioVsPlain = +(out.switchyardPerSec / out.rawPlainPerSec).toFixed(3);
out.ratioVsSame = +(out.switchyardPerSec / out.rawSamePerSec).toFixed(3);
out.cpuRatioVsPlain = +(out.rawPlainCpuUs / out.switchyardCpuUs).toFixed(3);
out.load = os.loadavg().map((x) => +x.toFixed(2));
console.log(JSON.stringify(out));
await admin.deleteTopics({ topics: [topic, plainTopic] }).catch(() => {});
await admin.disconnect();
process.exit(0);
