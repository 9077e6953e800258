import { basename } from "node:path";
import {
  type Bus,
  type Destination,
  type Envelope,
  type InputOf,
  type MessageType,
  type PublishOptions,
  prepareEnvelope,
  SwitchyardError,
  toWire,
} from "@switchyard/core";
import pg from "pg";
import {
  type Lag,
  type OutboxRow,
  type ParkedRow,
  type Relay,
  type RelayOptions,
  type RelaySession,
  startRelay,
} from "./relay.js";

/** What the outbox needs of a client: `pg.Client`, `pg.PoolClient`, or anything with `query`. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
}

export interface OutboxOptions {
  /** The application's pool; `install()` and `lag()` use it, the relay its own connection. */
  pool: pg.Pool;
  /** Table name (letters, digits, underscores, optionally `schema.table`). Default `switchyard_outbox`. */
  table?: string;
  /** The envelope's `source`. Default: `SWITCHYARD_SOURCE`, else the script name (as the bus). */
  source?: string;
}

/** The calls both outboxes share; `Tx` is what `publish` writes with (the caller's transaction). */
export interface OutboxBase<Tx> {
  readonly table: string;
  /** Creates the table and its indexes (idempotent). */
  install(): Promise<void>;
  /**
   * Validates and writes the envelope in the caller's transaction: it is sent only if that
   * transaction commits. Invalid data raises `VALIDATION_FAILED` and writes nothing.
   */
  publish<M extends MessageType<any>>(
    tx: Tx,
    topic: string,
    type: M,
    data: InputOf<M extends MessageType<infer V> ? V : never, any>,
    options?: PublishOptions,
  ): Promise<Envelope>;
  /** Like `publish`, to a queue (`bus.send`). */
  send<M extends MessageType<any>>(
    tx: Tx,
    queue: string,
    type: M,
    data: InputOf<M extends MessageType<infer V> ? V : never, any>,
    options?: PublishOptions,
  ): Promise<Envelope>;
  lag(): Promise<Lag>;
  /** The parked rows, oldest first: rows that failed `maxAttempts` times and are no longer sent. */
  parked(): Promise<ParkedRow[]>;
  /** Un-parks a parked row (by envelope id): sent again from the next round, with its attempts reset. False when no parked row has that id. */
  retry(id: string): Promise<boolean>;
  /** Deletes a parked row (by envelope id): the rows of its key held behind it go on. False when no parked row has that id. */
  discard(id: string): Promise<boolean>;
  /** Starts a relay that delivers rows to `bus`; only one relay per table sends at a time. */
  relay(bus: Bus, options?: RelayOptions): Relay;
}

/**
 * The PostgreSQL outbox. Rows of one key are serialised in `publish` by a transaction-scoped
 * advisory lock, so they commit (and are sent) in the order they were written.
 */
export type Outbox = OutboxBase<Queryable>;

const TABLE_NAME = /^([a-z_][a-z0-9_]{0,40}\.)?[a-z_][a-z0-9_]{0,40}$/;

export function checkTable(table: string): string {
  if (!TABLE_NAME.test(table)) {
    throw new SwitchyardError("CONFIG_INVALID", `outbox table "${table}" must match [a-z_][a-z0-9_]*`);
  }
  return table;
}

export function defaultSource(): string {
  return process.env.SWITCHYARD_SOURCE ?? basename(process.argv[1] ?? "switchyard");
}

export function checkDestination(destination: Destination): void {
  if (
    typeof destination.name !== "string" ||
    destination.name.length === 0 ||
    destination.name.length > 200
  ) {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `"${destination.name}" is not a valid name (1–200 characters)`,
    );
  }
}

interface PgRow {
  seq: string;
  kind: "queue" | "topic";
  destination: string;
  id: string;
  key: string | null;
  headers: Record<string, string>;
  body: Buffer;
  attempts: number;
}

/**
 * SQL for the table named by `$1` as PostgreSQL resolves it on the connection that runs it:
 * `schema.table`, through the search_path (a table not created yet: with the schema CREATE TABLE
 * would put it in). Every name the outbox shares between connections comes from it, so
 * same-named tables in two schemas never share a lock or a channel, and `orders.outbox` and
 * `outbox` with `search_path=orders` are one table.
 */
