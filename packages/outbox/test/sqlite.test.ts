import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { SwitchyardError } from "@switchyard/core";
import { MemoryBroker, MemoryTransport } from "@switchyard/core/memory";
import { afterAll, describe, expect, it } from "vitest";
import { createSqliteOutbox, type SqliteOutbox } from "../src/sqlite.js";
import { describeOutboxStore, type FreshStore, handleJobs, memoryBus, Saved, uniq } from "./store-suite.js";

const dir = mkdtempSync(join(tmpdir(), "outbox-sqlite-"));
const outboxes: SqliteOutbox[] = [];
const connections: DatabaseSync[] = [];

afterAll(() => {
  for (const outbox of outboxes) outbox.close();
  for (const db of connections) db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh database file with an installed outbox, and the application's own connection to it. */
async function fresh(options: { leaseMs?: number } = {}) {
  const path = join(dir, `${uniq("app")}.db`);
  const leaseMs = options.leaseMs ?? 15_000;
  const outbox = createSqliteOutbox({ path, source: "blog-service", leaseMs });
  outboxes.push(outbox);
  await outbox.install();
  await outbox.install(); // idempotent
  const db = new DatabaseSync(path, { timeout: 5000 });
  connections.push(db);
  // One write transaction at a time on the connection, as SQLite runs them: callers queue.
  let last: Promise<unknown> = Promise.resolve();
  /** Runs `body` in a transaction of the application's connection; rolls back when asked or on error. */
  const tx = <T>(body: (db: DatabaseSync) => Promise<T>, rollback = false): Promise<T> => {
    const done = last.then(async () => {
      db.exec("BEGIN IMMEDIATE");
      try {
        const result = await body(db);
        db.exec(rollback ? "ROLLBACK" : "COMMIT");
        return result;
      } catch (error) {
        db.exec("ROLLBACK");
        throw error;
      }
    });
    last = done.catch(() => {});
    return done;
  };
  return {
    path,
    outbox,
    db,
    tx,
    childArgs: ["sqlite", path, String(leaseMs)],
    async leaderKilled() {
      // The dead relay's lease stays until it expires; the next relay leads only after that.
      const expiresAt = Number(
        db.prepare("SELECT expires_at FROM switchyard_outbox_lease").get()?.expires_at,
      );
      expect(expiresAt).toBeGreaterThan(Date.now());
      return () => expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    },
  };
}

describeOutboxStore("SQLite", fresh satisfies FreshStore<DatabaseSync>);

describe("createSqliteOutbox", () => {
  it("refuses bad options and a publish outside a transaction", async () => {
    for (const bad of [
      { path: "" },
      { path: ":memory:" },
      { path: "x.db", table: "x; drop" },
      { path: "x.db", table: "s.t" },
      { path: "x.db", leaseMs: 5 },
    ]) {
      expect(() => createSqliteOutbox(bad), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: "CONFIG_INVALID" }),
      );
    }
    const { outbox, db } = await fresh({ leaseMs: 3000 });
    await expect(outbox.publish(db, "blogs", Saved, { blogId: "b", n: 1 })).rejects.toMatchObject({
      code: "CONFIG_INVALID",
    });
    expect(() => outbox.relay(memoryBus(), { intervalMs: 1001 })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID" }), // the leader could not renew in time
    );
  });

  it("a relay in the application's process never blocks its event loop while the application holds the write lock", async () => {
    const { outbox, db } = await fresh({ leaseMs: 3000 });
    const bus = memoryBus();
    const handled = await handleJobs(bus);
    const relay = outbox.relay(bus, { intervalMs: 10 });
    await relay.elected;
    db.exec("BEGIN IMMEDIATE");
    await outbox.send(db, "jobs", Saved, { blogId: "x", n: 1 });
    // The transaction stays open across 30 timer turns; meanwhile the relay's lease renewals are
    // busy. A synchronous busy wait (SQLite's own, 5 s by default) would stall the turns.
    const gaps: number[] = [];
    await new Promise<void>((resolve) => {
      let last = Date.now();
      const timer = setInterval(() => {
        gaps.push(Date.now() - last);
        last = Date.now();
        if (gaps.length === 30) {
          clearInterval(timer);
          resolve();
        }
      }, 10);
    });
    db.exec("COMMIT");
    expect(Math.max(...gaps)).toBeLessThan(1000);
    await expect.poll(() => handled).toEqual([1]);
    await relay.stop();
  });

  it("a leader that died holding the lease is replaced once the lease expires, not before", async () => {
    const { path, outbox, tx } = await fresh({ leaseMs: 1000 });
    await tx((db) => outbox.send(db, "jobs", Saved, { blogId: "x", n: 1 }));
    // A relay that took the lease and died (it will never renew it).
    const db = new DatabaseSync(path);
    connections.push(db);
    const expiresAt = Date.now() + 1000;
    db.prepare(
      "INSERT INTO switchyard_outbox_lease (name, owner, expires_at) VALUES ('relay', 'dead', ?)",
    ).run(expiresAt);
    const bus = memoryBus();
    const handled = await handleJobs(bus);
    const relay = outbox.relay(bus, { intervalMs: 50 });
    await relay.elected;
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt); // it waited on standby until the expiry
    await expect.poll(() => handled).toEqual([1]);
    expect(db.prepare("SELECT owner FROM switchyard_outbox_lease").get()?.owner).not.toBe("dead");
    await relay.stop();
  });

  it("a leader stalled past its lease steps down after the batch in flight; the standby takes over", async () => {
    const { outbox, tx } = await fresh({ leaseMs: 600 });
    const broker = new MemoryBroker();
    const handled = await handleJobs(memoryBus(new MemoryTransport({ broker })), { idempotency: true });
    // The first relay's first send hangs (a long GC pause, a stuck socket) until released.
    const stalled = new MemoryTransport({ broker });
    const publish = stalled.publish.bind(stalled);
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let hung!: () => void;
    const hanging = new Promise<void>((resolve) => {
      hung = resolve;
    });
    let calls = 0;
    stalled.publish = async (destination, messages) => {
      await publish(destination, messages);
      if (calls++ === 0) {
        hung();
        await held;
      }
    };
    const errors: unknown[] = [];
    const first = outbox.relay(memoryBus(stalled), { intervalMs: 50, onError: (e) => errors.push(e) });
    await first.elected;
    await tx((db) => outbox.send(db, "jobs", Saved, { blogId: "x", n: 1 }));
    await hanging;
    const second = outbox.relay(memoryBus(new MemoryTransport({ broker })), { intervalMs: 50 });
    await second.elected; // the stalled leader did not renew: its lease expired
    await tx((db) => outbox.send(db, "jobs", Saved, { blogId: "x", n: 2 }));
    await expect.poll(() => handled).toEqual([1, 2]); // n=1 sent by the stalled one, n=2 by the new leader
    release();
    await expect.poll(() => errors.map((e) => (e as SwitchyardError).code)).toContain("TIMEOUT");
    expect(first.stats.leader).toBe(false);
    await tx((db) => outbox.send(db, "jobs", Saved, { blogId: "x", n: 3 }));
    await expect.poll(() => handled).toEqual([1, 2, 3]);
    expect(first.stats.sent).toBeLessThanOrEqual(1); // the stalled one sent nothing after stepping down
    expect(second.stats.leader).toBe(true);
    await Promise.all([first.stop(), second.stop()]);
  });
});
