import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import type { Transport } from "@switchyard/core";
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