const QUALIFIED = `coalesce(
  (SELECT n.nspname || '.' || c.relname FROM pg_class c
   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)),
  CASE WHEN strpos($1, '.') > 0 THEN $1 ELSE current_schema() || '.' || $1 END, $1)`;

/**
 * The NOTIFY channel, from the qualified table: an md5 keeps it a plain identifier of 50 bytes
 * however long the names (PostgreSQL cuts identifiers at 63 and refuses a longer pg_notify channel).
 */
const CHANNEL = `'switchyard_outbox_' || md5(${QUALIFIED})`;

export function createOutbox(options: OutboxOptions): Outbox {
  const table = checkTable(options.table ?? "switchyard_outbox");
  const pool = options.pool;
  const source = options.source ?? defaultSource();
  // The channel of earlier releases, named from the table as written (so shared by same-named
  // tables in two schemas, and cut at 63 bytes): the relay still listens on it, so writers not
  // upgraded yet keep waking it during a rolling upgrade.
  const legacyChannel = `switchyard_outbox_${table.replace(".", "_")}`.slice(0, 63);

  /** The leader lock's name and the channel, for the table as this connection resolves it. */
  const names = async (db: Queryable): Promise<{ leaderLock: string; channel: string }> => {
    const { rows } = await db.query(
      `SELECT 'switchyard_outbox:' || ${QUALIFIED} AS lock, ${CHANNEL} AS channel`,
      [table],
    );
    return { leaderLock: rows[0].lock, channel: rows[0].channel };
  };

  const write = async (
    client: Queryable,
    destination: Destination,
    type: MessageType,
    data: unknown,
    publishOptions: PublishOptions = {},
  ): Promise<Envelope> => {
    if (!client || typeof client.query !== "function") {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        "outbox.publish needs a pg client inside the caller's transaction",
      );
    }
    checkDestination(destination);
    // Validated and encoded before anything is written: a bad message never reaches the table.
    const envelope = await prepareEnvelope(type, data, publishOptions, { source });
    const wire = toWire(envelope); // binary mode: every attribute a header, data the body
    if (envelope.key !== undefined) {
      // Named from the qualified table (resolved on the caller's own connection, as its INSERT is).
      await client.query(
        `SELECT pg_advisory_xact_lock(hashtext('switchyard_outbox:' || ${QUALIFIED} || ':' || $2::text))`,
        [table, envelope.key],
      );
    }
    await client.query(
      `INSERT INTO ${table} (kind, destination, id, key, headers, body) VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        destination.kind,
        destination.name,
        wire.id,
        wire.key ?? null,
        JSON.stringify(wire.headers),
        wire.body,
      ],
    );
    await client.query(`SELECT pg_notify(${CHANNEL}, '')`, [table]);
    return envelope;
  };

  const lag = async (): Promise<Lag> => {
    const result = await pool.query(
      `SELECT count(*) FILTER (WHERE failed_at IS NULL)::int AS unsent,
              count(*) FILTER (WHERE failed_at IS NOT NULL)::int AS parked,
              coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE failed_at IS NULL)) * 1000, 0)::float8 AS age
       FROM ${table}`,
    );
    const row = result.rows[0] as { unsent: number; parked: number; age: number };
    return { unsent: row.unsent, oldestAgeMs: Math.max(0, Math.round(row.age)), parked: row.parked };
  };

  // The relay's own connection: it holds the session advisory lock, LISTENs and runs every read
  // and delete. When it is lost the lock goes with it, and so do the deletes of a batch in flight
  // (that batch is sent again by the next leader: at least once, never lost).
  const open = async (events: { wake(): void; lost(error: unknown): void }): Promise<RelaySession> => {
    const db = new pg.Client({
      ...(pool.options as pg.ClientConfig),
      application_name: `switchyard_outbox:${table}`,
    });
    let lost = false;
    db.on("error", (error) => {
      lost = true;
      events.lost(error);
    });
    db.on("notification", () => events.wake());
    try {
      await db.connect();
    } catch (error) {
      await db.end().catch(() => {});
      throw error;
    }
    let named: { leaderLock: string; channel: string } | undefined;
    let held = false;
    return {
      async lead() {
        if (held) return true; // a session lock is held until the connection ends
        named ??= await names(db);
        const { rows } = await db.query("SELECT pg_try_advisory_lock(hashtext($1)) AS ok", [
          named.leaderLock,
        ]);
        if (!rows[0].ok) return false;
        await db.query(`LISTEN "${named.channel}"`);
        if (legacyChannel !== named.channel) await db.query(`LISTEN "${legacyChannel}"`);
        held = true;
        return true;
      },
      leading: () => held && !lost,
      async read(limit) {
        const { rows } = await db.query<PgRow>(
          `SELECT seq, kind, destination, id, key, headers, body, attempts FROM ${table} o
           WHERE failed_at IS NULL AND NOT (key IS NOT NULL AND EXISTS (
             SELECT 1 FROM ${table} p WHERE p.failed_at IS NOT NULL AND p.kind = o.kind
               AND p.destination = o.destination AND p.key = o.key))
           ORDER BY seq LIMIT $1`,
          [limit],
        );
        return rows.map(
          (row): OutboxRow => ({
            ...row,
            body: new Uint8Array(row.body.buffer, row.body.byteOffset, row.body.byteLength),
          }),
        );
      },
      async remove(seqs) {
        await db.query(`DELETE FROM ${table} WHERE seq = ANY($1::bigint[])`, [seqs]);
      },
      async fail(failures, maxAttempts) {
        const { rows } = await db.query(
          `UPDATE ${table} t SET attempts = t.attempts + 1, last_error = f.error,
             failed_at = CASE WHEN t.attempts + 1 >= $3 THEN now() END
           FROM unnest($1::bigint[], $2::text[]) AS f(seq, error) WHERE t.seq = f.seq
           RETURNING t.failed_at`,
          [failures.map((f) => f.seq), failures.map((f) => f.error), maxAttempts],
        );
        return rows.filter((row) => row.failed_at !== null).length;
      },
      async close() {
        await db.end().catch(() => {});
      },
    };
  };

  return {
    table,
    async install() {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        // Its own lock, not the leader's: a relay leads for as long as it runs, and an instance
        // starting beside it (a rolling deploy) must not wait for it to stop.
        await client.query(
          `SELECT pg_advisory_xact_lock(hashtext('switchyard_outbox_install:' || ${QUALIFIED}))`,
          [table],
        );
        await client.query(`
          CREATE TABLE IF NOT EXISTS ${table} (
            seq bigserial PRIMARY KEY, kind text NOT NULL, destination text NOT NULL, id text NOT NULL,
            key text, headers jsonb NOT NULL, body bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now())`);
        // Added after the first release: parking rows that cannot be sent.
        await client.query(`
          ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS attempts int NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS last_error text, ADD COLUMN IF NOT EXISTS failed_at timestamptz`);
        const index = `${table.split(".").pop()}_parked`;
        await client.query(
          `CREATE INDEX IF NOT EXISTS ${index} ON ${table} (kind, destination, key) WHERE failed_at IS NOT NULL`,
        );
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    publish: (client, topic, type, data, publishOptions) =>
      write(client, { kind: "topic", name: topic }, type, data, publishOptions),
    send: (client, queue, type, data, publishOptions) =>
      write(client, { kind: "queue", name: queue }, type, data, publishOptions),
    lag,
    async parked() {
      const { rows } = await pool.query(
        `SELECT seq, kind, destination, id, key, attempts, last_error AS error, failed_at AS "failedAt"
         FROM ${table} WHERE failed_at IS NOT NULL ORDER BY seq`,
      );
      return rows as ParkedRow[];
    },
    async retry(id) {
      const result = await pool.query(
        `UPDATE ${table} SET attempts = 0, failed_at = NULL WHERE id = $1 AND failed_at IS NOT NULL`,
        [id],
      );
      if (result.rowCount) await pool.query(`SELECT pg_notify(${CHANNEL}, '')`, [table]);
      return (result.rowCount ?? 0) > 0;
    },
    async discard(id) {
      const result = await pool.query(`DELETE FROM ${table} WHERE id = $1 AND failed_at IS NOT NULL`, [id]);
      if (result.rowCount) await pool.query(`SELECT pg_notify(${CHANNEL}, '')`, [table]);
      return (result.rowCount ?? 0) > 0;
    },
    relay: (bus, relayOptions = {}) => startRelay(bus, relayOptions, { open, lag }),
  };
}
