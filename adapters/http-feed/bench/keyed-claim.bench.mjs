// `pnpm bench keyed-claim [--quick]`: claims from a deep keyed backlog, straight on the stores (no
// HTTP, no bus): N pending rows over 10 keys (what a feed whose events have a subject leaves behind a
// slow consumer), drained the way the consumer does it: claim up to 100 (one row per key can be held
// at a time), ack what came, again. Figures: rows/s and the mean claim time, on SQLite and on
// PostgreSQL (PG_URL or 127.0.0.1:5433; left out when unreachable). Fresh tables, dropped after.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { PostgresStore, SqliteStore } from "../dist/index.js";

const N = process.argv.includes("--quick") ? 5_000 : 20_000;
const KEYS = 10;
const pgUrl = process.env.PG_URL ?? "postgres://postgres:postgres@127.0.0.1:5433/postgres";
const body = new Uint8Array(Buffer.from(JSON.stringify({ note: "x".repeat(1000) })));
const round = (x) => Math.round(x * 100) / 100;

async function measure(store) {
  await store.init();
  const key = { kind: "topic", name: "orders", sub: "bench" };
  for (let from = 0; from < N; from += 1000) {
    await store.enqueue(
      key,
      Array.from({ length: 1000 }, (_, i) => ({
        id: `e-${from + i}`,
        key: `k${(from + i) % KEYS}`,
        headers: { ce_type: "bench" },
        body,
      })),
    );
  }
  let handled = 0;
  let claims = 0;
  let claimMs = 0;
  const t = performance.now();
  while (handled < N) {
    const c = performance.now();
    const rows = await store.claim(key, 100, 30_000);
    claimMs += performance.now() - c;
    claims++;
    if (rows.length === 0) throw new Error(`nothing claimable with ${N - handled} left`);
    await Promise.all(rows.map((row) => store.ack(row.seq)));
    handled += rows.length;
  }
  const ms = performance.now() - t;
  await store.close();
  return {
    rows: N,
    keys: KEYS,
    rowsPerSec: Math.round(N / (ms / 1000)),
    claims,
    meanClaimMs: round(claimMs / claims),
  };
}

const result = { bench: "http-feed-keyed-claim" };
const dir = mkdtempSync(join(tmpdir(), "keyed-claim-"));
result.sqlite = await measure(new SqliteStore({ path: join(dir, "bench.db") }));
rmSync(dir, { recursive: true, force: true });
console.log("sqlite", JSON.stringify(result.sqlite));
const tablePrefix = `bench_${randomUUID().slice(0, 8)}`;
const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 2000 });
try {
  await client.connect();
} catch {
  console.warn("PostgreSQL unreachable: its figures are left out");
}
if (client._connected) {
  result.postgres = await measure(new PostgresStore({ url: pgUrl, tablePrefix }));
  console.log("postgres", JSON.stringify(result.postgres));
  const { rows } = await client.query(
    "select tablename from pg_tables where schemaname = current_schema() and tablename like $1",
    [`${tablePrefix}\\_%`],
  );
  for (const { tablename } of rows) await client.query(`drop table if exists "${tablename}" cascade`);
}
await client.end().catch(() => {});
result.loadAvg1m = round(loadavg()[0]);
console.log(JSON.stringify(result));
