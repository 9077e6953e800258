import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { isSwitchyardError } from "@switchyard/core";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { SqliteStore } from "../src/index.js";

/**
 * Another process (another server instance, a CLI) holding SQLite's write lock on the store's file
 * must not freeze this process: the store waits for the lock asynchronously, so timers, HTTP and
 * consumers keep running meanwhile.
 */

// The other process: appends one event in a write transaction it holds for `hold` ms, or until
// its stdin ends (`hold` = "stdin"), then commits. It says "locked" once it holds the lock.
const holderSource = `
const { DatabaseSync } = require("node:sqlite");
const [file, topic, hold] = process.argv.slice(1);
const db = new DatabaseSync(file);
db.exec("BEGIN IMMEDIATE");
db.prepare("INSERT INTO switchyard_feed_events (topic, id, event) VALUES (?, 'other-process', '{}')").run(topic);
const release = () => { db.exec("COMMIT"); db.close(); };
if (hold === "stdin") process.stdin.on("end", release).resume();
else setTimeout(release, Number(hold));
process.stdout.write("locked\\n");
`;

interface Holder {
  child: ChildProcess;
  release(): void;
  exited: Promise<void>;
}

async function holdWriteLock(file: string, topic: string, hold: number | "stdin"): Promise<Holder> {
  const child = spawn(process.execPath, ["-e", holderSource, file, topic, String(hold)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve, reject) =>
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`holder exited ${code}`)))),
  );
  onTestFinished(async () => {
    child.stdin?.end();
    await exited.catch(() => {});
  });
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    lines.once("line", () => resolve());
    exited.then(() => reject(new Error("holder exited before locking")), reject);
  });
  return { child, release: () => child.stdin?.end(), exited };
}

/**
 * Runs `work` and reports how late the event loop ran meanwhile (ms, worst case): the longest gap
 * between two turns of a 5 ms interval, counted from the start, so a block that begins at once
 * inside `work` is measured too.
 */
async function withLoopDelay<T>(work: () => Promise<T>): Promise<{ result: T; maxDelayMs: number }> {
  let last = performance.now();
  let maxGapMs = 0;
  const gap = () => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  };
  const ticker = setInterval(gap, 5);
  try {
    const result = await work();
    gap();
    return { result, maxDelayMs: Math.max(0, maxGapMs - 5) };
  } finally {
    clearInterval(ticker);
  }
}

const event = (id: string) => ({
  id,
  json: JSON.stringify({ id, specversion: "1.0", type: "t", source: "s" }),
});

describe("SqliteStore waits for another process's write lock without blocking the event loop", () => {
  const dir = mkdtempSync(join(tmpdir(), "http-feed-lock-"));
  const file = join(dir, "store.db");
  let topicCount = 0;
  const newTopic = () => `lock-${++topicCount}`;
  let store: SqliteStore;
  beforeAll(async () => {
    store = new SqliteStore({ path: file });
    await store.init();
  });
  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const ids = async (topic: string) => {
    const read = await store.read(topic, undefined, 100);
    return read.status === "ok" ? read.events.map((e) => e.id) : [];
  };

  it("a write made while another process holds the lock for 1 s succeeds after it, timers keep running", async () => {
    const topic = newTopic();
    const holdMs = 1000;
    await holdWriteLock(file, topic, holdMs);
    const started = performance.now();
    const { maxDelayMs } = await withLoopDelay(() =>
      store.append(topic, [event("mine")], { compact: false }),
    );
    const waitedMs = performance.now() - started;
    console.log(
      `append waited ${waitedMs.toFixed(0)} ms for the lock; event loop delay max ${maxDelayMs.toFixed(1)} ms`,
    );
    // It waited for the other process, whose event committed first.
    expect(waitedMs).toBeGreaterThan(holdMs / 2);
    expect(await ids(topic)).toEqual(["other-process", "mine"]);
    expect(maxDelayMs).toBeLessThan(50);
  });

  it("every kind of write queued behind the lock is applied once, whole, after it", async () => {
    const topic = newTopic();
    const queue = { kind: "queue" as const, name: `q-${topic}`, sub: `q-${topic}` };
    const sub = { kind: "topic" as const, name: topic, sub: "s" };
    const wire = (id: string, key?: string) => ({
      id,
      headers: {},
      body: new TextEncoder().encode(id),
      ...(key ? { key } : {}),
    });
    await store.ensureCursor(sub);
    await store.enqueue(queue, [wire("q1", "k"), wire("q2", "k")]);
    const [q1] = await store.claim(queue, 10, 30_000);
    const holder = await holdWriteLock(file, topic, "stdin");
    const { result, maxDelayMs } = await withLoopDelay(async () => {
      const writes = Promise.all([
        store.append(topic, [event("a"), event("b")], { compact: false }),
        store.fill(sub, undefined, "b", [wire("a"), wire("b")]),
        store.fill(sub, undefined, "b", [wire("a"), wire("b")]),
        store.ack(q1!.seq),
        store.leasePoller(sub, "holder-1", 10_000),
        store.leasePoller(sub, "holder-2", 10_000),
      ]);
      // The writes are all waiting: the loop turns, so this timer fires before the lock is let go.
      await new Promise((resolve) => setTimeout(resolve, 100));
      holder.release();
      return writes;
    });
    await holder.exited;
    const [, firstFill, secondFill, , firstLease, secondLease] = result;
    expect(await ids(topic)).toEqual(["other-process", "a", "b"]);
    expect([firstFill, secondFill]).toEqual([true, false]);
    expect(await store.cursor(sub)).toBe("b");
    expect((await store.claim(sub, 10, 30_000)).map((r) => r.message.id)).toEqual(["a", "b"]);
    // q1's ack promoted q2 to the head of key k.
    expect((await store.claim(queue, 10, 30_000)).map((r) => r.message.id)).toEqual(["q2"]);
    expect([firstLease, secondLease]).toEqual([true, false]);
    expect(maxDelayMs).toBeLessThan(50);
  });

  it("a wait past busyTimeoutMs fails with TRANSPORT_ERROR and writes nothing", async () => {
    const topic = newTopic();
    const impatient = new SqliteStore({ path: file, busyTimeoutMs: 300 });
    onTestFinished(() => impatient.close());
    await impatient.init();
    const holder = await holdWriteLock(file, topic, "stdin");
    const started = performance.now();
    const { result: error, maxDelayMs } = await withLoopDelay(() =>
      impatient.append(topic, [event("late")], { compact: false }).then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    const waitedMs = performance.now() - started;
    expect(isSwitchyardError(error, "TRANSPORT_ERROR")).toBe(true);
    expect((error as Error).message).toMatch(/append to the feed: database is locked/);
    expect(waitedMs).toBeGreaterThanOrEqual(290);
    expect(waitedMs).toBeLessThan(1300);
    expect(maxDelayMs).toBeLessThan(50);
    holder.release();
    await holder.exited;
    expect(await ids(topic)).toEqual(["other-process"]);
    // The store works again once the lock is free.
    await impatient.append(topic, [event("later")], { compact: false });
    expect(await ids(topic)).toEqual(["other-process", "later"]);
  });
});
