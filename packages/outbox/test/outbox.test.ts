import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { prepareEnvelope, type Transport, toWire } from "@switchyard/core";
import * as rabbit from "@switchyard/rabbitmq";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { createOutbox } from "../src/index.js";
import {
  dedupingConsumer,
  describeOutboxStore,
  type FreshStore,
  handleJobs,
  memoryBus,
  rabbitBus,
  Saved,
  uniq,
} from "./store-suite.js";

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
  /** The relay connections of `table`'s outbox (each has the outbox's application_name). */
  const relayBackends = (table: string) =>
    pool
      .query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [
        `switchyard_outbox:${table}`,
      ])
      .then((r) => r.rows[0].n);
  /**
   * Listens on the documented channel of `table` (schema-qualified) until `end()`; `settle()`
   * counts what it heard, after a NOTIFY of its own that arrives after every earlier commit's.
   */
  async function listenTo(table: string) {
    const listener = new pg.Client({ connectionString: pgUrl });
    await listener.connect();
    const channel = (await listener.query("SELECT 'switchyard_outbox_' || md5($1) AS c", [table])).rows[0].c;
    let heard = 0;
    let settled: (() => void) | undefined;
    listener.on("notification", (n) => {
      if (n.payload === "settle") settled?.();
      else heard++;
    });
    await listener.query(`LISTEN "${channel}"`);
    return {
      async settle() {
        const arrived = new Promise<void>((resolve) => {
          settled = resolve;
        });
        await pool.query("SELECT pg_notify($1, 'settle')", [channel]);
        await arrived;
        return heard;
      },
      end: () => listener.end(),
    };
  }

  const fresh: FreshStore<pg.PoolClient> = async () => {
    const table = uniq("ob");
    tables.push(table);
    const outbox = createOutbox({ pool, table, source: "blog-service" });
    await outbox.install();
    await outbox.install(); // idempotent
    return {
      outbox,
      tx,
      childArgs: ["postgres", pgUrl, table],
      async leaderKilled() {
        // The killed relay's backend, and its lock with it, goes away with its socket.
        await expect.poll(() => relayBackends(table)).toBe(0);
        return () => {};
      },
    };
  };

  afterAll(async () => {
    for (const table of tables) await pool.query(`DROP TABLE IF EXISTS ${table}`);
    await pool.end();
  });

  describeOutboxStore("PostgreSQL", fresh);

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

  it("same-named tables in two schemas: separate per-key locks and channels; each relay, woken by its own NOTIFY, sends only its rows", async () => {
    const schemas = [uniq("ta"), uniq("tb")];
    const pools = schemas.map((schema) => {
      const p = new pg.Pool({ connectionString: pgUrl, max: 3, options: `-c search_path=${schema}` });
      p.on("error", () => {});
      return p;
    });
    const listeners: Array<Awaited<ReturnType<typeof listenTo>>> = [];
    const held: pg.PoolClient[] = [];
    try {
      for (const schema of schemas) await pool.query(`CREATE SCHEMA ${schema}`);
      // Unqualified: each outbox's names must come from the schema its search_path resolves.
      const outboxes = pools.map((p) => createOutbox({ pool: p, table: "outbox" }));
      for (const outbox of outboxes) await outbox.install();
      const begin = async (i: number) => {
        const client = await pools[i]!.connect();
        held.push(client);
        await client.query("BEGIN");
        await client.query("SET LOCAL lock_timeout = '500ms'"); // a blocked key lock fails instead of hanging
        return client;
      };

      // Schema A's transaction holds key k1's lock. The same key in schema B does not wait for it…
      const a1 = await begin(0);
      await outboxes[0]!.send(a1, "jobs", Saved, { blogId: "a", n: 1 }, { key: "k1" });
      const b1 = await begin(1);
      await outboxes[1]!.send(b1, "jobs", Saved, { blogId: "b", n: 1 }, { key: "k1" });
      await b1.query("COMMIT");
      // …while a second writer of the same key in schema A does (the lock is real).
      const a2 = await begin(0);
      await expect(
        outboxes[0]!.send(a2, "jobs", Saved, { blogId: "a", n: 2 }, { key: "k1" }),
      ).rejects.toThrow(/lock timeout/);
      await a2.query("ROLLBACK");
      await a1.query("COMMIT");

      // A listener on each outbox's channel hears its own writer's commit, not the other's.
      for (const schema of schemas) listeners.push(await listenTo(`${schema}.outbox`));
      const bus = memoryBus();
      const got: string[] = [];
      await bus
        .consume("jobs")
        .on(Saved, (m) => void got.push(`${m.data.blogId}${m.data.n}`))
        .start();
      // A 60 s poll: a row sent within the test's timeout was sent because its NOTIFY woke the relay.
      const relays = outboxes.map((outbox) => outbox.relay(bus, { intervalMs: 60_000 }));
      await Promise.all(relays.map((relay) => relay.elected));
      await expect.poll(() => [...got].sort()).toEqual(["a1", "b1"]); // the rows written before
      for (const i of [1, 0]) {
        const client = await begin(i);
        await outboxes[i]!.send(client, "jobs", Saved, { blogId: i ? "b" : "a", n: 3 }, { key: "k1" });
        await client.query("COMMIT");
        await expect.poll(() => got.length, { timeout: 10_000 }).toBe(i ? 3 : 4);
      }
      expect([...got].sort()).toEqual(["a1", "a3", "b1", "b3"]);
      expect(relays.map((relay) => relay.stats.sent)).toEqual([2, 2]);
      expect(await Promise.all(listeners.map((listener) => listener.settle()))).toEqual([1, 1]);
      await Promise.all(relays.map((relay) => relay.stop()));
    } finally {
      for (const client of held) client.release();
      await Promise.all(listeners.map((listener) => listener.end()));
      for (const schema of schemas) await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it("the longest names (41-character schema and table) keep a valid channel: NOTIFY wakes the relay", async () => {
    const schema = uniq("s").padEnd(41, "s");
    const long = `${schema}.${uniq("t").padEnd(41, "t")}`;
    // Before, its channel was cut at 63 bytes: this one's first 63 bytes are the same.
    const sibling = `${long.slice(0, -1)}x`;
    const listeners: Array<Awaited<ReturnType<typeof listenTo>>> = [];
    try {
      await pool.query(`CREATE SCHEMA ${schema}`);
      const outboxes = [long, sibling].map((table) => createOutbox({ pool, table }));
      for (const outbox of outboxes) await outbox.install();
      const bus = memoryBus();
      const handled = await handleJobs(bus);
      const relays = outboxes.map((outbox) => outbox.relay(bus, { intervalMs: 60_000 }));
      await Promise.all(relays.map((relay) => relay.elected));
      for (const table of [long, sibling]) listeners.push(await listenTo(table));
      for (const [i, outbox] of outboxes.entries()) {
        await tx((client) => outbox.send(client, "jobs", Saved, { blogId: "b", n: i }, { key: "k" }));
        await expect.poll(() => handled, { timeout: 10_000 }).toEqual(i ? [0, 1] : [0]);
      }
      expect(relays.map((relay) => relay.stats.sent)).toEqual([1, 1]);
      // Each channel carried its own table's one commit: none is shared.
      expect(await Promise.all(listeners.map((listener) => listener.settle()))).toEqual([1, 1]);
      await Promise.all(relays.map((relay) => relay.stop()));
    } finally {
      await Promise.all(listeners.map((listener) => listener.end()));
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
  });

  it("a schema whose name needs quoting, reached through the search_path: the relay is woken on its channel", async () => {
    const schema = `Tenant-${uniq("q")}`;
    const tenant = new pg.Pool({ connectionString: pgUrl, max: 2, options: `-c search_path="${schema}"` });
    tenant.on("error", () => {});
    let listener: Awaited<ReturnType<typeof listenTo>> | undefined;
    try {
      await pool.query(`CREATE SCHEMA "${schema}"`);
      const outbox = createOutbox({ pool: tenant, table: "outbox" });
      await outbox.install();
      expect((await pool.query("SELECT to_regclass($1) AS t", [`"${schema}".outbox`])).rows[0].t).not.toBe(
        null,
      );
      const bus = memoryBus();
      const handled = await handleJobs(bus);
      const relay = outbox.relay(bus, { intervalMs: 60_000 });
      await relay.elected;
      listener = await listenTo(`${schema}.outbox`);
      const client = await tenant.connect();
      try {
        await client.query("BEGIN");
        await outbox.send(client, "jobs", Saved, { blogId: "q", n: 5 }, { key: "k" });
        await client.query("COMMIT");
      } finally {
        client.release();
      }
      await expect.poll(() => handled, { timeout: 10_000 }).toEqual([5]);
      expect(await listener.settle()).toBe(1);
      await relay.stop();
    } finally {
      await listener?.end();
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await tenant.end();
    }
  });

  it("install() on a table whose relay leads does not wait for that relay to stop (a rolling deploy)", async () => {
    const table = uniq("ob_inst");
    tables.push(table);
    await createOutbox({ pool, table }).install();
    const relay = createOutbox({ pool, table }).relay(memoryBus(), { intervalMs: 50 });
    await relay.elected;
    // It used to take the leader's lock, held as long as the relay runs: this waited for the test's timeout.
    await createOutbox({ pool, table }).install();
    expect(relay.stats.leader).toBe(true);
    await relay.stop();
  });

  it("rolling upgrade: a writer of the earlier release (NOTIFY on the table's unqualified channel) still wakes the relay", async () => {
    const table = uniq("ob_roll");
    tables.push(table);
    const outbox = createOutbox({ pool, table });
    await outbox.install();
    const bus = memoryBus();
    const handled = await handleJobs(bus);
    const relay = outbox.relay(bus, { intervalMs: 60_000 }); // only a NOTIFY gets the row out in time
    await relay.elected;
    await tx(async (client) => {
      // What the earlier release's publish did: the same row, then pg_notify on the old channel.
      const wire = toWire(await prepareEnvelope(Saved, { blogId: "b", n: 7 }, {}, { source: "old" }));
      await client.query(
        `INSERT INTO ${table} (kind, destination, id, headers, body) VALUES ($1, $2, $3, $4, $5)`,
        ["queue", "jobs", wire.id, JSON.stringify(wire.headers), wire.body],
      );
      await client.query("SELECT pg_notify($1, '')", [`switchyard_outbox_${table}`]);
    });
    await expect.poll(() => handled, { timeout: 10_000 }).toEqual([7]);
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
    const handled = await handleJobs(bus);
    const relay = outbox.relay(bus, { intervalMs: 50 });
    await expect.poll(() => handled).toEqual([1]);
    await relay.stop();
  });

  describeWithBroker("rabbitmq", "relay to RabbitMQ under faults", () => {
    const amqpUrl = brokerEndpoint("rabbitmq").url;

    it("a relay whose database connection is terminated mid-batch loses nothing; duplicates are dropped", async () => {
      const { outbox } = await fresh();
      const queue = uniq("outbox_q");
      const consumer = await dedupingConsumer(amqpUrl, queue);
      await tx(async (c) => {
        for (let n = 0; n < 50; n++) await outbox.send(c, queue, Saved, { blogId: "k", n }, { key: "k" });
      });

      // The relay's first publish is held while its database connection is terminated.
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
      const relay = outbox.relay(rabbitBus(amqpUrl, transport), {
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
      await expect.poll(() => consumer.handled.length).toBe(50);
      expect(consumer.handled).toEqual(Array.from({ length: 50 }, (_, n) => n)); // each once, in order
      expect(consumer.duplicates).toBeGreaterThanOrEqual(20); // the batch it could not remove, again
      expect(errors.length).toBeGreaterThan(0); // the lost connection was reported and recovered from
      expect(relay.stats.leader).toBe(true);
      await relay.stop();
    });
  });
});
