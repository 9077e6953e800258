import { basename } from "node:path";
import {
  type Bus,
  type Destination,
  type Envelope,
  fromWire,
  type InputOf,
  type MessageType,
  type PublishOptions,
  prepareEnvelope,
  SwitchyardError,
  toWire,
} from "@switchyard/core";
import pg from "pg";

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

export interface RelayOptions {
  /** Rows read and sent per round. Default 100. */
  batchSize?: number;
  /** Fallback poll, and the standby's lock retry, in ms (LISTEN/NOTIFY wakes it sooner). Default 1000. */
  intervalMs?: number;
  /** Called with every error the relay recovers from (send failed, connection lost). */
  onError?(error: unknown): void;
}

export interface Lag {
  /** Rows written and not yet sent. */
  unsent: number;
  /** Age of the oldest unsent row in ms (0 when none). */
  oldestAgeMs: number;
}

export interface RelayStats {
  /** This relay holds the lock and is the one sending. */
  leader: boolean;
  /** Messages this relay sent (and marked). */
  sent: number;
  batches: number;
  errors: number;
}

export interface Relay {
  readonly stats: RelayStats;
  /** Resolves once this relay became the leader. */
  readonly elected: Promise<void>;
  lag(): Promise<Lag>;
  /** Stops after the batch in flight; releases the lock and its connection. */
  stop(): Promise<void>;
}

export interface Outbox {
  readonly table: string;
  /** Creates the table and its index (idempotent). */
  install(): Promise<void>;
  /**
   * Validates and writes the envelope in the caller's transaction (`client` inside its BEGIN):
   * it is sent only if that transaction commits. Invalid data raises `VALIDATION_FAILED` and writes
   * nothing. Rows of one key are serialised by a transaction-scoped advisory lock, so they commit
   * (and are sent) in the order they were written.
   */
  publish<M extends MessageType<any>>(
    client: Queryable,
    topic: string,
    type: M,
    data: InputOf<M extends MessageType<infer V> ? V : never, any>,
    options?: PublishOptions,
  ): Promise<Envelope>;
  /** Like `publish`, to a queue (`bus.send`). */
  send<M extends MessageType<any>>(
    client: Queryable,
    queue: string,
    type: M,
    data: InputOf<M extends MessageType<infer V> ? V : never, any>,
    options?: PublishOptions,
  ): Promise<Envelope>;
  lag(): Promise<Lag>;
  /** Starts a relay that delivers rows to `bus`; only one relay per table sends at a time. */
  relay(bus: Bus, options?: RelayOptions): Relay;
}

interface Row {
  seq: string;
  kind: "queue" | "topic";
  destination: string;
  id: string;
  key: string | null;
  headers: Record<string, string>;
  body: Buffer;
}

export function createOutbox(options: OutboxOptions): Outbox {
  const table = options.table ?? "switchyard_outbox";
  if (!/^([a-z_][a-z0-9_]{0,40}\.)?[a-z_][a-z0-9_]{0,40}$/.test(table)) {
    throw new SwitchyardError("CONFIG_INVALID", `outbox table "${table}" must match [a-z_][a-z0-9_]*`);
  }
  const pool = options.pool;
  const source = options.source ?? process.env.SWITCHYARD_SOURCE ?? basename(process.argv[1] ?? "switchyard");
  const channel = `switchyard_outbox_${table.replace(".", "_")}`.slice(0, 63);
  const lockName = `switchyard_outbox:${table}`;

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
    // Validated and encoded before anything is written: a bad message never reaches the table.
    const envelope = await prepareEnvelope(type, data, publishOptions, { source });
    const wire = toWire(envelope); // binary mode: every attribute a header, data the body
    if (envelope.key !== undefined) {
      await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`${lockName}:${envelope.key}`]);
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
    await client.query("SELECT pg_notify($1, '')", [channel]);
    return envelope;
  };

  const lag = async (db: Queryable = pool): Promise<Lag> => {
    const result = await db.query(
      `SELECT count(*)::int AS unsent,
              coalesce(extract(epoch FROM now() - min(created_at)) * 1000, 0)::float8 AS age
       FROM ${table}`,
    );
    const row = result.rows[0] as { unsent: number; age: number };
    return { unsent: row.unsent, oldestAgeMs: Math.max(0, Math.round(row.age)) };
  };

  return {
    table,
    async install() {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [lockName]);
        await client.query(`
          CREATE TABLE IF NOT EXISTS ${table} (
            seq bigserial PRIMARY KEY, kind text NOT NULL, destination text NOT NULL, id text NOT NULL,
            key text, headers jsonb NOT NULL, body bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now())`);
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
    lag: () => lag(),
    relay(bus, relayOptions = {}) {
      return startRelay(bus, relayOptions, { pool, table, channel, lockName, lag });
    },
  };
}

