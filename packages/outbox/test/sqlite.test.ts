import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import {
  type Bus,
  createBus,
  defineMessage,
  type Envelope,
  SwitchyardError,
  type Transport,
} from "@switchyard/core";
import { MemoryBroker, MemoryTransport } from "@switchyard/core/memory";
import * as rabbit from "@switchyard/rabbitmq";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createSqliteOutbox, type SqliteOutbox } from "../src/sqlite.js";

const Saved = defineMessage({
  type: "blog.saved",
  versions: { 1: z.object({ blogId: z.string(), n: z.number() }) },
});

const uniq = (p: string) => `${p}_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
const dir = mkdtempSync(join(tmpdir(), "outbox-sqlite-"));
const buses: Bus[] = [];
const outboxes: SqliteOutbox[] = [];
const connections: DatabaseSync[] = [];

afterAll(async () => {
  await Promise.all(buses.map((bus) => bus.close()));
  for (const outbox of outboxes) outbox.close();
  for (const db of connections) db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh database file with an installed outbox, and the application's own connection to it. */
async function fresh(options: { leaseMs?: number } = {}) {
  const path = join(dir, `${uniq("app")}.db`);
  const outbox = createSqliteOutbox({ path, source: "blog-service", ...options });
  outboxes.push(outbox);
  await outbox.install();
  await outbox.install(); // idempotent
  const db = new DatabaseSync(path, { timeout: 5000 });
  connections.push(db);
  db.exec("CREATE TABLE blog_posts (blog_id TEXT PRIMARY KEY)");
  /** Runs `body` in a transaction of the application's connection; rolls back when asked or on error. */
  const tx = async (body: (db: DatabaseSync) => Promise<unknown>, rollback = false) => {
    db.exec("BEGIN IMMEDIATE");
    try {
      await body(db);
      db.exec(rollback ? "ROLLBACK" : "COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  };
  return { path, outbox, db, tx };
}

function memoryBus(transport?: Transport): Bus {
  const bus = transport
    ? createBus({ transport, source: "relay" })
    : createBus({ url: `memory://${uniq("m")}`, source: "relay" });
  buses.push(bus);
  return bus;
}

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

  it("a rolled-back publish sends nothing; invalid data writes nothing; a committed one is sent", async () => {
    const { outbox, tx } = await fresh();
    await expect(
      tx((db) => outbox.publish(db, "blogs", Saved, { blogId: "b1", n: "one" } as any)),
    ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    await tx(async (db) => {
      db.prepare("INSERT INTO blog_posts (blog_id) VALUES (?)").run("b1");
      await outbox.publish(db, "blogs", Saved, { blogId: "b1", n: 1 });
    }, true);
    expect(await outbox.lag()).toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });

    const bus = memoryBus();
    const seen: number[] = [];
    await bus
      .subscribe("blogs", "reader")
      .on(Saved, (m) => void seen.push(m.data.n))
      .start();
    const relay = outbox.relay(bus, { intervalMs: 5000 });
    await relay.elected;
    await tx((db) => outbox.publish(db, "blogs", Saved, { blogId: "b1", n: 2 }));
    // Woken in-process after the publish (the poll interval is 5 s).
    await expect.poll(() => seen, { timeout: 3000 }).toEqual([2]);
    await expect.poll(() => outbox.lag()).toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });
    await relay.stop();
    expect(relay.stats).toMatchObject({ sent: 1, leader: false });
  });

  it("sends every committed row once, in order per key, with the envelope the publish built", async () => {
    const { outbox, tx } = await fresh();
    const bus = memoryBus();
    const got = new Map<string, number[]>();
    const received = new Map<string, { id: string; source: string; time: string; key?: string }>();
    await bus
      .subscribe("blogs", "reader")
      .on(Saved, (m) => {
        got.set(m.data.blogId, [...(got.get(m.data.blogId) ?? []), m.data.n]);
        received.set(m.id, m);
      })
      .start({ concurrency: 4 });
    const written: Envelope[] = [];
    for (let n = 0; n < 10; n++) {
      // One transaction per round, the keys interleaved.
      await tx(async (db) => {
        for (const blogId of ["a", "b", "c"])
          written.push(await outbox.publish(db, "blogs", Saved, { blogId, n }, { key: blogId }));
      });
    }
    expect((await outbox.lag()).unsent).toBe(30);
    const relay = outbox.relay(bus, { batchSize: 7, intervalMs: 50 });
    await expect.poll(() => received.size).toBe(30);
    for (const blogId of ["a", "b", "c"]) expect(got.get(blogId)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const sent of written) {
      expect(received.get(sent.id)).toMatchObject({
        id: sent.id,
        source: "blog-service",
        time: sent.time,
        key: sent.key,
      });
    }
    await expect.poll(() => outbox.lag()).toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });
    expect(relay.stats).toMatchObject({ sent: 30, leader: true });
    expect(relay.stats.batches).toBeGreaterThanOrEqual(5); // 30 rows, 7 a batch
    await relay.stop();
  });

  it("a relay in the application's process never blocks its event loop while the application holds the write lock", async () => {
    const { outbox, db } = await fresh({ leaseMs: 3000 });
    const bus = memoryBus();
    const handled: number[] = [];
    await bus
      .consume("jobs")
      .on(Saved, (m) => void handled.push(m.data.n))
      .start();
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

  it("two relays: only the lease holder sends; the standby takes over when it stops", async () => {
    const { outbox, tx } = await fresh({ leaseMs: 3000 });
    const bus = memoryBus();
    let count = 0;
    await bus
      .consume("jobs")
      .on(Saved, () => void count++)
      .start();
    const first = outbox.relay(bus, { intervalMs: 50 });
    await first.elected;
    const second = outbox.relay(bus, { intervalMs: 50 });
    await tx(async (db) => {
      for (let n = 0; n < 20; n++) await outbox.send(db, "jobs", Saved, { blogId: "x", n });
    });
    await expect.poll(() => count).toBe(20);
    await expect.poll(() => first.stats).toMatchObject({ leader: true, sent: 20 });
    expect(second.stats).toMatchObject({ leader: false, sent: 0 });
    await first.stop(); // gives the lease back: no wait for it to expire
    const handover = Date.now();
    await second.elected;
    expect(Date.now() - handover).toBeLessThan(3000);
    await tx((db) => outbox.send(db, "jobs", Saved, { blogId: "x", n: 20 }));
    await expect.poll(() => count).toBe(21);
    await expect.poll(() => second.stats).toMatchObject({ leader: true, sent: 1 });
    await second.stop();
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
    const handled: number[] = [];
    await bus
      .consume("jobs")
      .on(Saved, (m) => void handled.push(m.data.n))
      .start();
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
    const handled: number[] = [];
    const consumerBus = memoryBus(new MemoryTransport({ broker }));
    await consumerBus
      .consume("jobs")
      .on(Saved, (m) => void handled.push(m.data.n))
      .start({ idempotency: true });
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

  it("parks a row the bus refuses after maxAttempts; other keys go on, its key waits behind it", async () => {
    const { outbox, tx } = await fresh();
    const transport = new MemoryTransport({ broker: new MemoryBroker() });
    const publish = transport.publish.bind(transport);
    transport.publish = async (destination, messages) => {
      if (messages.some((m) => m.headers.poison === "yes"))
        throw new SwitchyardError("MESSAGE_TOO_LARGE", "refused by the broker");
      return publish(destination, messages);
    };
    const bus = memoryBus(transport);
    const handled: string[] = [];
    await bus
      .consume("jobs")
      .on(Saved, (m) => void handled.push(`${m.data.blogId}${m.data.n}`))
      .start({ concurrency: 1 });
    let poison = "";
    await tx(async (db) => {
      await outbox.send(db, "jobs", Saved, { blogId: "a", n: 0 }, { key: "a" });
      poison = (
        await outbox.send(db, "jobs", Saved, { blogId: "a", n: 1 }, { key: "a", headers: { poison: "yes" } })
      ).id;
      await outbox.send(db, "jobs", Saved, { blogId: "a", n: 2 }, { key: "a" });
      for (let n = 0; n < 3; n++) await outbox.send(db, "jobs", Saved, { blogId: "b", n }, { key: "b" });
      await outbox.send(db, "jobs", Saved, { blogId: "z", n: 0 }); // no key
    });
    const errors: unknown[] = [];
    const relay = outbox.relay(bus, { intervalMs: 20, maxAttempts: 3, onError: (e) => errors.push(e) });
    await expect.poll(() => relay.stats.parked).toBe(1);
    // Across keys no order is promised: sorted.
    await expect.poll(() => [...handled].sort()).toEqual(["a0", "b0", "b1", "b2", "z0"]);
    expect(handled.filter((h) => h.startsWith("b"))).toEqual(["b0", "b1", "b2"]);
    const [parked] = await outbox.parked();
    expect(parked).toMatchObject({ id: poison, key: "a", destination: "jobs", kind: "queue", attempts: 3 });
    expect(parked!.error).toContain("refused by the broker");
    expect(await outbox.lag()).toMatchObject({ unsent: 1, parked: 1 }); // a2, held behind the parked row
    // Later rounds: a new row of another key goes out, a2 still waits behind the parked row.
    await tx((db) => outbox.send(db, "jobs", Saved, { blogId: "b", n: 3 }, { key: "b" }));
    await expect.poll(() => handled).toContain("b3");
    expect(handled).not.toContain("a2");
    // Given up for good: discarded, and the row of its key held behind it goes on.
    expect(await outbox.discard("no-such-id")).toBe(false);
    expect(await outbox.discard(poison)).toBe(true);
    await expect.poll(() => handled.filter((h) => h.startsWith("a"))).toEqual(["a0", "a2"]);
    expect(await outbox.parked()).toEqual([]);
    await expect.poll(() => outbox.lag()).toMatchObject({ unsent: 0, parked: 0 });
    expect(errors.every((e) => (e as SwitchyardError).code === "MESSAGE_TOO_LARGE")).toBe(true);
    await relay.stop();
  });
});

describeWithBroker("rabbitmq", "SQLite outbox relay to RabbitMQ under faults", () => {
  const amqpUrl = brokerEndpoint("rabbitmq").url;
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill("SIGKILL");
  });

  it("a relay SIGKILLed mid-batch, lease held, loses nothing: the next takes over at expiry; duplicates are dropped", async () => {
    const leaseMs = 1500;
    const { path, outbox, tx } = await fresh({ leaseMs });
    const queue = uniq("outbox_sqlite_q");
    const consumerBus = createBus({ url: amqpUrl, adapter: rabbit, source: "consumer" });
    buses.push(consumerBus);
    const handled: number[] = [];
    let duplicates = 0;
    consumerBus.hooks.onSkip = (e) => {
      if (e.why === "duplicate") duplicates++;
    };
    await consumerBus
      .consume(queue)
      .on(Saved, (m) => void handled.push(m.data.n))
      .start({ idempotency: true, concurrency: 1 });
    await tx(async (db) => {
      for (let n = 0; n < 50; n++) await outbox.send(db, queue, Saved, { blogId: "k", n }, { key: "k" });
    });

    // A relay in a child process sends its first batch (20) and is SIGKILLed before deleting it.
    child = spawn(
      process.execPath,
      [fileURLToPath(new URL("./relay-child-sqlite.mjs", import.meta.url)), path, amqpUrl, String(leaseMs)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    await new Promise<void>((resolve, reject) => {
      child!.stdout!.on("data", (chunk) => {
        out += chunk;
        if (out.includes("published")) resolve();
      });
      child!.on("exit", (code) => reject(new Error(`child exited early (${code}): ${out}`)));
    });
    const exited = new Promise((resolve) => child!.on("exit", (_code, signal) => resolve(signal)));
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    // The dead child's lease stays until it expires.
    const leaseRow = new DatabaseSync(path);
    connections.push(leaseRow);
    const expiresAt = Number(
      leaseRow.prepare("SELECT expires_at FROM switchyard_outbox_lease").get()?.expires_at,
    );
    expect(expiresAt).toBeGreaterThan(Date.now());
    await expect.poll(() => handled.length).toBe(20);
    expect((await outbox.lag()).unsent).toBe(50); // nothing was deleted

    // A relay here waits for the dead child's lease to expire, then sends all 50 again.
    const relayBus = createBus({ url: amqpUrl, adapter: rabbit, source: "relay" });
    buses.push(relayBus);
    const relay = outbox.relay(relayBus, { batchSize: 20, intervalMs: 100 });
    await relay.elected;
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    await expect
      .poll(() => outbox.lag(), { timeout: 15_000 })
      .toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });
    await expect.poll(() => handled.length).toBe(50);
    expect(handled).toEqual(Array.from({ length: 50 }, (_, n) => n)); // each once, in order
    await expect.poll(() => duplicates).toBe(20); // the killed child's batch, again
    expect(relay.stats).toMatchObject({ leader: true, sent: 50 });
    await relay.stop();
  });
});
