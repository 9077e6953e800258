// Shared pieces of the fault tests (adapters/*/fault/*.fault.ts): drive the broker stack from a
// test, tell whether a broker really restarted, and count what a stream delivered.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The pid of a broker `brokers.sh` started (from its pid file), to show it really restarted. */
export function brokerPid(name: string): string | undefined {
  const cache =
    process.env.SWITCHYARD_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "switchyard");
  try {
    return readFileSync(join(cache, "brokers", "run", `${name}.pid`), "utf8").trim();
  } catch {
    return undefined;
  }
}

/** `scripts/brokers/brokers.sh ARGS…`, bounded, without blocking the event loop (the clients keep running). */
export function brokers(args: string[], timeoutMs = 150_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile("bash", ["scripts/brokers/brokers.sh", ...args], {
      cwd: ROOT,
      timeout: timeoutMs,
    });
    child.stdout?.pipe(process.stderr);
    child.stderr?.pipe(process.stderr);
    child.on("error", reject);
    child.on("exit", (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`brokers.sh ${args.join(" ")}: exit ${code ?? signal}`)),
    );
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Distinct ids handled, plus every handling (duplicates), with a bounded wait for a count. */
export class Handled {
  readonly ids = new Set<number>();
  calls = 0;
  /** When the last handling happened (ms since the epoch), and the first one after `markFrom()`. */
  lastAt = 0;
  firstAfterMark: number | undefined;
  #mark: number | undefined;
  #waiters: Array<() => void> = [];

  /** From now on, remember the time of the next handling (recovery time after a fault). */
  markFrom(time = Date.now()): void {
    this.#mark = time;
    this.firstAfterMark = undefined;
  }

  /** First handlings of a key that came after a higher number of the same key (keys sent in order). */
  outOfOrder = 0;
  readonly #lastByKey = new Map<string, number>();

  /** Ordering keys seen (an ordered case must see its keys, or its order check proves nothing). */
  get keys(): number {
    return this.#lastByKey.size;
  }

