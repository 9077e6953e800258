import { randomUUID } from "node:crypto";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import {
  type Destination,
  type Envelope,
  type MessageType,
  type PublishOptions,
  prepareEnvelope,
  SwitchyardError,
  toWire,
} from "@switchyard/core";
import { checkDestination, checkTable, defaultSource, type OutboxBase } from "./postgres.js";
import { type Lag, type OutboxRow, type ParkedRow, type RelaySession, startRelay } from "./relay.js";

/** What `publish` writes with: the caller's `DatabaseSync`, inside its `BEGIN … COMMIT`. */
export interface SqliteTx {
  prepare(sql: string): { run(...values: SQLInputValue[]): unknown };
  readonly isTransaction?: boolean;
}

export interface SqliteOutboxOptions {
  /** The database file (the application's own; `install()`, `lag()` and the relay open their own connections to it). */
  path: string;
  /** Table name (letters, digits, underscores). Default `switchyard_outbox`; the lease table is `<table>_lease`. */
  table?: string;
  /** The envelope's `source`. Default: `SWITCHYARD_SOURCE`, else the script name (as the bus). */
  source?: string;
  /**
   * How long a relay's leadership lasts without renewal, ms. The leader renews it before every
   * batch; a batch must finish well within it. Default 15,000.
   */
  leaseMs?: number;
  /** How long a write waits for another connection's write lock, ms. Default 5,000. */
  busyTimeoutMs?: number;
}

/** The SQLite outbox: `publish(db, …)` with the caller's `DatabaseSync` inside its transaction. */
export interface SqliteOutbox extends OutboxBase<SqliteTx> {
  /** Closes the connection `lag()` and `parked()` use (relays close their own on `stop()`). */
  close(): void;
}

type Row = Record<string, SQLInputValue>;

/**
 * The outbox on SQLite (`node:sqlite`, no native dependency). SQLite has one writer at a time, so
 * rows commit in `seq` order and per-key order needs no lock. It has no advisory locks either: the
 * relays share a lease row (owner, expiry), which the leader renews before each batch and a standby
 * takes over once it has expired.
 */
