import { randomUUID } from "node:crypto";
import {
  type Capabilities,
  type Delivery,
  type Destination,
  REDRIVE_TO,
  RESERVED_PREFIX,
  redactUrl,
  type Source,
  SwitchyardError,
  type TopologyEntity,
  type Transport,
  type TransportSubscription,
  type WireMessage,
} from "@switchyard/core";
import {
  BATCH_CONTENT_TYPE,
  fromCloudEvent,
  METHOD_ATTRIBUTE,
  toCloudEvent,
  UnidentifiableEvent,
} from "./cloudevents.js";
import { PostgresStore } from "./postgres.js";
import { type FeedServer, startFeedServer } from "./server.js";
import { SqliteStore, sqlitePath } from "./sqlite.js";
import type { FeedStore, PendingRecord, SubKey } from "./store.js";
import { subKeyString } from "./store.js";

export const httpFeedCapabilities: Partial<Capabilities> = {
  nativeDeadLetter: false,
  nativeDelay: true,
  ordering: "key",
  consumerGroups: true,
  replayFromStart: true,
  persistent: true,
  maxMessageBytes: 1024 * 1024,
  maxHeaders: 256,
  redeliveryCount: true,
  balancedConsumers: true,
  maxDelayMs: 30 * 24 * 60 * 60 * 1000,
};

export interface HttpFeedOptions {
  /** The store: a `postgres://` or `sqlite:` URL, or a `FeedStore`. Required. */
  store: FeedStore | string;
  /** Table name prefix in a `postgres://` or `sqlite:` store (two services sharing one database). Default `switchyard_feed`. */
  tablePrefix?: string;
  /** Base URL of the producer's feeds that subscriptions poll: `<feedUrl>/<topic>`. */
  feedUrl?: string;
  /** Bearer token sent to the feed (consumer side) and, with `serve`, required by it. Never logged. */
  token?: string;
  /** Also serve this store's feeds over HTTP (producer side), on `host:port` and `basePath`. */
  serve?: { host?: string; port?: number; basePath?: string } | false;
  /** Topics compacted by subject on append (`true`: all). */
  compact?: boolean | readonly string[];
  /** Long-poll `timeout` asked of the feed, ms. Default 20,000. */
  pollTimeoutMs?: number;
  /** Events per feed request. Default 500 (the server caps it, 1,000 by default). */
  pageSize?: number;
  /** How long a claimed message is reserved for its consumer (renewed while handled). Default 30,000. */
  leaseMs?: number;
  /** Longest pause between polls of the consumer-side store when nothing wakes it. Default 1,000. */
  idlePollMs?: number;
  /**
   * The poller lease of a subscription, ms: of the transports consuming one subscription from one
   * store, only the lease holder follows the producer's feed; it renews every third of this, and
   * the others retry as often, taking over when it lapses (a holder that died) or at once after a
   * clean stop (the lease is released). Default 10,000.
   */
  readerLeaseMs?: number;
}

interface SharedStore {
  store: FeedStore;
  refs: number;
}
const sharedStores = new Map<string, SharedStore>();

/**
 * One store per store URL per process, however many buses use it: one `pg` pool and LISTEN
 * connection, or one SQLite connection (so `sqlite::memory:` is one database for all of them).
 */
function acquireStore(url: string, tablePrefix?: string): { store: FeedStore; release: () => Promise<void> } {
  const id = `${tablePrefix ?? ""} ${url}`;
  let shared = sharedStores.get(id);
  if (!shared) {
    shared = {
      store: url.startsWith("sqlite:")
        ? new SqliteStore({ path: sqlitePath(url), ...(tablePrefix !== undefined ? { tablePrefix } : {}) })
        : new PostgresStore({ url, ...(tablePrefix !== undefined ? { tablePrefix } : {}) }),
      refs: 0,
    };
    sharedStores.set(id, shared);
  }
  shared.refs++;
  const entry = shared;
  let released = false;
  return {
    store: entry.store,
    release: async () => {
      if (released) return;
      released = true;
      if (--entry.refs === 0) {
        sharedStores.delete(id);
        await entry.store.close();
      }
    },
  };
}

