import { resolve } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { SwitchyardError, type WireMessage } from "@switchyard/core";
import {
  type AppendInput,
  type FeedRead,
  type FeedStore,
  type PendingRecord,
  type SubKey,
  subKeyString,
} from "./store.js";

export interface SqliteStoreOptions {
  /** A file path, or `:memory:` (one process, gone on close). */
  path: string;
  /** Table name prefix (letters, digits, underscores). Default `switchyard_feed`. */
  tablePrefix?: string;
  /**
   * How long a statement waits for another connection's write lock, ms (default 5,000), then fails
   * with TRANSPORT_ERROR. The wait is asynchronous: the event loop keeps running meanwhile.
   */
  busyTimeoutMs?: number;
}

/** `sqlite:///abs/path.db`, `sqlite:relative.db` or `sqlite::memory:` → the path for `SqliteStore`. */
export function sqlitePath(url: string): string {
  const match = /^sqlite:(\/\/)?(.*)$/.exec(url);
  const path = match?.[2] ? decodeURIComponent(match[2]) : "";
  if (path === "") {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      "http-feed: sqlite store needs a path: sqlite:///path/to/file.db",
    );
  }
  return path;
}

type Row = Record<string, SQLInputValue>;

/** SQLITE_BUSY and its extended codes: another connection holds a lock this statement needs. */
function isBusy(error: unknown): boolean {
  const cause = error instanceof SwitchyardError ? error.cause : error;
  const code = (cause as { errcode?: unknown } | undefined)?.errcode;
  return typeof code === "number" && (code & 0xff) === 5;
}

/** The first retry after SQLITE_BUSY waits this long (ms); each next one twice as long, up to the cap. */
const firstBusyRetryMs = 1;
const maxBusyRetryMs = 25;

/** Open stores by file, so stores of one process on the same file wake each other. */
const openStores = new Map<string, Set<SqliteStore>>();

/**
 * The SQLite store, on Node's built-in `node:sqlite` (synchronous, no dependency). One connection;
 * WAL mode, so readers in other processes never block and writers wait their turn: asynchronously
 * (see #whenUnlocked), never in SQLite's own busy handler, which would freeze the process. Writes
 * run in `BEGIN IMMEDIATE` transactions: SQLite has one writer at a time, so positions commit in
 * order and claims need no row locks. Wake-ups are in-process events (every store of
 * this process on the same file); other processes sharing the file see new rows only when they
 * poll (the transport's idle polling, a long poll's timeout).
 */
export class SqliteStore implements FeedStore {
  readonly #path: string;
  /** The absolute file path (undefined for `:memory:`, which no other store can see). */
  readonly #file: string | undefined;
  readonly #busyTimeoutMs: number;
  readonly #t: { feed: string; compacted: string; cursor: string; pending: string; pollers: string };
  readonly #appendListeners = new Set<(topic: string) => void>();
  readonly #pendingListeners = new Set<(key: SubKey) => void>();
  #db: DatabaseSync | undefined;
  /** Prepared statements by SQL text: preparing costs more than running the hot ones. */
  readonly #statements = new Map<string, StatementSync>();
  /** Acks of this turn of the event loop, deleted in one transaction. */
  #acks: { seqs: number[]; done: Promise<void> } | undefined;
  #closed = false;