export function createSqliteOutbox(options: SqliteOutboxOptions): SqliteOutbox {
  const table = checkTable(options.table ?? "switchyard_outbox");
  if (table.includes(".")) {
    throw new SwitchyardError("CONFIG_INVALID", `sqlite outbox table "${table}" cannot have a schema`);
  }
  if (typeof options.path !== "string" || options.path === "" || options.path === ":memory:") {
    throw new SwitchyardError("CONFIG_INVALID", "sqlite outbox needs a database file path");
  }
  const leaseMs = options.leaseMs ?? 15_000;
  if (!Number.isInteger(leaseMs) || leaseMs < 30) {
    throw new SwitchyardError("CONFIG_INVALID", "sqlite outbox leaseMs must be an integer ≥ 30");
  }
  const lease = `${table}_lease`;
  const source = options.source ?? defaultSource();
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  /** Relays of this process, woken after a publish (other processes see rows when they poll). */
  const wakers = new Set<() => void>();

  const connect = (timeout = busyTimeoutMs): DatabaseSync => {
    try {
      const db = new DatabaseSync(options.path, { timeout });
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
      return db;
    } catch (error) {
      throw wrap(error, "open the database");
    }
  };
  const wrap = (error: unknown, what: string): SwitchyardError =>
    error instanceof SwitchyardError
      ? error
      : new SwitchyardError(
          "TRANSPORT_ERROR",
          `outbox sqlite ${table}: could not ${what}: ${error instanceof Error ? error.message : String(error)}`,
          { cause: error },
        );
  /**
   * Runs a statement on a connection opened without a busy timeout: SQLite's busy handler waits
   * synchronously, and in the application's process it would block the very event loop that has
   * to finish (and release) the application's write transaction. A busy write is retried here,
   * asynchronously, for up to `busyTimeoutMs`.
   */
  const run = async (db: DatabaseSync, what: string, sql: string, ...values: SQLInputValue[]) => {
    const giveUpAt = Date.now() + busyTimeoutMs;
    for (;;) {
      try {
        return db.prepare(sql).all(...values) as Row[];
      } catch (error) {
        const busy = (error as { errcode?: number }).errcode === 5; // SQLITE_BUSY
        if (!busy || Date.now() >= giveUpAt) throw wrap(error, what);
      }
      // No event says the write lock is free: a short wait, then again.
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  /** The connection of `lag()`, `parked()`, `retry()` and `discard()`. */
  let own: DatabaseSync | undefined;
  const query = (what: string, sql: string, ...values: SQLInputValue[]): Promise<Row[]> => {
    own ??= connect(0);
    return run(own, what, sql, ...values);
  };

  const write = async (
    tx: SqliteTx,
    destination: Destination,
    type: MessageType,
    data: unknown,
    publishOptions: PublishOptions = {},
  ): Promise<Envelope> => {
    if (!tx || typeof tx.prepare !== "function" || tx.isTransaction === false) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        "outbox.publish needs a node:sqlite DatabaseSync inside the caller's transaction (BEGIN)",
      );
    }
    checkDestination(destination);
    const envelope = await prepareEnvelope(type, data, publishOptions, { source });
    const wire = toWire(envelope);
    tx.prepare(
      `INSERT INTO ${table} (kind, destination, id, key, headers, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      destination.kind,
      destination.name,
      wire.id,
      wire.key ?? null,
      JSON.stringify(wire.headers),
      wire.body,
      Date.now(),
    );
    // A hint to this process's relays: by then the caller has usually committed; if not, they poll.
    setImmediate(() => {
      for (const wake of wakers) wake();
    });
    return envelope;
  };

  const lag = async (): Promise<Lag> => {
    const [row] = await query(
      "read the lag",
      `SELECT count(*) FILTER (WHERE failed_at IS NULL) AS unsent,
              count(*) FILTER (WHERE failed_at IS NOT NULL) AS parked,
              min(created_at) FILTER (WHERE failed_at IS NULL) AS oldest
       FROM ${table}`,
    );
    const oldest = row?.oldest === null || row?.oldest === undefined ? undefined : Number(row.oldest);
    return {
      unsent: Number(row?.unsent ?? 0),
      oldestAgeMs: oldest === undefined ? 0 : Math.max(0, Date.now() - oldest),
      parked: Number(row?.parked ?? 0),
    };
  };

  const open = async (events: { wake(): void; lost(error: unknown): void }): Promise<RelaySession> => {
    const db = connect(0); // busy writes are retried by run(), asynchronously
    const owner = randomUUID();
    let leaseUntil = 0;
    const all = (what: string, sql: string, ...values: SQLInputValue[]) => run(db, what, sql, ...values);
    wakers.add(events.wake);
    return {
      async lead() {
        // One statement, and SQLite runs one writer at a time: two relays cannot both win it.
        const now = Date.now();
        const won = await all(
          "take the relay lease",
          `INSERT INTO ${lease} (name, owner, expires_at) VALUES ('relay', ?1, ?2)
           ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
           WHERE ${lease}.owner = excluded.owner OR ${lease}.expires_at <= ?3
           RETURNING owner`,
          owner,
          now + leaseMs,
          now,
        );
        leaseUntil = won.length === 1 ? now + leaseMs : 0;
        return won.length === 1;
      },
      leading: () => Date.now() < leaseUntil,
      async read(limit) {
        const rows = await all(
          "read the outbox",
          `SELECT seq, kind, destination, id, key, headers, body, attempts FROM ${table} o
           WHERE failed_at IS NULL AND NOT (key IS NOT NULL AND EXISTS (
             SELECT 1 FROM ${table} p WHERE p.failed_at IS NOT NULL AND p.kind = o.kind
               AND p.destination = o.destination AND p.key = o.key))
           ORDER BY seq LIMIT ?`,
          limit,
        );
        return rows.map(
          (row): OutboxRow => ({
            seq: String(row.seq),
            kind: row.kind as OutboxRow["kind"],
            destination: String(row.destination),
            id: String(row.id),
            key: typeof row.key === "string" ? row.key : null,
            headers: JSON.parse(String(row.headers)) as Record<string, string>,
            body: row.body as Uint8Array,
            attempts: Number(row.attempts),
          }),
        );
      },
      async remove(seqs) {
        await all(
          "delete sent rows",
          `DELETE FROM ${table} WHERE seq IN (SELECT value FROM json_each(?))`,
          JSON.stringify(seqs.map(Number)),
        );
      },
      async fail(failures, maxAttempts) {
        let parked = 0;
        const now = Date.now();
        for (const { seq, error } of failures) {
          const [row] = await all(
            "count a failed attempt",
            `UPDATE ${table} SET attempts = attempts + 1, last_error = ?1,
               failed_at = CASE WHEN attempts + 1 >= ?2 THEN ?3 END
             WHERE seq = ?4 RETURNING failed_at`,
            error,
            maxAttempts,
            now,
            Number(seq),
          );
          if (row && row.failed_at !== null) parked++;
        }
        return parked;
      },
      async close() {
        wakers.delete(events.wake);
        // Handing over at once: a standby need not wait for the lease to expire.
        await all("give the lease back", `DELETE FROM ${lease} WHERE owner = ?`, owner).catch(() => {});
        db.close();
      },
    };
  };

  return {
    table,
    async install() {
      const db = connect();
      try {
        db.exec(`BEGIN IMMEDIATE;
          CREATE TABLE IF NOT EXISTS ${table} (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, destination TEXT NOT NULL,
            id TEXT NOT NULL, key TEXT, headers TEXT NOT NULL, body BLOB NOT NULL,
            created_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            failed_at INTEGER);
          CREATE INDEX IF NOT EXISTS ${table}_parked ON ${table} (kind, destination, key)
            WHERE failed_at IS NOT NULL;
          CREATE TABLE IF NOT EXISTS ${lease} (
            name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL);
          COMMIT;`);
      } catch (error) {
        try {
          db.exec("ROLLBACK");
        } catch {}
        throw wrap(error, "install the outbox");
      } finally {
        db.close();
      }
    },
    publish: (tx, topic, type, data, publishOptions) =>
      write(tx, { kind: "topic", name: topic }, type, data, publishOptions),
    send: (tx, queue, type, data, publishOptions) =>
      write(tx, { kind: "queue", name: queue }, type, data, publishOptions),
    lag,
    async parked() {
      const rows = await query(
        "read parked rows",
        `SELECT seq, kind, destination, id, key, attempts, last_error, failed_at FROM ${table}
         WHERE failed_at IS NOT NULL ORDER BY seq`,
      );
      return rows.map(
        (row): ParkedRow => ({
          seq: String(row.seq),
          kind: row.kind as ParkedRow["kind"],
          destination: String(row.destination),
          id: String(row.id),
          key: typeof row.key === "string" ? row.key : null,
          attempts: Number(row.attempts),
          error: String(row.last_error),
          failedAt: new Date(Number(row.failed_at)),
        }),
      );
    },
    async retry(id) {
      const rows = await query(
        "retry a parked row",
        `UPDATE ${table} SET attempts = 0, failed_at = NULL WHERE id = ? AND failed_at IS NOT NULL RETURNING seq`,
        id,
      );
      for (const wake of rows.length > 0 ? wakers : []) wake();
      return rows.length > 0;
    },
    async discard(id) {
      const rows = await query(
        "discard a parked row",
        `DELETE FROM ${table} WHERE id = ? AND failed_at IS NOT NULL RETURNING seq`,
        id,
      );
      for (const wake of rows.length > 0 ? wakers : []) wake();
      return rows.length > 0;
    },
    // The leader pauses at most intervalMs between renewals: a third of the lease leaves room for a batch.
    relay: (bus, relayOptions = {}) =>
      startRelay(bus, relayOptions, { open, lag, maxIntervalMs: Math.floor(leaseMs / 3) }),
    close() {
      own?.close();
      own = undefined;
    },
  };
}