/** Resolves after `ms` or on abort; leaves no listener behind (a standby sleeps on one signal for ever). */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

/**
 * Feed servers by store and address: two buses of one process that serve the same store on the
 * same fixed address (two services of a demo, say) share one server instead of colliding on the
 * port. A random port (0) is never shared.
 */
const servers = new WeakMap<FeedStore, Map<string, { server: Promise<FeedServer>; users: number }>>();

async function acquireServer(
  store: FeedStore,
  serve: { host?: string; port?: number; basePath?: string },
  token: string | undefined,
): Promise<{ server: FeedServer; release: () => Promise<void> }> {
  const start = () => startFeedServer({ store, ...serve, ...(token !== undefined ? { token } : {}) });
  if (!serve.port) {
    const server = await start();
    return { server, release: () => server.close() };
  }
  const key = `${serve.host ?? "127.0.0.1"}:${serve.port}/${serve.basePath ?? ""}|${token ?? ""}`;
  let byAddress = servers.get(store);
  if (!byAddress) {
    byAddress = new Map();
    servers.set(store, byAddress);
  }
  let entry = byAddress.get(key);
  if (!entry) {
    entry = { server: start(), users: 0 };
    byAddress.set(key, entry);
    entry.server.catch(() => byAddress.delete(key));
  }
  entry.users++;
  const server = await entry.server;
  let released = false;
  return {
    server,
    release: async () => {
      if (released) return;
      released = true;
      if (--entry.users === 0) {
        byAddress.delete(key);
        await server.close();
      }
    },
  };
}

/**
 * Pub/sub over HTTP feeds. Publishing to a topic appends to the topic's feed in the store (served
 * by `createFeedHandler` or `serve`); a subscription polls `<feedUrl>/<topic>` with long polling,
 * moves what it reads into its own pending rows in the store together with its position, and hands
 * them out to its competing consumers. Queues are local work tables in the store (see README).
 */
export class HttpFeedTransport implements Transport {
  readonly name = "http-feed";
  readonly capabilities = httpFeedCapabilities;
  readonly store: FeedStore;
  readonly #release: () => Promise<void>;
  readonly #options: HttpFeedOptions;
  readonly #pollers = new Map<string, { poller: FeedPoller; refs: number }>();
  readonly #readers = new Set<PendingReader>();
  #server: FeedServer | undefined;
  #releaseServer: (() => Promise<void>) | undefined;
  #feedUrl: string | undefined;
  #connected: Promise<void> | undefined;
  #closed = false;

  constructor(options: HttpFeedOptions) {
    this.#options = options;
    if (typeof options.store === "string") {
      const { store, release } = acquireStore(options.store, options.tablePrefix);
      this.store = store;
      this.#release = release;
    } else {
      this.store = options.store;
      this.#release = async () => {};
    }
    this.#feedUrl = options.feedUrl?.replace(/\/+$/, "");
    for (const [name, value] of [
      ["pollTimeoutMs", options.pollTimeoutMs],
      ["pageSize", options.pageSize],
      ["leaseMs", options.leaseMs],
      ["idlePollMs", options.idlePollMs],
      ["readerLeaseMs", options.readerLeaseMs],
    ] as const) {
      if (value !== undefined && (!Number.isInteger(value) || value < 1 || value > 3_600_000)) {
        throw new SwitchyardError(
          "CONFIG_INVALID",
          `http-feed: ${name} must be an integer from 1 to 3600000`,
        );
      }
    }
  }

  /** The feed server this transport started (`serve`), if any. */
  get server(): FeedServer | undefined {
    return this.#server;
  }