  constructor(options: SqliteStoreOptions) {
    const prefix = options.tablePrefix ?? "switchyard_feed";
    if (!/^[a-z_][a-z0-9_]{0,40}$/.test(prefix)) {
      throw new SwitchyardError("CONFIG_INVALID", `tablePrefix "${prefix}" must match [a-z_][a-z0-9_]*`);
    }
    this.#path = options.path;
    this.#file = options.path === ":memory:" ? undefined : resolve(options.path);
    if (this.#file !== undefined) {
      const stores = openStores.get(this.#file) ?? new Set();
      openStores.set(this.#file, stores.add(this));
    }
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.#t = {
      feed: `${prefix}_events`,
      compacted: `${prefix}_compacted`,
      cursor: `${prefix}_cursors`,
      pending: `${prefix}_pending`,
      pollers: `${prefix}_pollers`,
    };
  }

  async init(): Promise<void> {
    await this.#whenUnlocked("initialise the store", () => this.#open());
  }

  #open(): DatabaseSync {
    if (this.#closed) throw new SwitchyardError("TRANSPORT_ERROR", "http-feed store: closed");
    if (this.#db) return this.#db;
    const { feed, compacted, cursor, pending, pollers } = this.#t;
    let db: DatabaseSync | undefined;
    try {
      // No busy timeout: SQLite's busy handler sleeps on this thread. #whenUnlocked waits instead.
      db = new DatabaseSync(this.#path, { timeout: 0 });
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
      db.exec(`
        CREATE TABLE IF NOT EXISTS ${feed} (
          seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, id TEXT NOT NULL, subject TEXT,
          method TEXT, event TEXT NOT NULL);
        CREATE UNIQUE INDEX IF NOT EXISTS ${feed}_id ON ${feed} (topic, id);
        CREATE INDEX IF NOT EXISTS ${feed}_topic ON ${feed} (topic, seq);
        CREATE INDEX IF NOT EXISTS ${feed}_subject ON ${feed} (topic, subject, seq);
        CREATE TABLE IF NOT EXISTS ${compacted} (
          topic TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (topic, id));
        CREATE TABLE IF NOT EXISTS ${cursor} (
          kind TEXT NOT NULL, name TEXT NOT NULL, sub TEXT NOT NULL, last_event_id TEXT,
          updated_at INTEGER NOT NULL, PRIMARY KEY (kind, name, sub));
        CREATE TABLE IF NOT EXISTS ${pollers} (
          sub_key TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS ${pending} (
          seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, name TEXT NOT NULL,
          sub TEXT NOT NULL, id TEXT NOT NULL, key TEXT, headers TEXT NOT NULL, body BLOB NOT NULL,
          attempt INTEGER NOT NULL DEFAULT 0, visible_at INTEGER NOT NULL, lease_until INTEGER,
          head INTEGER NOT NULL DEFAULT 1);
        CREATE INDEX IF NOT EXISTS ${pending}_ready ON ${pending} (kind, name, sub, seq);
        CREATE INDEX IF NOT EXISTS ${pending}_key ON ${pending} (kind, name, sub, key, seq)
          WHERE key IS NOT NULL;`);
      // \`head\`: the row is keyless or the oldest pending row of its key, so claimable as far as
      // per-key order goes. Kept on insert and ack, it lets a claim read the heads from an index
      // instead of probing every row of a deep keyed backlog for an older one of its key.
      const columns = db.prepare(`PRAGMA table_info(${pending})`).all();
      if (!columns.some((column) => column.name === "head")) {
        db.exec(`BEGIN IMMEDIATE;
          ALTER TABLE ${pending} ADD COLUMN head INTEGER NOT NULL DEFAULT 1;
          UPDATE ${pending} SET head = NOT EXISTS (SELECT 1 FROM ${pending} o WHERE o.kind = ${pending}.kind
            AND o.name = ${pending}.name AND o.sub = ${pending}.sub AND o.key = ${pending}.key
            AND o.seq < ${pending}.seq) WHERE key IS NOT NULL;
          COMMIT;`);
      }
      db.exec(
        `CREATE INDEX IF NOT EXISTS ${pending}_head ON ${pending} (kind, name, sub, seq) WHERE head = 1;`,
      );
    } catch (error) {
      db?.close();
      throw this.#wrap(error, "initialise the store");
    }
    this.#db = db;
    return db;
  }

  #wrap(error: unknown, what: string): SwitchyardError {
    if (error instanceof SwitchyardError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new SwitchyardError(
      "TRANSPORT_ERROR",
      `http-feed store sqlite ${this.#path}: could not ${what}: ${message}`,
      {
        cause: error,
      },
    );
  }

  #prepare(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#open().prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /**
   * Runs `attempt` (synchronous SQL) at once; when another connection holds the lock it needs
   * (SQLITE_BUSY, nothing applied), runs it again after 1 ms, 2, 4 … up to 25 ms between tries, on
   * timers, until it gets through or `busyTimeoutMs` has passed since the first try: then the
   * TRANSPORT_ERROR it failed with. Without a lock held it costs what `attempt` costs.
   */
  async #whenUnlocked<T>(what: string, attempt: () => T): Promise<T> {
    let deadline: number | undefined;
    for (let retryMs = firstBusyRetryMs; ; retryMs = Math.min(retryMs * 2, maxBusyRetryMs)) {
      try {
        return attempt();
      } catch (error) {
        deadline ??= Date.now() + this.#busyTimeoutMs;
        const leftMs = deadline - Date.now();
        if (!isBusy(error) || leftMs <= 0) throw this.#wrap(error, what);
        await new Promise((resolve) => setTimeout(resolve, Math.min(retryMs, leftMs)));
      }
    }
  }

  /** One statement on its own (autocommit): a BUSY one applied nothing, so it is simply run again. */
  #all(what: string, sql: string, ...values: SQLInputValue[]): Promise<Row[]> {
    return this.#whenUnlocked(what, () => this.#prepare(sql).all(...values) as Row[]);
  }

  /**
   * `body` in one `BEGIN IMMEDIATE` transaction, committed or rolled back whole. `body` is
   * synchronous, so nothing else of this process runs inside the transaction; when the lock is
   * busy the whole transaction is run again later, so `body` must compute everything (times too)
   * inside.
   */
  #tx<T>(what: string, body: (db: { prepare(sql: string): StatementSync }) => T): Promise<T> {
    return this.#whenUnlocked(what, () => {
      const db = this.#open();
      db.exec("BEGIN IMMEDIATE");
      try {
        const result = body({ prepare: (sql) => this.#prepare(sql) });
        db.exec("COMMIT");
        return result;
      } catch (error) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw error;
      }
    });
  }

  // ---- producer side: the feed ----

  async append(topic: string, events: AppendInput[], options: { compact: boolean }): Promise<void> {
    if (events.length === 0) return;
    const { feed, compacted } = this.#t;
    await this.#tx("append to the feed", (db) => {
      const insert = db.prepare(
        `INSERT INTO ${feed} (topic, id, subject, method, event) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (topic, id) DO NOTHING RETURNING seq`,
      );
      const latest = new Map<string, number>();
      for (const e of events) {
        const row = insert.get(topic, e.id, e.subject ?? null, e.method ?? null, e.json);
        if (row && e.subject !== undefined) latest.set(e.subject, Number(row.seq));
      }
      if (!options.compact) return;
      // Older events of the same subject go; their ids stay resolvable as positions (see PostgresStore).
      const remember = db.prepare(
        `INSERT INTO ${compacted} (topic, id, seq)
         SELECT topic, id, seq FROM ${feed} WHERE topic = ? AND subject = ? AND seq < ?
         ON CONFLICT (topic, id) DO UPDATE SET seq = excluded.seq`,
      );
      const remove = db.prepare(`DELETE FROM ${feed} WHERE topic = ? AND subject = ? AND seq < ?`);
      for (const [subject, seq] of latest) {
        remember.run(topic, subject, seq);
        remove.run(topic, subject, seq);
      }
    });
    setImmediate(() => {
      for (const store of this.#neighbours()) store.#emitAppend(topic);
    });
  }

  async read(topic: string, lastEventId: string | undefined, limit: number): Promise<FeedRead> {
    const { feed, compacted } = this.#t;
    let after = 0;
    if (lastEventId !== undefined) {
      const found = await this.#all(
        "resolve lastEventId",
        `SELECT seq FROM ${feed} WHERE topic = ?1 AND id = ?2
         UNION ALL SELECT seq FROM ${compacted} WHERE topic = ?1 AND id = ?2 LIMIT 1`,
        topic,
        lastEventId,
      );
      if (found.length === 0) return { status: "unknown" };
      after = Number(found[0]!.seq);
    }
    const rows = await this.#all(
      "read the feed",
      `SELECT seq, id, event FROM ${feed} WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?`,
      topic,
      after,
      limit,
    );
    return {
      status: "ok",
      events: rows.map((r) => ({ seq: Number(r.seq), id: String(r.id), json: String(r.event) })),
    };
  }

  onAppend(listener: (topic: string) => void): () => void {
    this.#appendListeners.add(listener);
    return () => this.#appendListeners.delete(listener);
  }

  /** This store and the other open stores of this process on the same file. */
  #neighbours(): Iterable<SqliteStore> {
    return (this.#file !== undefined && openStores.get(this.#file)) || [this];
  }

  #emitAppend(topic: string): void {
    for (const listener of this.#appendListeners) listener(topic);
  }

  /**
   * Wakes consumers on the next turn of the event loop, never synchronously: every call of this
   * store settles at once, so a consumer that claims, releases and is woken again would otherwise
   * loop in microtasks and starve timers and I/O (PostgreSQL's wake-ups come through I/O anyway).
   */
  #emitPending(key: SubKey): void {
    setImmediate(() => {
      for (const store of this.#neighbours()) {
        for (const listener of store.#pendingListeners) listener(key);
      }
    });
  }

  // ---- consumer side: cursors and pending rows ----

  async ensureCursor(key: SubKey): Promise<void> {
    await this.#tx("create the subscription", (db) => {
      db.prepare(
        `INSERT INTO ${this.#t.cursor} (kind, name, sub, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ).run(key.kind, key.name, key.sub, Date.now());
    });
  }

  async cursor(key: SubKey): Promise<string | undefined> {
    const rows = await this.#all(
      "read the subscription position",
      `SELECT last_event_id FROM ${this.#t.cursor} WHERE kind = ? AND name = ? AND sub = ?`,
      key.kind,
      key.name,
      key.sub,
    );
    const id = rows[0]?.last_event_id;
    return typeof id === "string" ? id : undefined;
  }

  async fill(
    key: SubKey,
    expected: string | undefined,
    next: string,
    messages: WireMessage[],
  ): Promise<boolean> {
    const moved = await this.#tx("store fetched events", (db) => {
      const updated = db
        .prepare(
          `UPDATE ${this.#t.cursor} SET last_event_id = ?, updated_at = ?
           WHERE kind = ? AND name = ? AND sub = ? AND last_event_id IS ?`,
        )
        .run(next, Date.now(), key.kind, key.name, key.sub, expected ?? null);
      if (updated.changes !== 1) return false;
      this.#insertPending(db, key, messages);
      return true;
    });
    if (moved) this.#emitPending(key);
    return moved;
  }

  async enqueue(key: SubKey, messages: WireMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await this.#tx("enqueue", (db) => this.#insertPending(db, key, messages));
    this.#emitPending(key);
  }

  #insertPending(db: { prepare(sql: string): StatementSync }, key: SubKey, messages: WireMessage[]): void {
    const insert = db.prepare(
      `INSERT INTO ${this.#t.pending} (kind, name, sub, id, key, headers, body, visible_at, head)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?5 IS NULL OR NOT EXISTS (SELECT 1 FROM ${this.#t.pending}
         WHERE kind = ?1 AND name = ?2 AND sub = ?3 AND key = ?5))`,
    );
    const now = Date.now();
    for (const m of messages) {
      insert.run(key.kind, key.name, key.sub, m.id, m.key ?? null, JSON.stringify(m.headers), m.body, now);
    }
  }

  async claim(key: SubKey, limit: number, leaseMs: number): Promise<PendingRecord[]> {
    const { pending } = this.#t;
    const rows = await this.#tx("claim messages", (db) => {
      const now = Date.now();
      return db
        .prepare(
          `UPDATE ${pending} SET attempt = attempt + 1, lease_until = ?5
           WHERE seq IN (
             SELECT c.seq FROM ${pending} c
             WHERE c.kind = ?1 AND c.name = ?2 AND c.sub = ?3 AND c.head = 1 AND c.visible_at <= ?6
               AND (c.lease_until IS NULL OR c.lease_until < ?6)
             ORDER BY c.seq LIMIT ?4)
           RETURNING seq, id, key, headers, body, attempt`,
        )
        .all(key.kind, key.name, key.sub, limit, now + leaseMs, now);
    });
    return rows
      .sort((a, b) => Number(a.seq) - Number(b.seq))
      .map((row) => {
        const message: WireMessage = {
          id: String(row.id),
          headers: JSON.parse(String(row.headers)) as Record<string, string>,
          body: new Uint8Array(row.body as Uint8Array),
        };
        if (typeof row.key === "string") message.key = row.key;
        return { seq: String(row.seq), message, attempt: Number(row.attempt) };
      });
  }

  /**
   * Deletes a settled row. Acks made in the same turn of the event loop (a consumer settles many at
   * once) share one transaction, so one WAL commit instead of one each; each resolves once that
   * transaction has committed, or rejects with it.
   */
  ack(seq: string): Promise<void> {
    let batch = this.#acks;
    if (!batch) {
      const seqs: number[] = [];
      const done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        if (this.#acks === batch) this.#acks = undefined;
        return this.#ackMany(seqs);
      });
      batch = { seqs, done };
      this.#acks = batch;
    }
    batch.seqs.push(Number(seq));
    return batch.done;
  }

  async #ackMany(seqs: number[]): Promise<void> {
    const woken = new Map<string, SubKey>();
    await this.#tx("acknowledge", (db) => {
      woken.clear();
      const { pending } = this.#t;
      const remove = db.prepare(`DELETE FROM ${pending} WHERE seq = ? RETURNING kind, name, sub, key, head`);
      const promote = db.prepare(
        `UPDATE ${pending} SET head = 1 WHERE seq = (SELECT min(seq) FROM ${pending}
           WHERE kind = ? AND name = ? AND sub = ? AND key = ?)`,
      );
      for (const seq of seqs) {
        const row = remove.get(seq);
        // A keyed head blocked younger rows of its key: the next one is the head now; wake consumers.
        if (row && row.key !== null && Number(row.head) === 1) {
          promote.run(row.kind as string, row.name as string, row.sub as string, row.key as string);
          const key = { kind: row.kind as SubKey["kind"], name: String(row.name), sub: String(row.sub) };
          woken.set(subKeyString(key), key);
        }
      }
    });
    for (const key of woken.values()) this.#emitPending(key);
  }

  async nack(seq: string, delayMs: number): Promise<void> {
    const sql = `UPDATE ${this.#t.pending} SET lease_until = NULL, visible_at = ? WHERE seq = ? RETURNING kind, name, sub`;
    // The time is read when the statement runs, not before a wait for the lock.
    const rows = await this.#whenUnlocked(
      "release",
      () => this.#prepare(sql).all(Date.now() + Math.max(0, delayMs), Number(seq)) as Row[],
    );
    const row = rows[0];
    if (row)
      this.#emitPending({ kind: row.kind as SubKey["kind"], name: String(row.name), sub: String(row.sub) });
  }

  async renew(seqs: string[], leaseMs: number): Promise<void> {
    if (seqs.length === 0) return;
    await this.#tx("renew leases", (db) => {
      const update = db.prepare(`UPDATE ${this.#t.pending} SET lease_until = ? WHERE seq = ?`);
      const until = Date.now() + leaseMs;
      for (const seq of seqs) update.run(until, Number(seq));
    });
  }

  async leasePoller(key: SubKey, holder: string, leaseMs: number): Promise<boolean> {
    // One statement: SQLite runs it alone (one writer), so two stores cannot both win the lease.
    const sql = `INSERT INTO ${this.#t.pollers} (sub_key, holder, expires_at) VALUES (?1, ?2, ?3)
       ON CONFLICT (sub_key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE ${this.#t.pollers}.holder = excluded.holder OR ${this.#t.pollers}.expires_at <= ?4
       RETURNING holder`;
    const rows = await this.#whenUnlocked("lease the poller", () => {
      const now = Date.now();
      return this.#prepare(sql).all(subKeyString(key), holder, now + leaseMs, now);
    });
    return rows.length === 1;
  }

  async releasePoller(key: SubKey, holder: string): Promise<void> {
    await this.#all(
      "release the poller",
      `DELETE FROM ${this.#t.pollers} WHERE sub_key = ? AND holder = ? RETURNING holder`,
      subKeyString(key),
      holder,
    );
  }

  onPending(listener: (key: SubKey) => void): () => void {
    this.#pendingListeners.add(listener);
    return () => this.#pendingListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#file !== undefined) {
      const stores = openStores.get(this.#file);
      stores?.delete(this);
      if (stores?.size === 0) openStores.delete(this.#file);
    }
    this.#appendListeners.clear();
    this.#pendingListeners.clear();
    this.#statements.clear();
    this.#db?.close();
    this.#db = undefined;
  }
}
