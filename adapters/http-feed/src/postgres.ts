import { redactUrl, SwitchyardError, type WireMessage } from "@switchyard/core";
import pg from "pg";
import {
  type AppendInput,
  type FeedRead,
  type FeedStore,
  type PendingRecord,
  parseSubKey,
  type SubKey,
  subKeyString,
} from "./store.js";

const FEED_CHANNEL = "switchyard_feed";
const PENDING_CHANNEL = "switchyard_feed_pending";

export interface PostgresStoreOptions {
  /** `postgres://user:pass@host:port/db`. */
  url: string;
  /** Table name prefix (letters, digits, underscores). Default `switchyard_feed`. */
  tablePrefix?: string;
  /** Pool size. Default 10. */
  poolSize?: number;
}

/**
 * The PostgreSQL store. Appends to one topic are serialised by a transaction-scoped advisory lock,
 * so positions (a bigserial) commit in order and a reader never passes a gap that fills later.
 * LISTEN/NOTIFY wakes long polls and consumers across processes; claims use FOR UPDATE SKIP LOCKED.
 */
export class PostgresStore implements FeedStore {
  readonly pool: pg.Pool;
  readonly #url: string;
  readonly #t: { feed: string; compacted: string; cursor: string; pending: string; pollers: string };
  readonly #appendListeners = new Set<(topic: string) => void>();
  readonly #pendingListeners = new Set<(key: SubKey) => void>();
  #listener: pg.Client | undefined;
  #listening: Promise<void> | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;
  /** Acks made in one turn of the event loop, deleted together (see ack). */
  #acks: { seqs: string[]; done: Promise<void> } | undefined;
  /** Rows this store claimed and has not settled: keyed or not (a keyless batch of acks needs no lock). */
  readonly #held = new Map<string, boolean>();