function startRelay(
  bus: Bus,
  options: RelayOptions,
  ctx: {
    pool: pg.Pool;
    table: string;
    channel: string;
    lockName: string;
    lag: (db?: Queryable) => Promise<Lag>;
  },
): Relay {
  const batchSize = options.batchSize ?? 100;
  const intervalMs = options.intervalMs ?? 1000;
  if (!Number.isInteger(batchSize) || batchSize < 1 || !(intervalMs >= 1)) {
    throw new SwitchyardError("CONFIG_INVALID", `relay needs an integer batchSize ≥ 1 and intervalMs ≥ 1`);
  }
  const stats: RelayStats = { leader: false, sent: 0, batches: 0, errors: 0 };
  let stopped = false;
  let wake: (() => void) | undefined;
  let onElected: () => void = () => {};
  const elected = new Promise<void>((resolve) => {
    onElected = resolve;
  });
  const report = (error: unknown) => {
    stats.errors++;
    options.onError?.(error);
  };
  /** Waits for a notification, the interval, or stop(). */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (notified || stopped) {
        notified = false;
        return resolve();
      }
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });
  // The relay's own connection: it holds the session advisory lock, LISTENs and runs every read
  // and delete. When it is lost the lock goes with it, and so do the deletes of a batch in flight
  // (that batch is sent again by the next leader: at least once, never lost).
  const connectionOptions = { ...(ctx.pool.options as pg.ClientConfig), application_name: ctx.lockName };
  let notified = false;

  const round = async (db: pg.Client): Promise<number> => {
    notified = false;
    const { rows } = await db.query<Row>(
      `SELECT seq, kind, destination, id, key, headers, body FROM ${ctx.table} ORDER BY seq LIMIT $1`,
      [batchSize],
    );
    if (rows.length === 0) return 0;
    // One transport call per destination, rows in insertion order (so per-key order holds); the
    // destinations go out side by side. A destination that fails keeps its rows for the next round.
    const groups = new Map<string, Row[]>();
    for (const row of rows) {
      const id = `${row.kind}:${row.destination}`;
      let group = groups.get(id);
      if (!group) {
        group = [];
        groups.set(id, group);
      }
      group.push(row);
    }
    const sent: string[] = [];
    await Promise.all(
      [...groups.values()].map(async (group) => {
        const envelopes = group.map((row) =>
          fromWire({
            id: row.id,
            ...(row.key === null ? {} : { key: row.key }),
            headers: row.headers,
            body: new Uint8Array(row.body.buffer, row.body.byteOffset, row.body.byteLength),
          }),
        );
        try {
          await bus.publishEnvelopes({ kind: group[0]!.kind, name: group[0]!.destination }, envelopes);
          for (const row of group) sent.push(row.seq);
        } catch (error) {
          report(error);
        }
      }),
    );
    if (sent.length > 0) {
      await db.query(`DELETE FROM ${ctx.table} WHERE seq = ANY($1::bigint[])`, [sent]);
      stats.sent += sent.length;
      stats.batches++;
    }
    return sent.length === rows.length ? rows.length : -1; // -1: something failed, back off
  };

  const lead = async (): Promise<void> => {
    const db = new pg.Client(connectionOptions);
    let lost = false;
    db.on("error", (error) => {
      lost = true;
      report(error);
      wake?.();
    });
    db.on("notification", () => {
      notified = true;
      wake?.();
    });
    try {
      await db.connect();
      while (!stopped) {
        const { rows } = await db.query("SELECT pg_try_advisory_lock(hashtext($1)) AS ok", [ctx.lockName]);
        if (rows[0].ok) break;
        await pause(intervalMs); // standby
        if (lost) throw new SwitchyardError("TRANSPORT_ERROR", "outbox relay: database connection lost");
      }
      if (stopped) return;
      await db.query(`LISTEN "${ctx.channel}"`);
      stats.leader = true;
      onElected();
      while (!stopped && !lost) {
        const n = await round(db);
        if (stopped || lost) break;
        if (n === -1) await pause(intervalMs);
        else if (n < batchSize) await pause(intervalMs);
      }
      if (lost) throw new SwitchyardError("TRANSPORT_ERROR", "outbox relay: database connection lost");
    } finally {
      stats.leader = false;
      await db.end().catch(() => {});
    }
  };

  const running = (async () => {
    while (!stopped) {
      try {
        await lead();
      } catch (error) {
        if (stopped) break;
        report(error);
        await pause(intervalMs);
      }
    }
  })();

  return {
    stats,
    elected,
    lag: () => ctx.lag(),
    async stop() {
      stopped = true;
      wake?.();
      await running;
    },
  };
}
