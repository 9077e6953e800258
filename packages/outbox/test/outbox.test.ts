import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { type Bus, createBus, defineMessage, SwitchyardError, type Transport } from "@switchyard/core";
import { MemoryBroker, MemoryTransport } from "@switchyard/core/memory";
import * as rabbit from "@switchyard/rabbitmq";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createOutbox, type Outbox } from "../src/index.js";

const Saved = defineMessage({
  type: "blog.saved",
  versions: { 1: z.object({ blogId: z.string(), n: z.number() }) },
});

const uniq = (p: string) => `${p}_${randomUUID().replaceAll("-", "").slice(0, 12)}`;

describe("createOutbox", () => {
  it("refuses a bad table name", () => {
    expect(() => createOutbox({ pool: {} as pg.Pool, table: "x; drop" })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID" }),
    );
  });
});

describeWithBroker("postgres", "outbox on PostgreSQL", () => {
  const pgUrl = brokerEndpoint("postgres").url;
  const pool = new pg.Pool({ connectionString: pgUrl, max: 8 });
  pool.on("error", () => {});
  const tables: string[] = [];
  const buses: Bus[] = [];

  async function fresh(): Promise<Outbox> {
    const table = uniq("ob");
    tables.push(table);
    const outbox = createOutbox({ pool, table, source: "blog-service" });
    await outbox.install();
    await outbox.install(); // idempotent
    return outbox;
  }
  function memoryBus(): Bus {
    const bus = createBus({ url: `memory://${uniq("m")}`, source: "relay" });
    buses.push(bus);
    return bus;
  }
  async function tx<T>(body: (client: pg.PoolClient) => Promise<T>, rollback = false): Promise<T> {
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const result = await body(client);
      await client.query(rollback ? "ROLLBACK" : "COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK");
      throw error;
    } finally {
      client.release();
    }
  }

  afterAll(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    for (const table of tables) await pool.query(`DROP TABLE IF EXISTS ${table}`);
    await pool.end();
  });

  it("refuses invalid data with VALIDATION_FAILED and writes nothing; a rollback writes and sends nothing", async () => {
    const outbox = await fresh();
    await expect(
      tx((c) => outbox.publish(c, "blogs", Saved, { blogId: "b1", n: "one" } as any)),
    ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    await tx((c) => outbox.publish(c, "blogs", Saved, { blogId: "b1", n: 1 }), true);
    expect(await outbox.lag()).toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });

    const bus = memoryBus();
    const seen: number[] = [];
    await bus
      .subscribe("blogs", "reader")
      .on(Saved, (m) => void seen.push(m.data.n))
      .start();
    const relay = outbox.relay(bus, { intervalMs: 50 });
    await relay.elected;
    await tx((c) => outbox.publish(c, "blogs", Saved, { blogId: "b1", n: 2 }));
    await expect.poll(() => seen).toEqual([2]); // the committed one only
    await relay.stop();
    expect(relay.stats).toMatchObject({ sent: 1, leader: false });
  });

  it("sends committed rows exactly once, in order per key, with the envelope the publish built", async () => {
    const outbox = await fresh();
    const bus = memoryBus();
    const got = new Map<string, number[]>();
    const envelopes: Array<{ id: string; source: string; time: string; key?: string; headers: object }> = [];
    await bus
      .subscribe("blogs", "reader")
      .on(Saved, (m) => {
        got.set(m.data.blogId, [...(got.get(m.data.blogId) ?? []), m.data.n]);
        envelopes.push(m);
      })
      .start({ concurrency: 1 });
    // Written before the relay starts (a backlog) and while it runs, from concurrent transactions.
    const written = await Promise.all(
      ["a", "b", "c"].map((blogId) =>
        tx(async (c) => {
          const out = [];
          for (let n = 0; n < 10; n++)
            out.push(
              await outbox.publish(c, "blogs", Saved, { blogId, n }, { key: blogId, headers: { h: "v" } }),
            );
          return out;
        }),
      ),
    );
    expect((await outbox.lag()).unsent).toBe(30);
    const relay = outbox.relay(bus, { batchSize: 7, intervalMs: 10_000 });
    await expect.poll(() => envelopes.length).toBe(30);
    // Woken by NOTIFY (the poll interval is 10 s): more rows go out at once.
    await tx((c) => outbox.publish(c, "blogs", Saved, { blogId: "a", n: 10 }, { key: "a" }));
    await expect.poll(() => envelopes.length, { timeout: 3000 }).toBe(31);
    expect(got.get("a")).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(got.get("b")).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const byId = new Map(envelopes.map((e) => [e.id, e]));
    for (const sent of written.flat()) {
      expect(byId.get(sent.id)).toMatchObject({
        id: sent.id,
        source: "blog-service",
        time: sent.time,
        key: sent.key,
        headers: { h: "v" },
      });
    }
    await expect.poll(() => outbox.lag()).toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });
    expect(relay.stats.sent).toBe(31);
    await relay.stop();
  });

  it("two relays: only the lock holder sends; the standby takes over when it stops", async () => {
    const outbox = await fresh();
    const bus = memoryBus();
    let count = 0;
    await bus
      .consume("jobs")
      .on(Saved, () => void count++)
      .start();
    const first = outbox.relay(bus, { intervalMs: 50 });
    await first.elected;
    const second = outbox.relay(bus, { intervalMs: 50 });
    await tx(async (c) => {
      for (let n = 0; n < 20; n++) await outbox.send(c, "jobs", Saved, { blogId: "x", n });
    });
    await expect.poll(() => count).toBe(20);
    await expect.poll(() => first.stats).toMatchObject({ leader: true, sent: 20 });
    expect(second.stats).toMatchObject({ leader: false, sent: 0 });
    await first.stop();
    await second.elected;
    await tx((c) => outbox.send(c, "jobs", Saved, { blogId: "x", n: 20 }));
    await expect.poll(() => count).toBe(21);
    await expect.poll(() => second.stats).toMatchObject({ leader: true, sent: 1 });
    await second.stop();
  });

  it("same-named tables in two schemas have a leader each; a qualified and an unqualified name of one table share it", async () => {
    const schemas = [uniq("sa"), uniq("sb")];
    const pools = schemas.map((schema) => {
      const p = new pg.Pool({ connectionString: pgUrl, max: 2, options: `-c search_path=${schema}` });
      p.on("error", () => {});
      return p;
    });
    try {
      for (const schema of schemas) await pool.query(`CREATE SCHEMA ${schema}`);
      const [a, b] = pools.map((p) => createOutbox({ pool: p, table: "ob_same" }));
      await a!.install();
      await b!.install();
      const bus = memoryBus();
      const got: string[] = [];
      await bus
        .consume("jobs")
        .on(Saved, (m) => void got.push(m.data.blogId))
        .start();
      const relayA = a!.relay(bus, { intervalMs: 50 });
      const relayB = b!.relay(bus, { intervalMs: 50 });
      await Promise.all([relayA.elected, relayB.elected]); // two locks: both lead
      // The same table as sa.ob_same, named with its schema: it must wait for relayA's lock.
      const qualified = createOutbox({ pool, table: `${schemas[0]}.ob_same` }).relay(bus, { intervalMs: 50 });
      for (const [i, p] of pools.entries()) {
        const client = await p.connect();
        await client.query("BEGIN");
        await (i === 0 ? a! : b!).send(client, "jobs", Saved, { blogId: schemas[i]!, n: 1 });
        await client.query("COMMIT");
        client.release();
      }
      await expect.poll(() => [...got].sort()).toEqual([...schemas].sort());
      await expect.poll(() => relayA.stats.sent + relayB.stats.sent).toBe(2);
      expect(qualified.stats.leader).toBe(false);
      await relayA.stop();
      await qualified.elected;
      await Promise.all([relayB.stop(), qualified.stop()]);
    } finally {
      for (const schema of schemas) await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it("parks a row the bus refuses after maxAttempts; other keys go on, its key waits behind it", async () => {
    const outbox = await fresh();
    let poisonAllowed = false;
    const transport = new MemoryTransport({ broker: new MemoryBroker() });
    const publish = transport.publish.bind(transport);
    transport.publish = async (destination, messages) => {
      if (!poisonAllowed && messages.some((m) => m.headers.poison === "yes"))
        throw new SwitchyardError("MESSAGE_TOO_LARGE", "refused by the broker");
      return publish(destination, messages);
    };
    const bus = createBus({ transport, source: "relay" });
    buses.push(bus);
    const handled: string[] = [];
    await bus
      .consume("jobs")
      .on(Saved, (m) => void handled.push(`${m.data.blogId}${m.data.n}`))
      .start({ concurrency: 1 });
    const poison = await tx(async (c) => {
      await outbox.send(c, "jobs", Saved, { blogId: "a", n: 0 }, { key: "a" });
      const bad = await outbox.send(
        c,
        "jobs",
        Saved,
        { blogId: "a", n: 1 },
        { key: "a", headers: { poison: "yes" } },
      );
      await outbox.send(c, "jobs", Saved, { blogId: "a", n: 2 }, { key: "a" });
      for (let n = 0; n < 3; n++) await outbox.send(c, "jobs", Saved, { blogId: "b", n }, { key: "b" });
      await outbox.send(c, "jobs", Saved, { blogId: "z", n: 0 }); // no key
      return bad;
    });
    const errors: unknown[] = [];
    const relay = outbox.relay(bus, { intervalMs: 20, maxAttempts: 3, onError: (e) => errors.push(e) });
    await expect.poll(() => relay.stats.parked).toBe(1);
    await expect.poll(() => [...handled].sort()).toEqual(["a0", "b0", "b1", "b2", "z0"]);
    expect(handled.filter((h) => h.startsWith("b"))).toEqual(["b0", "b1", "b2"]);
    const [parked] = await outbox.parked();
    expect(parked).toMatchObject({
      id: poison.id,
      key: "a",
      destination: "jobs",
      kind: "queue",
      attempts: 3,
    });
    expect(parked!.error).toContain("refused by the broker");
    expect(parked!.failedAt).toBeInstanceOf(Date);
    expect(await outbox.lag()).toMatchObject({ unsent: 1, parked: 1 }); // a2, held behind the parked row
    // Later rounds: a new row of another key goes out, a2 still waits behind the parked row.
    await tx((c) => outbox.send(c, "jobs", Saved, { blogId: "b", n: 3 }, { key: "b" }));
    await expect.poll(() => handled).toContain("b3");
    expect(handled).not.toContain("a2");
    // Once the broker takes it, a retried row goes out, and the row of its key held behind it after it.
    poisonAllowed = true;
    expect(await outbox.retry("no-such-id")).toBe(false);
    expect(await outbox.retry(poison.id)).toBe(true);
    await expect.poll(() => handled.filter((h) => h.startsWith("a"))).toEqual(["a0", "a1", "a2"]);
    await expect.poll(() => outbox.lag()).toMatchObject({ unsent: 0, parked: 0 });
    expect(errors.every((e) => (e as SwitchyardError).code === "MESSAGE_TOO_LARGE")).toBe(true);
    await relay.stop();
  });

  it("install() upgrades a table made by the first release (no parking columns) and keeps its rows", async () => {
    const table = uniq("ob_old");
    tables.push(table);
    await pool.query(`
      CREATE TABLE ${table} (
        seq bigserial PRIMARY KEY, kind text NOT NULL, destination text NOT NULL, id text NOT NULL,
        key text, headers jsonb NOT NULL, body bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())`);
    const outbox = createOutbox({ pool, table });
    // A row written before the upgrade (publish's INSERT is the same in both releases).
    await tx((c) => outbox.send(c, "jobs", Saved, { blogId: "x", n: 1 }));
    await outbox.install();
    expect(await outbox.lag()).toMatchObject({ unsent: 1, parked: 0 });
    const bus = memoryBus();
    const handled: number[] = [];
    await bus
      .consume("jobs")
      .on(Saved, (m) => void handled.push(m.data.n))
      .start();
    const relay = outbox.relay(bus, { intervalMs: 50 });
    await expect.poll(() => handled).toEqual([1]);
    await relay.stop();
  });

  it("a broker outage (TRANSPORT_ERROR) is no attempt: nothing is parked, all is sent when it is back", async () => {
    const outbox = await fresh();
    const transport = new MemoryTransport({ broker: new MemoryBroker() });
    const publish = transport.publish.bind(transport);
    let failures = 6;
    transport.publish = async (destination, messages) => {
      if (failures-- > 0) throw new SwitchyardError("TRANSPORT_ERROR", "broker away");
      return publish(destination, messages);
    };
    const bus = createBus({ transport, source: "relay" });
    buses.push(bus);
    let count = 0;
    await bus
      .consume("jobs")
      .on(Saved, () => void count++)
      .start();
    await tx(async (c) => {
      for (let n = 0; n < 3; n++) await outbox.send(c, "jobs", Saved, { blogId: "k", n }, { key: "k" });
    });
    const relay = outbox.relay(bus, { intervalMs: 20, maxAttempts: 2 });
    await expect.poll(() => count).toBe(3);
    await expect.poll(() => relay.stats).toMatchObject({ parked: 0, sent: 3, errors: 6 });
    expect(await outbox.parked()).toEqual([]);
    await relay.stop();
  });

  describeWithBroker("rabbitmq", "relay to RabbitMQ under faults", () => {
    const amqpUrl = brokerEndpoint("rabbitmq").url;
    let child: ChildProcess | undefined;
    afterAll(() => {
      child?.kill("SIGKILL");
    });
    const rabbitBus = (transport?: Transport) => {
      const bus = transport
        ? createBus({ transport, source: "relay" })
        : createBus({ url: amqpUrl, adapter: rabbit, source: "relay" });
      buses.push(bus);
      return bus;
    };

    it("a relay SIGKILLed mid-batch and a relay whose connection is terminated lose nothing; duplicates are dropped", async () => {
      const outbox = await fresh();
      const queue = uniq("outbox_q");
      const consumerBus = rabbitBus();
      const handled: number[] = [];
      let duplicates = 0;
      consumerBus.hooks.onSkip = (e) => {
        if (e.why === "duplicate") duplicates++;
      };
      await consumerBus
        .consume(queue)
        .on(Saved, (m) => void handled.push(m.data.n))
        .start({ idempotency: true, concurrency: 1 });
      await tx(async (c) => {
        for (let n = 0; n < 50; n++) await outbox.send(c, queue, Saved, { blogId: "k", n }, { key: "k" });
      });

      // 1. A relay in a child process sends its first batch (20) and is SIGKILLed before marking it.
      child = spawn(
        process.execPath,
        [fileURLToPath(new URL("./relay-child.mjs", import.meta.url)), pgUrl, amqpUrl, outbox.table],
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
      await expect.poll(() => handled.length).toBe(20);
      expect((await outbox.lag()).unsent).toBe(50); // nothing was marked

      // The killed child's backend goes away with its socket.
      const backends = () =>
        pool
          .query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [
            `switchyard_outbox:${outbox.table}`,
          ])
          .then((r) => r.rows[0].n);
      await expect.poll(backends).toBe(0);

      // 2. A relay here: its first publish is held while its database connection is terminated.
      const real = rabbit.createTransport(new URL(amqpUrl));
      let release!: () => void;
      const held = new Promise<void>((r) => {
        release = r;
      });
      let publishes = 0;
      let firstSent!: () => void;
      const firstDone = new Promise<void>((r) => {
        firstSent = r;
      });
      const transport: Transport = {
        name: real.name,
        capabilities: real.capabilities,
        connect: () => real.connect!(),
        provision: (entities) => real.provision!(entities),
        subscribe: (...args) => real.subscribe(...args),
        close: () => real.close(),
        async publish(destination, messages) {
          await real.publish(destination, messages);
          if (publishes++ === 0) {
            firstSent();
            await held;
          }
        },
      };
      const errors: unknown[] = [];
      const relay = outbox.relay(rabbitBus(transport), {
        batchSize: 20,
        intervalMs: 100,
        onError: (e) => errors.push(e),
      });
      await relay.elected;
      await firstDone;
      const killed = await pool.query(
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1",
        [`switchyard_outbox:${outbox.table}`],
      );
      expect(killed.rows.map((r) => r.ok)).toEqual([true]);
      release();
      await expect
        .poll(() => outbox.lag(), { timeout: 15_000 })
        .toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });
      await expect.poll(() => handled.length).toBe(50);
      expect(handled).toEqual(Array.from({ length: 50 }, (_, n) => n)); // each once, in order
      expect(duplicates).toBeGreaterThanOrEqual(20); // the killed child's batch and the unmarked one, again
      expect(errors.length).toBeGreaterThan(0); // the lost connection was reported and recovered from
      expect(relay.stats.leader).toBe(true);
      await relay.stop();
    });
  });
});