  constructor(options: PostgresStoreOptions) {
    const prefix = options.tablePrefix ?? "switchyard_feed";
    if (!/^[a-z_][a-z0-9_]{0,40}$/.test(prefix)) {
      throw new SwitchyardError("CONFIG_INVALID", `tablePrefix "${prefix}" must match [a-z_][a-z0-9_]*`);
    }
    this.#url = options.url;
    this.#t = {
      feed: `${prefix}_events`,
      compacted: `${prefix}_compacted`,
      cursor: `${prefix}_cursors`,
      pending: `${prefix}_pending`,
      pollers: `${prefix}_pollers`,
    };
    this.pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10 });
    // An idle client's error (the server restarted) must not crash the process; the next query retries.
    this.pool.on("error", () => {});
    // Nor a checked-out client's between two queries of a transaction (the pool listens only while a
    // client is idle): the next query on it fails, and the pool drops it when it is released.
    this.pool.on("connect", (client) => client.on("error", () => {}));
  }

  init(): Promise<void> {
    this.#ready ??= this.#init().catch((error: unknown) => {
      this.#ready = undefined;
      throw this.#wrap(error, "initialise the store");
    });
    return this.#ready;
  }

  async #init(): Promise<void> {
    const { feed, compacted, cursor, pending, pollers } = this.#t;
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      // Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog: one at a time.
      await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [feed]);
      await client.query(`
        CREATE TABLE IF NOT EXISTS ${feed} (
          topic text NOT NULL, seq bigserial NOT NULL, id text NOT NULL, subject text, method text,
          event text NOT NULL, PRIMARY KEY (topic, seq));
        CREATE UNIQUE INDEX IF NOT EXISTS ${feed}_id ON ${feed} (topic, id);
        CREATE INDEX IF NOT EXISTS ${feed}_subject ON ${feed} (topic, subject, seq);
        CREATE TABLE IF NOT EXISTS ${compacted} (
          topic text NOT NULL, id text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (topic, id));
        CREATE TABLE IF NOT EXISTS ${cursor} (
          kind text NOT NULL, name text NOT NULL, sub text NOT NULL, last_event_id text,
          updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (kind, name, sub));
        CREATE TABLE IF NOT EXISTS ${pollers} (
          sub_key text PRIMARY KEY, holder text NOT NULL, expires_at timestamptz NOT NULL);
        CREATE TABLE IF NOT EXISTS ${pending} (
          seq bigserial PRIMARY KEY, kind text NOT NULL, name text NOT NULL, sub text NOT NULL,
          id text NOT NULL, key text, headers text NOT NULL, body bytea NOT NULL,
          attempt integer NOT NULL DEFAULT 0, visible_at timestamptz NOT NULL DEFAULT now(),
          lease_until timestamptz, head boolean NOT NULL DEFAULT true);
        CREATE INDEX IF NOT EXISTS ${pending}_ready ON ${pending} (kind, name, sub, seq);
        CREATE INDEX IF NOT EXISTS ${pending}_key ON ${pending} (kind, name, sub, key, seq)
          WHERE key IS NOT NULL;`);
      // \`head\`: the row is keyless or the oldest pending row of its key, so claimable as far as
      // per-key order goes. Kept on insert and ack (under a lock per subscription), it lets a claim
      // read the heads from an index instead of probing every row of a deep keyed backlog for an
      // older one of its key. Tables made before it get the column and their heads computed once.
      const hasHead = await client.query(
        `SELECT 1 FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'head'`,
        [pending],
      );
      if (hasHead.rowCount === 0) {
        await client.query(`
          ALTER TABLE ${pending} ADD COLUMN head boolean NOT NULL DEFAULT true;
          UPDATE ${pending} p SET head = NOT EXISTS (SELECT 1 FROM ${pending} o WHERE o.kind = p.kind
            AND o.name = p.name AND o.sub = p.sub AND o.key = p.key AND o.seq < p.seq)
          WHERE key IS NOT NULL;`);
      }
      await client.query(
        `CREATE INDEX IF NOT EXISTS ${pending}_head ON ${pending} (kind, name, sub, seq) WHERE head`,
      );
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  #wrap(error: unknown, what: string): SwitchyardError {
    if (error instanceof SwitchyardError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new SwitchyardError(
      "TRANSPORT_ERROR",
      `http-feed store ${redactUrl(this.#url)}: could not ${what}: ${message.replaceAll(this.#url, redactUrl(this.#url))}`,
      { cause: error },
    );
  }

  async #query<R extends pg.QueryResultRow>(what: string, text: string, values?: unknown[]) {
    await this.init();
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      throw this.#wrap(error, what);
    }
  }

  async #tx<T>(what: string, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    await this.init();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw this.#wrap(error, what);
    }
    try {
      await client.query("BEGIN");
      const result = await body(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw this.#wrap(error, what);
    } finally {
      client.release();
    }
  }

  // ---- producer side: the feed ----

  async append(topic: string, events: AppendInput[], options: { compact: boolean }): Promise<void> {
    if (events.length === 0) return;
    const { feed, compacted } = this.#t;
    await this.#tx("append to the feed", async (client) => {
      await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`${feed}:${topic}`]);
      const inserted = await client.query<{ seq: string; subject: string | null }>(
        `INSERT INTO ${feed} (topic, id, subject, method, event)
         SELECT $1, e.id, e.subject, e.method, e.event
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS e(id, subject, method, event, n)
         ORDER BY e.n
         ON CONFLICT (topic, id) DO NOTHING
         RETURNING seq, subject`,
        [
          topic,
          events.map((e) => e.id),
          events.map((e) => e.subject ?? null),
          events.map((e) => e.method ?? null),
          events.map((e) => e.json),
        ],
      );
      if (options.compact) {
        // Older events of the same subject go; their ids stay resolvable as positions, so a consumer
        // whose lastEventId was compacted away continues right after it (no gap, no replay).
        const latest = new Map<string, string>();
        for (const row of inserted.rows) if (row.subject !== null) latest.set(row.subject, row.seq);
        if (latest.size > 0) {
          await client.query(
            `WITH gone AS (
               DELETE FROM ${feed} f USING unnest($2::text[], $3::bigint[]) AS l(subject, seq)
               WHERE f.topic = $1 AND f.subject = l.subject AND f.seq < l.seq
               RETURNING f.id, f.seq)
             INSERT INTO ${compacted} (topic, id, seq) SELECT $1, id, seq FROM gone
             ON CONFLICT (topic, id) DO UPDATE SET seq = EXCLUDED.seq`,
            [topic, [...latest.keys()], [...latest.values()]],
          );
        }
      }
      await client.query("SELECT pg_notify($1, $2)", [FEED_CHANNEL, topic]);
    });
    this.#emitAppend(topic);
  }

  async read(topic: string, lastEventId: string | undefined, limit: number): Promise<FeedRead> {
    const { feed, compacted } = this.#t;
    let after = "0";
    if (lastEventId !== undefined) {
      const found = await this.#query<{ seq: string }>(
        "resolve lastEventId",
        `SELECT seq FROM (
           SELECT seq, 0 AS pref FROM ${feed} WHERE topic = $1 AND id = $2
           UNION ALL SELECT seq, 1 FROM ${compacted} WHERE topic = $1 AND id = $2) s
         ORDER BY pref LIMIT 1`,
        [topic, lastEventId],
      );
      if (found.rows.length === 0) return { status: "unknown" };
      after = found.rows[0]!.seq;
    }
    const rows = await this.#query<{ seq: string; id: string; event: string }>(
      "read the feed",
      `SELECT seq, id, event FROM ${feed} WHERE topic = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
      [topic, after, limit],
    );
    return {
      status: "ok",
      events: rows.rows.map((r) => ({ seq: Number(r.seq), id: r.id, json: r.event })),
    };
  }

  onAppend(listener: (topic: string) => void): () => void {
    this.#appendListeners.add(listener);
    void this.#listen().catch(() => {});
    return () => this.#appendListeners.delete(listener);
  }

  #emitAppend(topic: string): void {
    for (const listener of this.#appendListeners) listener(topic);
  }

  #emitPending(key: SubKey): void {
    for (const listener of this.#pendingListeners) listener(key);
  }

  /** One LISTEN connection per store, for appends and pending rows from other processes. */
  #listen(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#listening ??= (async () => {
      const client = new pg.Client({ connectionString: this.#url });
      client.on("error", () => {
        // Lost: forget it, so the next listener registration reconnects. Local wake-ups still work.
        if (this.#listener === client) {
          this.#listener = undefined;
          this.#listening = undefined;
        }
      });
      client.on("notification", (n) => {
        if (n.channel === FEED_CHANNEL && n.payload !== undefined) this.#emitAppend(n.payload);
        else if (n.channel === PENDING_CHANNEL && n.payload !== undefined) {
          const key = parseSubKey(n.payload);
          if (key) this.#emitPending(key);
        }
      });
      await client.connect();
      if (this.#closed) {
        await client.end().catch(() => {});
        return;
      }
      this.#listener = client;
      await client.query(`LISTEN ${FEED_CHANNEL}; LISTEN ${PENDING_CHANNEL}`);
    })().catch((error: unknown) => {
      this.#listening = undefined;
      throw this.#wrap(error, "listen for notifications");
    });
    return this.#listening;
  }

  // ---- consumer side: cursors and pending rows ----

  async ensureCursor(key: SubKey): Promise<void> {
    await this.#query(
      "create the subscription",
      `INSERT INTO ${this.#t.cursor} (kind, name, sub) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
      [key.kind, key.name, key.sub],
    );
  }

  async cursor(key: SubKey): Promise<string | undefined> {
    const result = await this.#query<{ last_event_id: string | null }>(
      "read the subscription position",
      `SELECT last_event_id FROM ${this.#t.cursor} WHERE kind = $1 AND name = $2 AND sub = $3`,
      [key.kind, key.name, key.sub],
    );
    return result.rows[0]?.last_event_id ?? undefined;
  }

  async fill(
    key: SubKey,
    expected: string | undefined,
    next: string,
    messages: WireMessage[],
  ): Promise<boolean> {
    const moved = await this.#tx("store fetched events", async (client) => {
      const updated = await client.query(
        `UPDATE ${this.#t.cursor} SET last_event_id = $4, updated_at = now()
         WHERE kind = $1 AND name = $2 AND sub = $3 AND last_event_id IS NOT DISTINCT FROM $5`,
        [key.kind, key.name, key.sub, next, expected ?? null],
      );
      if (updated.rowCount !== 1) return false;
      await this.#insertPending(client, key, messages);
      return true;
    });
    if (moved) this.#emitPending(key);
    return moved;
  }

  async enqueue(key: SubKey, messages: WireMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await this.#tx("enqueue", (client) => this.#insertPending(client, key, messages));
    this.#emitPending(key);
  }

  async #insertPending(client: pg.PoolClient, key: SubKey, messages: WireMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const { pending } = this.#t;
    // Keyed rows: who is the head of its key must not race an ack promoting the next one.
    if (messages.some((m) => m.key !== undefined)) await this.#lockSub(client, key);
    await client.query(
      `INSERT INTO ${pending} (kind, name, sub, id, key, headers, body, head)
       SELECT $1, $2, $3, m.id, m.key, m.headers, m.body,
         m.key IS NULL OR (row_number() OVER (PARTITION BY m.key ORDER BY m.n) = 1 AND NOT EXISTS (
           SELECT 1 FROM ${pending} o WHERE o.kind = $1 AND o.name = $2 AND o.sub = $3 AND o.key = m.key))
       FROM unnest($4::text[], $5::text[], $6::text[], $7::bytea[]) WITH ORDINALITY AS m(id, key, headers, body, n)
       ORDER BY m.n`,
      [
        key.kind,
        key.name,
        key.sub,
        messages.map((m) => m.id),
        messages.map((m) => m.key ?? null),
        messages.map((m) => JSON.stringify(m.headers)),
        messages.map((m) => Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength)),
      ],
    );
    await client.query("SELECT pg_notify($1, $2)", [PENDING_CHANNEL, subKeyString(key)]);
  }

  /** Serialises the head bookkeeping of one subscription's keyed rows (inserts against acks). */
  async #lockSub(client: pg.PoolClient, key: SubKey): Promise<void> {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
      `${this.#t.pending}:${subKeyString(key)}`,
    ]);
  }

  async claim(key: SubKey, limit: number, leaseMs: number): Promise<PendingRecord[]> {
    const { pending } = this.#t;
    const result = await this.#query<{
      seq: string;
      id: string;
      key: string | null;
      headers: string;
      body: Buffer;
      attempt: number;
    }>(
      "claim messages",
      `UPDATE ${pending} p SET attempt = p.attempt + 1, lease_until = now() + make_interval(secs => $5::double precision / 1000)
       WHERE p.seq IN (
         SELECT c.seq FROM ${pending} c
         WHERE c.kind = $1 AND c.name = $2 AND c.sub = $3 AND c.head AND c.visible_at <= now()
           AND (c.lease_until IS NULL OR c.lease_until < now())
         ORDER BY c.seq LIMIT $4 FOR UPDATE SKIP LOCKED)
       RETURNING p.seq, p.id, p.key, p.headers, p.body, p.attempt`,
      [key.kind, key.name, key.sub, limit, leaseMs],
    );
    return result.rows
      .sort((a, b) => Number(a.seq) - Number(b.seq))
      .map((row) => {
        const message: WireMessage = {
          id: row.id,
          headers: JSON.parse(row.headers) as Record<string, string>,
          body: new Uint8Array(row.body.buffer, row.body.byteOffset, row.body.byteLength),
        };
        if (row.key !== null) message.key = row.key;
        this.#held.set(row.seq, row.key !== null);
        return { seq: row.seq, message, attempt: row.attempt };
      });
  }

  /**
   * Deletes a settled row. Acks made in the same turn of the event loop (a consumer settles many
   * at once) share one DELETE; each resolves once that DELETE has committed, or rejects with it.
   */
  ack(seq: string): Promise<void> {
    let batch = this.#acks;
    if (!batch) {
      const seqs: string[] = [];
      const done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        if (this.#acks === batch) this.#acks = undefined;
        return this.#ackMany(seqs);
      });
      batch = { seqs, done };
      this.#acks = batch;
    }
    batch.seqs.push(seq);
    return batch.done;
  }

  async #ackMany(seqs: string[]): Promise<void> {
    const { pending } = this.#t;
    const keyless = seqs.every((seq) => this.#held.get(seq) === false);
    for (const seq of seqs) this.#held.delete(seq);
    if (keyless) {
      // Rows this store claimed without a key: no head to move, one statement.
      await this.#query("acknowledge", `DELETE FROM ${pending} WHERE seq = ANY($1::bigint[])`, [seqs]);
      return;
    }
    const woken = await this.#tx("acknowledge", async (client) => {
      // The subscriptions whose keyed heads may go: locked (in one order) before the delete, so an
      // insert of the same key waits and then sees the promoted head, or none.
      const subs = await client.query<SubKey>(
        `SELECT DISTINCT kind, name, sub FROM ${pending} WHERE seq = ANY($1::bigint[]) AND key IS NOT NULL`,
        [seqs],
      );
      const keys = subs.rows.sort((a, b) => subKeyString(a).localeCompare(subKeyString(b)));
      for (const key of keys) await this.#lockSub(client, key);
      const deleted = await client.query<{
        kind: "queue" | "topic";
        name: string;
        sub: string;
        key: string | null;
      }>(
        `WITH gone AS (
           DELETE FROM ${pending} WHERE seq = ANY($1::bigint[]) RETURNING kind, name, sub, key, head),
         heads AS (
           SELECT DISTINCT kind, name, sub, key FROM gone WHERE key IS NOT NULL AND head)
         UPDATE ${pending} p SET head = true FROM (
           SELECT (SELECT min(o.seq) FROM ${pending} o WHERE o.kind = h.kind AND o.name = h.name
             AND o.sub = h.sub AND o.key = h.key AND o.seq <> ALL($1::bigint[])) AS seq FROM heads h) n
         WHERE p.seq = n.seq
         RETURNING p.kind, p.name, p.sub, p.key`,
        [seqs],
      );
      return deleted.rows;
    });
    // A keyed head blocked younger rows of its key: the next one is the head now; wake consumers.
    const seen = new Set<string>();
    for (const row of woken) {
      const key: SubKey = { kind: row.kind, name: row.name, sub: row.sub };
      const id = subKeyString(key);
      if (seen.has(id)) continue;
      seen.add(id);
      await this.#query("notify", "SELECT pg_notify($1, $2)", [PENDING_CHANNEL, id]).catch(() => {});
      this.#emitPending(key);
    }
  }

  async nack(seq: string, delayMs: number): Promise<void> {
    this.#held.delete(seq);
    const result = await this.#query<{ kind: "queue" | "topic"; name: string; sub: string }>(
      "release",
      `UPDATE ${this.#t.pending} SET lease_until = NULL,
         visible_at = now() + make_interval(secs => $2::double precision / 1000)
       WHERE seq = $1 RETURNING kind, name, sub`,
      [seq, Math.max(0, delayMs)],
    );
    const row = result.rows[0];
    if (row) {
      const key = { kind: row.kind, name: row.name, sub: row.sub };
      await this.#query("notify", "SELECT pg_notify($1, $2)", [PENDING_CHANNEL, subKeyString(key)]);
      this.#emitPending(key);
    }
  }

  async renew(seqs: string[], leaseMs: number): Promise<void> {
    if (seqs.length === 0) return;
    await this.#query(
      "renew leases",
      `UPDATE ${this.#t.pending} SET lease_until = now() + make_interval(secs => $2::double precision / 1000)
       WHERE seq = ANY($1::bigint[])`,
      [seqs, leaseMs],
    );
  }

  async leasePoller(key: SubKey, holder: string, leaseMs: number): Promise<boolean> {
    // ON CONFLICT DO UPDATE locks the row and checks the WHERE on its latest version: of two
    // competing callers one updates (or inserts), the other gets no row back. The database's
    // clock decides expiry, so producers' and consumers' clocks never need to agree.
    const { pollers } = this.#t;
    const result = await this.#query(
      "lease the poller",
      `INSERT INTO ${pollers} (sub_key, holder, expires_at)
       VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3::double precision / 1000))
       ON CONFLICT (sub_key) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
       WHERE ${pollers}.holder = EXCLUDED.holder OR ${pollers}.expires_at <= clock_timestamp()
       RETURNING holder`,
      [subKeyString(key), holder, leaseMs],
    );
    return result.rowCount === 1;
  }

  async releasePoller(key: SubKey, holder: string): Promise<void> {
    await this.#query(
      "release the poller",
      `DELETE FROM ${this.#t.pollers} WHERE sub_key = $1 AND holder = $2`,
      [subKeyString(key), holder],
    );
  }

  onPending(listener: (key: SubKey) => void): () => void {
    this.#pendingListeners.add(listener);
    void this.#listen().catch(() => {});
    return () => this.#pendingListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#held.clear();
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => {});
    await this.pool.end().catch(() => {});
  }
}
