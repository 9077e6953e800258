// node:sqlite against better-sqlite3 on the SQLite store's hot statements (the same SQL as
// src/sqlite.ts), on a file in WAL mode with synchronous=NORMAL, 1 KiB events:
//   append: 100 events in one BEGIN IMMEDIATE transaction (INSERT … ON CONFLICT DO NOTHING RETURNING)
//   read:   one page of 100 events after a position (SELECT … ORDER BY seq LIMIT 100)
//   claim:  UPDATE … RETURNING 100 pending rows, then DELETE each (ack), as the consumer does
// (Positional `?` only: better-sqlite3 does not bind numbered `?N` from a list.)
// better-sqlite3 is not a dependency (a native addon: its install downloads a prebuilt binary or
// compiles); point BETTER_SQLITE3 at an installed copy to include it:
//   BETTER_SQLITE3=/path/to/node_modules/better-sqlite3 node adapters/http-feed/bench/sqlite-drivers.bench.mjs
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

const ROUNDS = process.argv.includes("--quick") ? 100 : 500;
const PAGE = 100;
const EVENT = JSON.stringify({ specversion: "1.0", data: { note: "x".repeat(1024 - 120) } });

const drivers = [["node:sqlite", (path) => new DatabaseSync(path)]];
if (process.env.BETTER_SQLITE3) {
  const Database = createRequire(import.meta.url)(process.env.BETTER_SQLITE3);
  drivers.push(["better-sqlite3", (path) => new Database(path)]);
}

function bench(open) {
  const dir = mkdtempSync(join(tmpdir(), "sqlite-drivers-"));
  const db = open(join(dir, "bench.db"));
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
  db.exec(`
    CREATE TABLE feed (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, id TEXT NOT NULL,
      subject TEXT, method TEXT, event TEXT NOT NULL);
    CREATE UNIQUE INDEX feed_id ON feed (topic, id);
    CREATE INDEX feed_topic ON feed (topic, seq);
    CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, name TEXT NOT NULL,
      sub TEXT NOT NULL, id TEXT NOT NULL, key TEXT, headers TEXT NOT NULL, body BLOB NOT NULL,
      attempt INTEGER NOT NULL DEFAULT 0, visible_at INTEGER NOT NULL, lease_until INTEGER);
    CREATE INDEX pending_ready ON pending (kind, name, sub, seq);`);
  const insert = db.prepare(
    `INSERT INTO feed (topic, id, subject, method, event) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (topic, id) DO NOTHING RETURNING seq`,
  );
  const read = db.prepare("SELECT seq, id, event FROM feed WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?");
  const fill = db.prepare(
    "INSERT INTO pending (kind, name, sub, id, key, headers, body, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const claim = db.prepare(
    `UPDATE pending SET attempt = attempt + 1, lease_until = ? WHERE seq IN (
       SELECT seq FROM pending WHERE kind = ? AND name = ? AND sub = ? AND visible_at <= ?
         AND (lease_until IS NULL OR lease_until < ?) ORDER BY seq LIMIT ?)
     RETURNING seq, id, key, headers, body, attempt`,
  );
  const ack = db.prepare("DELETE FROM pending WHERE seq = ? RETURNING kind, name, sub, key");
  const figures = {};
  const time = (name, body) => {
    const t = performance.now();
    body();
    const ms = performance.now() - t;
    figures[name] = {
      opsPerSec: Math.round(ROUNDS / (ms / 1000)),
      rowsPerSec: Math.round((ROUNDS * PAGE) / (ms / 1000)),
    };
  };
  time("appendBatch", () => {
    for (let r = 0; r < ROUNDS; r++) {
      db.exec("BEGIN IMMEDIATE");
      for (let i = 0; i < PAGE; i++) insert.get("orders", `e-${r}-${i}`, `s${i % 10}`, null, EVENT);
      db.exec("COMMIT");
    }
  });
  let after = 0;
  time("readPage", () => {
    for (let r = 0; r < ROUNDS; r++) {
      const rows = read.all("orders", after, PAGE);
      after = Number(rows.at(-1).seq);
    }
  });
  const headers = JSON.stringify({ ce_type: "bench", ce_source: "bench", ce_specversion: "1.0" });
  const body = new Uint8Array(Buffer.from(EVENT));
  db.exec("BEGIN IMMEDIATE");
  for (let i = 0; i < ROUNDS * PAGE; i++) fill.run("topic", "orders", "s", `e-${i}`, null, headers, body, 0);
  db.exec("COMMIT");
  time("claimAndAck", () => {
    for (let r = 0; r < ROUNDS; r++) {
      const now = Date.now();
      db.exec("BEGIN IMMEDIATE");
      const rows = claim.all(now + 30_000, "topic", "orders", "s", now, now, PAGE);
      db.exec("COMMIT");
      for (const row of rows) ack.all(row.seq);
    }
  });
  db.exec("BEGIN IMMEDIATE");
  for (let i = 0; i < ROUNDS * PAGE; i++) fill.run("topic", "orders", "s", `f-${i}`, null, headers, body, 0);
  db.exec("COMMIT");
  // The same, with the page's acks in one transaction (what the store does since the bench).
  time("claimAndAckBatched", () => {
    for (let r = 0; r < ROUNDS; r++) {
      const now = Date.now();
      db.exec("BEGIN IMMEDIATE");
      const rows = claim.all(now + 30_000, "topic", "orders", "s", now, now, PAGE);
      db.exec("COMMIT");
      db.exec("BEGIN IMMEDIATE");
      for (const row of rows) ack.all(row.seq);
      db.exec("COMMIT");
    }
  });
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return figures;
}

// Interleaved runs, the median of each figure (the machine is shared: one run alone is noise).
const RUNS = 5;
const runs = Object.fromEntries(drivers.map(([name]) => [name, []]));
for (const [, open] of drivers) bench(open); // warm-up: JIT, page cache
for (let i = 0; i < RUNS; i++) for (const [name, open] of drivers) runs[name].push(bench(open));
const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
const results = {};
for (const [name] of drivers) {
  results[name] = {};
  for (const op of Object.keys(runs[name][0])) {
    results[name][`${op}RowsPerSec`] = median(runs[name].map((run) => run[op].rowsPerSec));
  }
  console.log(name, JSON.stringify(results[name]));
}
console.log(
  JSON.stringify({
    bench: "http-feed-sqlite-drivers",
    node: process.version,
    page: PAGE,
    rounds: ROUNDS,
    results,
  }),
);