  connect(): Promise<void> {
    this.#connected ??= (async () => {
      await this.store.init();
      if (this.#options.serve) {
        const shared = await acquireServer(this.store, this.#options.serve, this.#options.token);
        this.#server = shared.server;
        this.#releaseServer = shared.release;
        this.#feedUrl ??= this.#server.url;
      }
    })();
    return this.#connected;
  }

  async provision(entities: TopologyEntity[]): Promise<void> {
    await this.connect();
    for (const entity of entities) {
      if (entity.kind === "subscription") {
        await this.store.ensureCursor({ kind: "topic", name: entity.topic, sub: entity.name });
      }
    }
  }

  #compacted(topic: string): boolean {
    const compact = this.#options.compact;
    return compact === true || (Array.isArray(compact) && compact.includes(topic));
  }

  async publish(destination: Destination, messages: WireMessage[]): Promise<void> {
    this.#assertOpen();
    await this.connect();
    if (destination.kind === "queue") {
      await this.store.enqueue({ kind: "queue", name: destination.name, sub: destination.name }, messages);
      return;
    }
    // A redrive goes to the one subscription that failed: straight into its pending rows, which
    // are consumer-side state like the DLQ it came from; the feed itself is never rewritten.
    let batch: WireMessage[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const events = batch.map((wire) => {
        const subject = wire.headers[`${RESERVED_PREFIX}subject`];
        const method = wire.headers[METHOD_ATTRIBUTE];
        return {
          id: wire.id,
          json: JSON.stringify(toCloudEvent(wire)),
          ...(subject !== undefined ? { subject } : {}),
          ...(method !== undefined ? { method } : {}),
        };
      });
      batch = [];
      await this.store.append(destination.name, events, { compact: this.#compacted(destination.name) });
    };
    for (const message of messages) {
      const redriveTo = message.headers[REDRIVE_TO];
      if (redriveTo === undefined) {
        batch.push(message);
        continue;
      }
      await flush();
      await this.store.enqueue({ kind: "topic", name: destination.name, sub: redriveTo }, [message]);
    }
    await flush();
  }

  async subscribe(
    source: Source,
    options: { prefetch: number },
    deliver: (delivery: Delivery) => void,
  ): Promise<TransportSubscription> {
    this.#assertOpen();
    await this.connect();
    const key: SubKey =
      source.kind === "queue"
        ? { kind: "queue", name: source.name, sub: source.name }
        : { kind: "topic", name: source.name, sub: source.subscription };
    let stopPoller: (() => Promise<void>) | undefined;
    if (key.kind === "topic") {
      if (this.#feedUrl === undefined) {
        throw new SwitchyardError(
          "CONFIG_INVALID",
          `http-feed: subscribing to topic "${source.name}" needs the producer's feed URL (http-feed://host:port/base or the feedUrl option)`,
        );
      }
      await this.store.ensureCursor(key);
      stopPoller = this.#startPoller(key, this.#feedUrl);
    }
    const reader = new PendingReader(this.store, key, options.prefetch, deliver, {
      leaseMs: this.#options.leaseMs ?? 30_000,
      idlePollMs: this.#options.idlePollMs ?? 1000,
    });
    this.#readers.add(reader);
    reader.start();
    return {
      close: async () => {
        this.#readers.delete(reader);
        await reader.close();
        await stopPoller?.();
      },
    };
  }

  /**
   * One poller per subscription per transport; of competing transports' pollers, the one holding
   * the subscription's poller lease follows the feed, the others stand by.
   */
  #startPoller(key: SubKey, feedUrl: string): () => Promise<void> {
    const id = subKeyString(key);
    let entry = this.#pollers.get(id);
    if (!entry) {
      const poller = new FeedPoller(this.store, key, feedUrl, {
        pollTimeoutMs: this.#options.pollTimeoutMs ?? 20_000,
        pageSize: this.#options.pageSize ?? 500,
        readerLeaseMs: this.#options.readerLeaseMs ?? 10_000,
        ...(this.#options.token !== undefined ? { token: this.#options.token } : {}),
      });
      entry = { poller, refs: 0 };
      this.#pollers.set(id, entry);
      poller.start();
    }
    entry.refs++;
    const held = entry;
    let stopped = false;
    return async () => {
      if (stopped) return;
      stopped = true;
      if (--held.refs === 0) {
        this.#pollers.delete(id);
        await held.poller.stop();
      }
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#readers].map((reader) => reader.close()));
    this.#readers.clear();
    await Promise.all([...this.#pollers.values()].map((entry) => entry.poller.stop()));
    this.#pollers.clear();
    await this.#releaseServer?.();
    await this.#release();
  }

  #assertOpen(): void {
    if (this.#closed) throw new SwitchyardError("CLOSED", "http-feed transport is closed");
  }
}

/**
 * Reads a producer's feed for one subscription: long polls from the stored position, and stores
 * each page as pending rows together with the new position (one transaction), so a crash replays
 * a page, never skips one. Errors (refused connections, 5xx, timeouts, garbage) back off.
 *
 * Competing consumers of one subscription each have a poller, but only the holder of the
 * subscription's poller lease (in the store) follows the feed: it renews the lease every
 * `readerLeaseMs / 3` and stops following, aborting its request, as soon as a renewal fails. The
 * others stand by, trying for the lease as often, and start from the stored position when they get
 * it. A clean stop releases the lease. The position's compare-and-set in `fill` stays the safety
 * net for the moment two pollers overlap (a holder that lost its lease with a page in hand).
 */
export class FeedPoller {
  readonly #abort = new AbortController();
  readonly holder = randomUUID();
  #running: Promise<void> | undefined;
  #holding = false;
  /** The last problem met, for diagnostics (no secrets). */
  lastError: string | undefined;

  constructor(
    readonly store: FeedStore,
    readonly key: SubKey,
    readonly feedUrl: string,
    readonly options: { pollTimeoutMs: number; pageSize: number; token?: string; readerLeaseMs?: number },
  ) {}

  /** Whether this poller holds the subscription's poller lease (and so follows the feed). */
  get holding(): boolean {
    return this.#holding;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#running;
  }

  #backoff = 0;

  get #leaseMs(): number {
    return this.options.readerLeaseMs ?? 10_000;
  }

  /** Acquires or renews the lease; false on a refusal or a store error (it cannot be sure). */
  async #lease(): Promise<boolean> {
    try {
      this.#holding = await this.store.leasePoller(this.key, this.holder, this.#leaseMs);
    } catch (error) {
      this.lastError = error instanceof Error ? error.message : String(error);
      this.#holding = false;
    }
    return this.#holding;
  }

  async #loop(): Promise<void> {
    const signal = this.#abort.signal;
    const every = Math.max(10, Math.floor(this.#leaseMs / 3));
    while (!signal.aborted) {
      if (!(await this.#lease())) {
        await sleep(every, signal); // standing by
        continue;
      }
      const lost = new AbortController();
      let renewing: Promise<void> | undefined;
      const renewal = setInterval(() => {
        renewing ??= this.#lease().then((held) => {
          renewing = undefined;
          if (!held) lost.abort();
        });
      }, every);
      try {
        await this.#followWhileHeld(AbortSignal.any([signal, lost.signal]));
      } finally {
        clearInterval(renewal);
        await renewing; // a renewal that lands after the release below would hold the lease again
      }
    }
    if (this.#holding) {
      this.#holding = false;
      await this.store.releasePoller(this.key, this.holder).catch(() => {});
    }
  }

  async #followWhileHeld(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const inFlight = new AbortController();
      const requestSignal = AbortSignal.any([signal, inFlight.signal]);
      try {
        await this.#follow(requestSignal);
      } catch (error) {
        if (signal.aborted) break;
        this.lastError = error instanceof Error ? error.message : String(error);
        this.#backoff = Math.min(Math.max(100, this.#backoff * 2), 5000);
        await sleep(this.#backoff, signal);
      } finally {
        inFlight.abort(); // a page asked for ahead is not wanted any more
      }
    }
  }

  /**
   * Follows the feed from the stored position. The next page is asked for as soon as a page has
   * arrived, while that page is being stored: the consumers are not left waiting for a round trip
   * per page. Pages are stored in order, each moving the position from where the last one left it;
   * returns (to start over from the stored position) when another poller moved it first, throws on
   * anything that must back off.
   */
  async #follow(signal: AbortSignal): Promise<void> {
    let cursor = await this.store.cursor(this.key);
    let next = this.#fetchPage(cursor, signal);
    next.catch(() => {}); // awaited below; a rejection while a page is stored must not go unhandled
    while (!signal.aborted) {
      const page = await next;
      this.#backoff = 0;
      if (page.wires.length === 0) {
        if (page.stuck) throw page.stuck;
        next = this.#fetchPage(cursor, signal);
        next.catch(() => {});
        continue;
      }
      const last = page.wires.at(-1)!.id;
      if (!page.stuck) {
        next = this.#fetchPage(last, signal);
        next.catch(() => {});
      }
      if (!(await this.store.fill(this.key, cursor, last, page.wires))) return;
      cursor = last;
      if (page.stuck) throw page.stuck;
    }
  }

  /** One request for the page after `cursor`. Throws on anything that must back off. */
  async #fetchPage(
    cursor: string | undefined,
    signal: AbortSignal,
  ): Promise<{ wires: WireMessage[]; stuck?: SwitchyardError }> {
    const url = new URL(`${this.feedUrl}/${encodeURIComponent(this.key.name)}`);
    if (cursor !== undefined) url.searchParams.set("lastEventId", cursor);
    url.searchParams.set("timeout", String(this.options.pollTimeoutMs));
    url.searchParams.set("limit", String(this.options.pageSize));
    const headers: Record<string, string> = { accept: `${BATCH_CONTENT_TYPE}, application/json` };
    if (this.options.token !== undefined) headers.authorization = `Bearer ${this.options.token}`;
    const requestSignal = AbortSignal.any([signal, AbortSignal.timeout(this.options.pollTimeoutMs + 10_000)]);
    const response = await fetch(url, { headers, signal: requestSignal });
    const where = redactUrl(url.toString().split("?")[0]!);
    if (!response.ok) {
      await response.body?.cancel().catch(() => {});
      throw new SwitchyardError("TRANSPORT_ERROR", `feed ${where} answered ${response.status}`);
    }
    const type = (response.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== BATCH_CONTENT_TYPE && type !== "application/json") {
      await response.body?.cancel().catch(() => {});
      throw new SwitchyardError("TRANSPORT_ERROR", `feed ${where} answered content type "${type}"`);
    }
    const items: unknown = await response.json();
    if (!Array.isArray(items)) {
      throw new SwitchyardError("TRANSPORT_ERROR", `feed ${where} did not answer a JSON array`);
    }
    const wires: WireMessage[] = [];
    for (const item of items) {
      try {
        wires.push(fromCloudEvent(item));
      } catch (error) {
        if (!(error instanceof UnidentifiableEvent)) throw error;
        // The position cannot pass an item without an id: take what came before it, then back off.
        return { wires, stuck: new SwitchyardError("DECODE_FAILED", `feed ${where}: ${error.message}`) };
      }
    }
    return { wires };
  }
}