  /** `key`: the message's ordering key, to count first handlings that broke its order. */
  add(n: number, key?: string): void {
    this.calls++;
    if (key !== undefined && !this.ids.has(n)) {
      if (n < (this.#lastByKey.get(key) ?? -1)) this.outOfOrder++;
      else this.#lastByKey.set(key, n);
    }
    this.ids.add(n);
    this.lastAt = Date.now();
    if (this.#mark !== undefined && this.firstAfterMark === undefined) this.firstAfterMark = this.lastAt;
    for (const waiter of this.#waiters) waiter();
  }

  reach(count: number, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.ids.size < count) return;
        clearTimeout(timer);
        this.#waiters = this.#waiters.filter((w) => w !== check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== check);
        // Name what is missing (numbers are 0…count-1), so a failure says which messages to look for.
        const missing: number[] = [];
        for (let n = 0; n < count && missing.length < 40; n++) if (!this.ids.has(n)) missing.push(n);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what} (have ${this.ids.size}; missing ${missing.join(",")})`,
          ),
        );
      }, timeoutMs);
      this.#waiters.push(check);
      check();
    });
  }
}

/**
 * Closes every bus, and fails with a clear error when that has not finished within `timeoutMs`: a
 * close that hangs after an outage (a settlement stuck on a dead socket) is a bug the test must
 * name, not a test timeout.
 */
export async function closeWithin(
  timeoutMs: number,
  buses: ReadonlyArray<{ close(): Promise<void> }>,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`closing the buses did not finish within ${timeoutMs} ms after the fault`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([Promise.all(buses.map((bus) => bus.close())), hung]);
  } finally {
    clearTimeout(timer);
  }
}

export interface OutageStreamOptions {
  /** Sends one batch of numbered messages; a rejection is retried (see `maxRetries`, `retryForMs`). */
  send(numbers: number[]): Promise<void>;
  /** Where the consumer records what it handled. */
  handled: Handled;
  /** The fault: `stop`, `downMs` of nothing, then `start`; `announce` is printed first. */
  outage: { announce: string; stop(): Promise<void>; start(): Promise<void> };
  /** A batch is sent again every 500 ms after a failure, at most this many times… */
  maxRetries?: number;
  /** …or for at most this long. */
  retryForMs?: number;
  total?: number;
  batch?: number;
  /** Pause between batches: ~1,000 messages/s by default, so the outage falls mid-stream. */
  paceMs?: number;
  /** The message number at which the outage starts. */
  outageAt?: number;
  downMs?: number;
}

export interface OutageStream {
  outage: { from: number; stopped?: number; to?: number };
  /** First number published once the broker was stopped (only a restarted broker can have it). */
  firstAfterStop: number | undefined;
  /** First number published once the broker was back. */
  firstAfterRestart: number | undefined;
  publishFailures: number;
  lastPublishError: string;
}

/**
 * The stream every broker fault test runs: `total` numbered messages in paced batches, the broker
 * stopped and started again in the middle, failed batches sent again as an application would; resolves
 * once the outage is over and every number was handled (plus a second for late redeliveries, which
 * still count as duplicates).
 */
export async function runOutageStream(options: OutageStreamOptions): Promise<OutageStream> {
  const { total = 10_000, batch = 100, paceMs = 100, outageAt = 3_000, downMs = 2_000 } = options;
  const result: OutageStream = {
    outage: { from: 0 },
    firstAfterStop: undefined,
    firstAfterRestart: undefined,
    publishFailures: 0,
    lastPublishError: "",
  };
  let outageDone: Promise<void> | undefined;
  for (let from = 0; from < total; from += batch) {
    if (from === outageAt) {
      outageDone = (async () => {
        console.warn(`\n!!! FAULT TEST: ${options.outage.announce}\n`);
        result.outage.from = Date.now();
        await options.outage.stop();
        result.outage.stopped = Date.now();
        await sleep(downMs);
        await options.outage.start();
        result.outage.to = Date.now();
        console.warn(`!!! FAULT TEST: the broker is back\n`);
      })();
    }
    if (result.outage.stopped !== undefined) result.firstAfterStop ??= from;
    if (result.outage.to !== undefined) result.firstAfterRestart ??= from;
    const numbers = Array.from({ length: Math.min(batch, total - from) }, (_, i) => from + i);
    const deadline = Date.now() + (options.retryForMs ?? Number.POSITIVE_INFINITY);
    for (let retries = 0; ; retries++) {
      try {
        await options.send(numbers);
        break;
      } catch (error) {
        result.publishFailures++;
        result.lastPublishError = String(error).slice(0, 200);
        if (retries >= (options.maxRetries ?? Number.POSITIVE_INFINITY) || Date.now() > deadline) throw error;
        await sleep(500);
      }
    }
    await sleep(paceMs);
  }
  await outageDone;
  await options.handled.reach(total, 90_000, `all ${total} messages handled`);
  await sleep(1_000);
  return result;
}

/**
 * A loopback TCP proxy in front of a broker, to cut connections without touching the broker (which
 * other suites share). `cut()` resets every connection through it and refuses new ones (each is
 * reset as soon as it is accepted) until `restore()`.
 */
export class TcpProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #refusing = false;
  /** Connections accepted and passed through, and connections reset (by cuts or while refusing). */
  connections = 0;
  resets = 0;

  private constructor(
    readonly target: { host: string; port: number },
    server: Server,
  ) {
    this.#server = server;
  }

  /**
   * Listens on 127.0.0.1 and forwards to `target`: on a free port, or on `options.port` where the
   * clients must find the proxy at a fixed address (Kafka's CUT listener advertises 127.0.0.1:19094).
   */
  static async start(
    target: { host: string; port: number },
    options: { port?: number } = {},
  ): Promise<TcpProxy> {
    const server = createServer();
    const proxy = new TcpProxy(target, server);
    server.on("connection", (client) => proxy.#accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
    });
    return proxy;
  }

  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === "string") throw new Error("the proxy is not listening");
    return address.port;
  }

  /** `127.0.0.1:PORT`, to put in a URL instead of the broker's address. */
  get hostPort(): string {
    return `127.0.0.1:${this.port}`;
  }

  #accept(client: Socket): void {
    if (this.#refusing) {
      this.resets++;
      client.resetAndDestroy();
      return;
    }
    this.connections++;
    const upstream = tcpConnect(this.target.port, this.target.host);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
      // An error on either side ends both; the client sees a reset, as after a network fault.
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }

  /** Resets every open connection (both sides) and refuses new ones until `restore()`. */
  cut(): void {
    this.#refusing = true;
    for (const socket of [...this.#sockets]) {
      this.resets++;
      socket.resetAndDestroy();
    }
  }

  restore(): void {
    this.#refusing = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * `runOutageStream` with the fault being a connection cut through `proxy`: every connection reset,
 * new ones refused for `downMs`, then let through again. The broker keeps running. Adds the recovery
 * time: from the restore to the first message handled after it.
 */
export async function runConnectionCut(
  options: Omit<OutageStreamOptions, "outage"> & { proxy: TcpProxy; adapter: string },
): Promise<OutageStream & { recoveryMs: number | undefined }> {
  const { proxy, handled } = options;
  const stream = await runOutageStream({
    ...options,
    outage: {
      announce: `(${options.adapter}) cutting every connection through the loopback proxy and refusing new ones; the broker keeps running`,
      stop: async () => proxy.cut(),
      start: async () => {
        proxy.restore();
        handled.markFrom();
      },
    },
  });
  const recoveryMs =
    handled.firstAfterMark !== undefined && stream.outage.to !== undefined
      ? handled.firstAfterMark - stream.outage.to
      : undefined;
  return { ...stream, recoveryMs };
}

/** What a connection-cut case needs from the adapter's test (this package knows nothing of the core). */
export interface CutCaseOptions {
  /** The broker's name in the FAULT line, e.g. `rabbitmq`, `activemq (stomp)`. */
  broker: string;
  /** The fault test's folder, for the announcement. */
  adapter: string;
  proxy: TcpProxy;
  total: number;
  /** Filled by the consumer, which the test has started through `proxy` already. */
  handled: Handled;
  /** The consumer bus's onError events. */
  errors: string[];
  producer: { close(): Promise<void> };
  consumer: { close(): Promise<void> };
  /** Sends these numbered messages with ids fixed per number (a re-sent batch duplicates, never adds). */
  send(numbers: number[]): Promise<void>;
  /**
   * The adapter keeps per-key order and the test sends keyed messages (numbers in order per key, the
   * consumer passing the key to `handled.add`): no first handling may come out of order.
   */
  ordered?: boolean;
  /** Figures of the adapter's own for the FAULT line (reconnect counters and the like). */
  figures?: () => Record<string, unknown>;
}

/**
 * The connection-cut fault case, the same on every adapter: `total` messages in paced batches, every
 * connection through `proxy` cut mid-stream and new ones refused for ~2 s, failed batches sent again
 * (20 times at most). Prints the FAULT line, then checks that live connections were broken, the
 * clients came back over new ones, nothing was lost, and both buses close within 60 s. The proxy is
 * closed at the end whatever happened; the adapter's own checks follow.
 */
export async function connectionCutCase(options: CutCaseOptions): Promise<void> {
  const { proxy, handled, total, producer, consumer } = options;
  const started = Date.now();
  try {
    const stream = await runConnectionCut({
      adapter: options.adapter,
      proxy,
      handled,
      total,
      send: options.send,
      maxRetries: 20,
      // 3,000 of the default 10,000; a smaller FAULT_TOTAL (a slow emulator) is still cut mid-stream.
      outageAt: Math.round((total * 0.3) / 100) * 100,
    });
    const figures = {
      broker: options.broker,
      fault: "connection-cut",
      messages: total,
      handled: handled.calls,
      distinct: handled.ids.size,
      lost: total - handled.ids.size,
      duplicates: handled.calls - handled.ids.size,
      outageMs: stream.outage.to && stream.outage.to - stream.outage.from,
      recoveryMs: stream.recoveryMs,
      publishFailures: stream.publishFailures,
      proxyResets: proxy.resets,
      proxyConnections: proxy.connections,
      handlerErrors: options.errors.length,
      ...(options.ordered ? { outOfOrder: handled.outOfOrder } : {}),
      ...options.figures?.(),
      runtimeMs: Date.now() - started,
    };
    console.log(`FAULT ${JSON.stringify(figures)}`);
    expect(stream.outage.to).toBeDefined();
    expect(proxy.resets).toBeGreaterThan(0); // the cut really broke live connections
    expect(proxy.connections).toBeGreaterThan(1); // …and the clients came back over new ones
    expect(handled.ids.size).toBe(total);
    if (options.ordered) {
      expect(handled.keys).toBeGreaterThan(1);
      expect(handled.outOfOrder).toBe(0);
    }
    await closeWithin(60_000, [producer, consumer]);
  } finally {
    await closeWithin(60_000, [producer, consumer]).catch(() => {});
    await proxy.close();
  }
}
