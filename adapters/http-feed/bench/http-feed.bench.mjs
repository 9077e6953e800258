// `pnpm bench http-feed [--quick]`: the http-feed adapter end to end on loopback, in one run: a feed
// server over the PostgreSQL store (PG_URL or the broker stack's 127.0.0.1:5433; the adapter has no
// SQLite store), producer and consumers as buses polling it over real HTTP, ~1 KiB JSON events
// (`{ id, sentAt, note }`, schema-checked), adapter defaults (page size 100, long polls):
//   append/s     N events appended with `bus.publishBatch` of 100, 4 batches in flight
//   drain/s      one consumer (prefetch 100, concurrency 50) draining that backlog of N from the start
//   fanout/s     four consumers (separate subscriptions) reading a second feed of N/5 events at
//                once (bounded run time): total events handled per second over all four
//   latency      p50/p99 append-to-handler under long polling at a fixed rate (100 events/s), on a
//                second topic, one consumer
// Fresh tables per run (prefix bench_<run>), dropped at the end. There is no raw baseline: the
// issue's targets are absolute (drain ≥ 20,000 events/s, p99 < 20 ms).
// Ends with one JSON line {"bench":"http-feed","appendPerSec":…,"drainPerSec":…,"p99Ms":…}.
import { randomUUID } from "node:crypto";
import { createBus, defineMessage } from "@switchyard/core";
import pg from "pg";
import { completion, percentile, pool, sleep } from "../../../scripts/bench-kit.mjs";
import { HttpFeedTransport, PostgresStore, startFeedServer } from "../dist/index.js";

const quick = process.argv.includes("--quick");
const store = process.env.PG_URL ?? "postgres://postgres:postgres@127.0.0.1:5433/postgres";
const N = quick ? 10_000 : 100_000;
const BATCH = 100;
const IN_FLIGHT = 4;
const RATE = 100;
const LATENCY_N = quick ? 300 : 1_000;
const run = randomUUID().slice(0, 8);
const tablePrefix = `bench_${run}`;
const NOTE = "x".repeat(1024 - 80);
const payload = (id) => ({ id, sentAt: performance.now(), note: NOTE });

const schema = {
  "~standard": {
    version: 1,
    vendor: "bench",
    validate: (v) =>
      v && typeof v.id === "number" && typeof v.sentAt === "number" && typeof v.note === "string"
        ? { value: v }
        : { issues: [{ message: "not a bench event" }] },
  },
};
const Event = defineMessage({ type: "bench.feed", versions: { 1: schema } });

const serverStore = new PostgresStore({ url: store, tablePrefix });
const server = await startFeedServer({ store: serverStore, basePath: "/feeds" });
const newBus = () =>
  createBus({
    transport: new HttpFeedTransport({ store, tablePrefix, feedUrl: server.url }),
    source: "bench",
  });
const producer = newBus();
const topic = "orders";
await producer.ensure([{ kind: "topic", name: topic }]);

// append
let t = performance.now();
await pool(N / BATCH, IN_FLIGHT, (b) =>
  producer.publishBatch(
    topic,
    Event,
    Array.from({ length: BATCH }, (_, i) => ({ data: payload(b * BATCH + i) })),
  ),
);
const appendPerSec = N / ((performance.now() - t) / 1000);
// the feed the four consumers read (not timed)
const fanoutTopic = "fanout";
await producer.ensure([{ kind: "topic", name: fanoutTopic }]);
await pool(N / 5 / BATCH, IN_FLIGHT, (b) =>
  producer.publishBatch(
    fanoutTopic,
    Event,
    Array.from({ length: BATCH }, (_, i) => ({ data: payload(b * BATCH + i) })),
  ),
);

/** Drains the backlog with `count` consumers (one subscription each), returns total events/s. */
async function drain(topic, count, label, limit) {
  const buses = Array.from({ length: count }, () => newBus());
  const got = new Array(count).fill(0);
  const all = completion(`${label} drain`, () => got.join("/"), 180_000);
  let finished = 0;
  t = performance.now();
  const consumers = await Promise.all(
    buses.map((bus, k) =>
      bus
        .subscribe(topic, `${label}-${k}`)
        .on(Event, async () => {
          if (++got[k] === limit && ++finished === count) all.done();
        })
        .start({ prefetch: 100, concurrency: 50 }),
    ),
  );
  await all.promise;
  const rate = (count * limit) / ((performance.now() - t) / 1000);
  await Promise.all(consumers.map((c) => c.stop()));
  await Promise.all(buses.map((b) => b.close()));
  return rate;
}
const drainPerSec = await drain(topic, 1, "one", N);
const fanoutPerSec = await drain(fanoutTopic, 4, "four", N / 5);

// latency, on its own topic
const latencies = [];
const latency = completion("latency", () => latencies.length, 180_000);
const latencyTopic = "latency";
await producer.ensure([{ kind: "topic", name: latencyTopic }]);
const consumerBus = newBus();
const consumer = await consumerBus
  .subscribe(latencyTopic, "latency")
  .on(Event, async (msg) => {
    latencies.push(performance.now() - msg.data.sentAt);
    if (latencies.length === LATENCY_N) latency.done();
  })
  .start({ prefetch: 100, concurrency: 50 });
await sleep(500);
const start = performance.now();
for (let i = 0; i < LATENCY_N; i++) {
  const wait = start + (i * 1000) / RATE - performance.now();
  if (wait > 1) await sleep(wait);
  void producer.publish(latencyTopic, Event, payload(i));
}
await latency.promise;
await consumer.stop();
await consumerBus.close();
await producer.close();
await server.close();
await serverStore.close();

// Drop the run's tables.
const client = new pg.Client({ connectionString: store });
await client.connect();
const { rows } = await client.query(
  "select tablename from pg_tables where schemaname = current_schema() and tablename like $1",
  [`${tablePrefix}\\_%`],
);
for (const { tablename } of rows) await client.query(`drop table if exists "${tablename}" cascade`);
await client.end();

const round = (x) => Math.round(x * 100) / 100;
const p50Ms = percentile(latencies, 50);
const p99Ms = percentile(latencies, 99);
console.log(
  `http-feed (postgres): append ${Math.round(appendPerSec)} events/s (batches of ${BATCH}); one consumer drains ${N} at ${Math.round(drainPerSec)} events/s; four consumers ${Math.round(fanoutPerSec)} events/s in total (${N / 5} each); append-to-handler at ${RATE}/s p50 ${round(p50Ms)} ms, p99 ${round(p99Ms)} ms`,
);
console.log(
  JSON.stringify({
    bench: "http-feed",
    store: "postgres",
    events: N,
    appendPerSec: Math.round(appendPerSec),
    drainPerSec: Math.round(drainPerSec),
    fourConsumersPerSec: Math.round(fanoutPerSec),
    fourConsumersEventsEach: N / 5,
    p50Ms: round(p50Ms),
    p99Ms: round(p99Ms),
  }),
);
process.exit(0);
