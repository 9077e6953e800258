// `pnpm bench http-feed [--quick] [--store=sqlite|postgres]`: the http-feed adapter end to end on
// loopback, in one run, on the SQLite store (the figures) and then on the PostgreSQL store
// (PG_URL or the broker stack's 127.0.0.1:5433; left out when unreachable): a feed server over the
// producer's store, producer and consumers as buses polling it over real HTTP, ~1 KiB JSON events
// (`{ id, sentAt, note }`, schema-checked), adapter defaults (page size 100, long polls):
//   append/s     N events appended with `bus.publishBatch` of 100, 4 batches in flight
//   drain/s      one consumer (prefetch 100, concurrency 50) draining that backlog of N from the start
//   fanout/s     four consumers (separate subscriptions) reading a second feed of N/5 events at
//                once (bounded run time): total events handled per second over all four
//   latency      p50/p99 append-to-handler under long polling at a fixed rate (100 events/s), on a
//                second topic, one consumer
// SQLite: two files in a temporary folder, the producer's feed and the consumers' positions and
// pending rows (two services), removed at the end. PostgreSQL: fresh tables per run (prefix
// bench_<run>), dropped at the end. There is no raw baseline: the targets are absolute
// (drain ≥ 20,000 events/s, p99 < 20 ms).
// Ends with one JSON line {"bench":"http-feed","appendPerSec":…,"drainPerSec":…,"p99Ms":…} (SQLite),
// the PostgreSQL figures under "postgres".
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createBus, defineMessage } from "@switchyard/core";
import pg from "pg";
import { completion, percentile, pool, shapeSchema, sleep } from "../../../scripts/bench-kit.mjs";
import { HttpFeedTransport, PostgresStore, SqliteStore, startFeedServer } from "../dist/index.js";

const quick = process.argv.includes("--quick");
const only = process.argv.find((a) => a.startsWith("--store="))?.slice("--store=".length);
const pgUrl = process.env.PG_URL ?? "postgres://postgres:postgres@127.0.0.1:5433/postgres";
const N = quick ? 10_000 : 100_000;
const BATCH = 100;
const IN_FLIGHT = 4;
const RATE = 100;
const LATENCY_N = quick ? 300 : 1_000;
const NOTE = "x".repeat(1024 - 80);
const payload = (id) => ({ id, sentAt: performance.now(), note: NOTE });

const schema = shapeSchema({ id: "number", sentAt: "number", note: "string" });
const Event = defineMessage({ type: "bench.feed", versions: { 1: schema } });
const round = (x) => Math.round(x * 100) / 100;

async function runOn(kind) {
  const run = randomUUID().slice(0, 8);
  const tablePrefix = `bench_${run}`;
  let serverStore;
  let producerStore;
  let consumerStore;
  let cleanup;
  if (kind === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "http-feed-bench-"));
    producerStore = `sqlite://${join(dir, "producer.db")}`;
    consumerStore = `sqlite://${join(dir, "consumer.db")}`;
    serverStore = new SqliteStore({ path: join(dir, "producer.db"), tablePrefix });
    cleanup = async () => rmSync(dir, { recursive: true, force: true });
  } else {
    producerStore = consumerStore = pgUrl;
    serverStore = new PostgresStore({ url: pgUrl, tablePrefix });
    cleanup = async () => {
      const client = new pg.Client({ connectionString: pgUrl });
      await client.connect();
      const { rows } = await client.query(
        "select tablename from pg_tables where schemaname = current_schema() and tablename like $1",
        [`${tablePrefix}\\_%`],
      );
      for (const { tablename } of rows) await client.query(`drop table if exists "${tablename}" cascade`);
      await client.end();
    };
  }
  await serverStore.init();
  const server = await startFeedServer({ store: serverStore, basePath: "/feeds" });
  const newBus = (store) =>
    createBus({
      transport: new HttpFeedTransport({ store, tablePrefix, feedUrl: server.url }),
      source: "bench",
    });
  const producer = newBus(producerStore);
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
  await pool(N / 5 / BATCH, IN_FLIGHT, (b) =>
    producer.publishBatch(
      fanoutTopic,
      Event,
      Array.from({ length: BATCH }, (_, i) => ({ data: payload(b * BATCH + i) })),
    ),
  );

  /** Drains the backlog with `count` consumers (one subscription each), returns total events/s. */
  /** CPU time of this process (server, producer and consumers) per event drained, µs: load-proof. */
  const cpuUsPerEvent = {};
  async function drain(topic, count, label, limit) {
    const buses = Array.from({ length: count }, () => newBus(consumerStore));
    const got = new Array(count).fill(0);
    const all = completion(`${label} drain`, () => got.join("/"), quick ? 60_000 : 180_000);
    let finished = 0;
    const cpu = process.cpuUsage();
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
    const used = process.cpuUsage(cpu);
    cpuUsPerEvent[label] = round((used.user + used.system) / (count * limit));
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
  const consumerBus = newBus(consumerStore);
  const consumer = await consumerBus
    .subscribe(latencyTopic, "latency")
    .on(Event, async (msg) => {
      latencies.push(performance.now() - msg.data.sentAt);
      if (latencies.length === LATENCY_N) latency.done();
    })
    .start({ prefetch: 100, concurrency: 50 });
  await sleep(500); // the consumer's first long poll is waiting
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
  await cleanup();

  const p50Ms = percentile(latencies, 50);
  const p99Ms = percentile(latencies, 99);
  console.log(
    `http-feed (${kind}): append ${Math.round(appendPerSec)} events/s (batches of ${BATCH}); one consumer drains ${N} at ${Math.round(drainPerSec)} events/s; four consumers ${Math.round(fanoutPerSec)} events/s in total (${N / 5} each); append-to-handler at ${RATE}/s p50 ${round(p50Ms)} ms, p99 ${round(p99Ms)} ms`,
  );
  return {
    appendPerSec: Math.round(appendPerSec),
    drainPerSec: Math.round(drainPerSec),
    fourConsumersPerSec: Math.round(fanoutPerSec),
    fourConsumersEventsEach: N / 5,
    p50Ms: round(p50Ms),
    p99Ms: round(p99Ms),
    drainCpuUsPerEvent: cpuUsPerEvent.one,
    fourConsumersCpuUsPerEvent: cpuUsPerEvent.four,
  };
}

async function postgresReachable() {
  const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    return true;
  } catch {
    console.warn("http-feed bench: PostgreSQL unreachable, its row is left out");
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

const loadBefore = loadavg()[0];
const result = { bench: "http-feed", store: "sqlite", events: N };
if (only !== "postgres") Object.assign(result, await runOn("sqlite"));
if (only !== "sqlite" && (await postgresReachable())) result.postgres = await runOn("postgres");
result.loadAvg1m = { before: round(loadBefore), after: round(loadavg()[0]) };
console.log(JSON.stringify(result));
process.exit(0);