/** Hands a work table's rows to one consumer, at most `prefetch` unsettled at once. */
class PendingReader {
  readonly #unsettled = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #pumping = false;
  #again = false;
  #closed = false;
  #off: (() => void) | undefined;
  #idle: NodeJS.Timeout | undefined;
  #renew: NodeJS.Timeout | undefined;

  constructor(
    readonly store: FeedStore,
    readonly key: SubKey,
    readonly prefetch: number,
    readonly deliver: (delivery: Delivery) => void,
    readonly options: { leaseMs: number; idlePollMs: number },
  ) {}

  start(): void {
    const id = subKeyString(this.key);
    this.#off = this.store.onPending((key) => {
      if (subKeyString(key) === id) this.pump();
    });
    this.#idle = setInterval(() => this.pump(), this.options.idlePollMs);
    this.#renew = setInterval(
      () => {
        if (this.#unsettled.size > 0)
          void this.store.renew([...this.#unsettled], this.options.leaseMs).catch(() => {});
      },
      Math.max(100, Math.floor(this.options.leaseMs / 3)),
    );
    this.pump();
  }

  pump(): void {
    if (this.#closed) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    void this.#drain()
      .catch(() => {
        // The store is unreachable: the idle timer tries again.
      })
      .finally(() => {
        this.#pumping = false;
      });
  }

  async #drain(): Promise<void> {
    do {
      this.#again = false;
      while (!this.#closed && this.#unsettled.size < this.prefetch) {
        // Refill by the half, not by the message: one claim (a write transaction) per settled
        // message was most of a backlog drain's cost. Keyed rows blocked behind a held one leave
        // the free slots high, so they are still claimed as soon as their predecessor is acked.
        const free = this.prefetch - this.#unsettled.size;
        if (this.#unsettled.size > 0 && free < Math.ceil(this.prefetch / 2)) break;
        const rows = await this.store.claim(this.key, free, this.options.leaseMs);
        if (this.#closed) {
          await Promise.all(rows.map((row) => this.store.nack(row.seq, 0)));
          return;
        }
        if (rows.length === 0) break;
        for (const row of rows) this.#hand(row);
      }
    } while (this.#again && !this.#closed);
  }

  #hand(row: PendingRecord): void {
    this.#unsettled.add(row.seq);
    let settled = false;
    const settle = (what: string) => {
      if (settled) {
        throw new SwitchyardError(
          "ALREADY_SETTLED",
          `message ${row.message.id} already settled; ${what} refused`,
        );
      }
      settled = true;
    };
    const done = () => {
      this.#unsettled.delete(row.seq);
      this.pump();
    };
    this.deliver({
      message: row.message,
      attempt: row.attempt,
      ack: async () => {
        settle("ack");
        try {
          await this.#retried(() => this.store.ack(row.seq));
        } finally {
          done();
        }
      },
      nack: async (options) => {
        settle("nack");
        const delayMs = Math.max(0, options?.delayMs ?? 0);
        try {
          await this.#retried(() => this.store.nack(row.seq, delayMs));
        } finally {
          // Refill on the next turn, not now: the released row is claimable at once, and a consumer
          // that nacks every delivery (one closing) would otherwise claim and nack it again and
          // again in microtasks, starving timers and I/O (the store's wake-up comes next turn too).
          this.#unsettled.delete(row.seq);
          setImmediate(() => this.pump());
        }
        if (delayMs > 0 && !this.#closed) {
          const timer = setTimeout(() => {
            this.#timers.delete(timer);
            this.pump();
          }, delayMs + 5);
          this.#timers.add(timer);
        }
      },
    });
  }

  /**
   * A settlement the store failed (its connection was lost) is tried again, with backoff, while the
   * row is still leased to us: given up at once, the row would sit under its lease (`leaseMs`, 30 s
   * by default), and with it every later message of its key. The row stays unsettled meanwhile, so
   * its lease is renewed once the store answers again.
   */
  async #retried(settle: () => Promise<void>): Promise<void> {
    const until = Date.now() + this.options.leaseMs;
    for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 2_000)) {
      try {
        return await settle();
      } catch (error) {
        if (this.#closed || Date.now() + delayMs > until) throw error;
        await sleep(delayMs);
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#off?.();
    clearInterval(this.#idle);
    clearInterval(this.#renew);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    // Rows still held (the core settles in-flight work before closing) go back at once.
    await Promise.all([...this.#unsettled].map((seq) => this.store.nack(seq, 0).catch(() => {})));
    this.#unsettled.clear();
  }
}
