// Shared pieces of the fault tests (adapters/*/fault/*.fault.ts): drive the broker stack from a
// test, tell whether a broker really restarted, and count what a stream delivered.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
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

/**
 * For a connection cut on an adapter that retries its acks and nacks (SQS, SNS): the consumer bus's
 * errors with their causes, the numbers handled again on a redelivery, and the messages in publishes
 * that failed and were sent again. `check()` then asserts that no ack or nack was lost to the cut, so
 * that the only duplicates are re-sent copies (at-least-once publishing).
 */
export class SettlementAudit {
  /** The consumer bus's onError events, with their causes (a failed ack says why its delete failed). */
  readonly errors: string[] = [];
  /**
   * Numbers handled again on a redelivery (attempt > 1), not as a re-sent copy, with the ms since
   * their first handling: which ones, and how late, says why.
   */
  readonly redelivered: [number, number][] = [];
  /** Messages in publishes that failed and were sent again: each may have been stored twice. */
  resent = 0;
  readonly #firstHandledAt = new Map<number, number>();

  /** The consumer bus's `onError` hook. */
  readonly onError = ({ error }: { error: unknown }): void => {
    this.errors.push(`${error}${error instanceof Error && error.cause ? ` (${error.cause})` : ""}`);
  };

  /** One handling of number `n` at delivery `attempt`, recorded in `handled` too. */
  handle(handled: Handled, n: number, attempt: number): void {
    const first = this.#firstHandledAt.get(n);
    if (first === undefined) this.#firstHandledAt.set(n, Date.now());
    else if (attempt > 1) this.redelivered.push([n, Date.now() - first]);
    handled.add(n);
  }

  /** A publish of `count` messages: counted as re-sent if it fails (the case sends it again). */
  sent(count: number, publishing: Promise<unknown>): Promise<void> {
    return publishing.then(
      () => {},
      (error: unknown) => {
        this.resent += count;
        throw error;
      },
    );
  }

  /**
   * Acks and nacks that failed: each leaves a handled message to come back after its visibility
   * timeout, often after the test has ended, which duplicates alone would miss.
   */
  failedSettlements(): string[] {
    return this.errors.filter((e) => /\b(?:ack|nack) of message/.test(e));
  }

  /** Figures for the FAULT line. */
  readonly figures = (): Record<string, unknown> => ({
    failedSettlements: this.failedSettlements().length,
    redelivered: this.redelivered,
  });

  check(handled: Handled): void {
    expect(this.failedSettlements().slice(0, 5)).toEqual([]);
    expect(handled.calls - handled.ids.size).toBeLessThanOrEqual(this.resent);
  }
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

const KILL_CHILD = fileURLToPath(new URL("./kill-child.mjs", import.meta.url));

/** Where a kill case's messages go: a queue, or a topic read through one subscription. */
export type KillTarget =
  | { kind: "queue"; name: string }
  | { kind: "topic"; name: string; subscription: string };

/** One process of a kill case (kill-child.mjs), and what it reported. */
class FaultChild {
  readonly process: ChildProcess;
  /** The transport's ordering capability, once the process is connected (a consumer: receiving). */
  readonly ready: Promise<string>;
  /** After its exit and the end of its output: every line it wrote has been read. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readyAt: number | undefined;
  killedAt: number | undefined;
  /** Its last lines, for a failure's message. */
  lastLines: string[] = [];

  constructor(
    role: "producer" | "consumer",
    cwd: string,
    env: Record<string, string>,
    onLine: (line: string[]) => void,
  ) {
    this.process = spawn(process.execPath, [KILL_CHILD, role], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "inherit"],
    });
    const child = this.process;
    this.exited = new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the ${role} process was not ready within 30 s`)),
        30_000,
      );
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the ${role} process ended before it was ready (${code ?? signal})`));
      });
      createInterface({ input: child.stdout! }).on("line", (line) => {
        const words = line.split(" ");
        this.lastLines = [...this.lastLines.slice(-4), line];
        if (words[0] === "ready") {
          clearTimeout(timer);
          this.readyAt = Date.now();
          resolve(words[1]!);
        } else onLine(words);
      });
    });
    this.ready.catch(() => {}); // awaited by the case; a child killed before it is ready is not an error here
  }

  /** Writes a command line to the process (the producer's `publish FROM TO`). */
  tell(line: string): void {
    this.process.stdin!.write(`${line}\n`);
  }

  kill(): void {
    this.killedAt = Date.now();
    this.process.kill("SIGKILL");
  }

  /** SIGTERM, and the exit code once it closed its bus (0) — bounded, like closeWithin. */
  async stop(timeoutMs = 60_000): Promise<number | null> {
    this.process.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`a fault child did not close within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return (await Promise.race([this.exited, hung])).code;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** What a process-kill case needs from the adapter's test: where the children connect, and what to. */
export interface KillCaseOptions {
  /** The broker's name in the FAULT line, e.g. `rabbitmq`, `kafka (platformatic)`. */
  broker: string;
  /** The fault test's folder, e.g. `adapters/kafka/fault`; the children run in the adapter's folder. */
  adapter: string;
  /** The process SIGKILLed mid-stream: the consumer (while it holds messages) or the producer (mid-batch). */
  kill: "consumer" | "producer";
  /** The bus URL of both children (the adapter is found by its scheme), or one for each role. */
  url: string | { producer: string; consumer: string };
  /** `createBus({ adapterOptions })` of both children (JSON): e.g. Kafka's short session timeout. */
  adapterOptions?: object;
  target: KillTarget;
  total?: number;
  batch?: number;
  /** The consumer is killed once this many are handled; the producer in the first batch from here. */
  killAt?: number;
  /** Distinct message keys (`kN%keys`), for the per-key order check. */
  keys?: number;
  concurrency?: number;
  /** How long each handler takes, so a consumer holds messages when it dies. */
  handlerMs?: number;
  /**
   * Where the broker itself hands later messages of a key to the new consumer while earlier ones are
   * still out on the killed process's stream (the Pub/Sub emulator, adapters/gcp-pubsub/README.md):
   * why, for the FAULT line. Those earlier messages come back later, each delivered more times than
   * the successors that overtook it; such an order break is then counted (`brokerOrderBreaks`)
   * instead of failing. Every other break still fails: a message first handled after a later one of
   * its key that was delivered as many times or more (the adapter or the core reordered them; a first
   * delivery, attempt 1, can never be overtaken).
   */
  brokerOrderBreaks?: string;
  /** Longest wait, after the restart, for every message to be handled. */
  timeoutMs?: number;
}

/** The figures of the FAULT line, for the adapter's own checks after the case. */
export type KillCaseFigures = Record<string, unknown> & { handled: number; duplicates: number; lost: number };

/**
 * The process-kill fault case, the same on every adapter: a producer and a consumer process
 * (kill-child.mjs, the built packages) stream `total` numbered, keyed messages through `target`;
 * one of them is SIGKILLed mid-stream and a new one started in its place (the broker keeps running):
 *
 * - `kill: "consumer"`: once `killAt` are handled, at the moment a handler starts (so it dies holding
 *   messages). Every message must be handled at least once across both consumers, each one the
 *   killed process held included; duplicates are counted.
 * - `kill: "producer"`: in the first batch from `killAt`, about half a batch's publish time after it
 *   started. Every message it reported published (its publish resolved) must be delivered, nothing may
 *   arrive that is not a whole message of the stream (no decode failure, no torn body); those it had
 *   sent but not seen acknowledged and that arrived anyway are counted. The new producer sends again
 *   from the first unacknowledged message, as an application would, so all `total` must arrive.
 *
 * Where the transport claims ordering, the first handling of each message keeps per-key order across
 * both processes. Prints the FAULT line (outage: kill → new process ready; recovery: ready → the first
 * message handled by the new consumer, or the first one the new producer sent handled, which includes
 * any backlog ahead of it), checks, ends the children (SIGTERM, each must close cleanly), and returns
 * the figures.
 */
export async function processKillCase(options: KillCaseOptions): Promise<KillCaseFigures> {
  const { total = 10_000, batch = 100, killAt = 3_000, keys = 16, timeoutMs = 120_000 } = options;
  const started = Date.now();
  const cwd = join(ROOT, options.adapter, "..");
  const run = randomUUID().slice(0, 8);
  const env = (role: "producer" | "consumer", generation: number): Record<string, string> => ({
    FAULT_URL: typeof options.url === "string" ? options.url : options.url[role],
    FAULT_ADAPTER_OPTIONS: JSON.stringify(options.adapterOptions ?? {}),
    FAULT_TARGET: JSON.stringify(options.target),
    FAULT_RUN: run,
    FAULT_KEYS: String(keys),
    FAULT_BATCH: String(batch),
    FAULT_CONCURRENCY: String(options.concurrency ?? 32),
    FAULT_HANDLER_MS: String(options.handlerMs ?? 5),
    FAULT_GENERATION: String(generation),
  });
  const handled = new Handled();
  const anomalies: string[] = [];
  /** Per key, the highest number first handled so far; a lower one first handled later breaks order. */
  const highestByKey = new Map<number, number>();
  const orderBreaks: string[] = [];
  /** Per key and delivery attempt, the highest number first handled at that attempt. */
  const highestByKeyAttempt = new Map<number, Map<number, number>>();
  /** Breaks the broker's redelivery explains (see `brokerOrderBreaks`), and the others. */
  let brokerOrderBreaks = 0;
  const otherOrderBreaks: string[] = [];
  const children: FaultChild[] = [];

  /** A consumer process: feeds `handled`, counts what it started and finished. */
  const startConsumer = (generation: number) => {
    const stats = {
      received: new Set<number>(),
      handled: new Set<number>(),
      firstHandledAt: 0,
      calls: 0,
      holding: false,
    };
    const child = new FaultChild("consumer", cwd, env("consumer", generation), (words) => {
      const [what, value, producer, attempt] = words;
      const n = Number(value);
      if (what === "r") {
        stats.received.add(n);
        if (stats.holding) onHeld?.(child);
      } else if (what === "holding") stats.holding = true;
      else if (what === "h") {
        if (!handled.ids.has(n)) {
          const highest = highestByKey.get(n % keys) ?? -1;
          const byAttempt = highestByKeyAttempt.get(n % keys) ?? new Map<number, number>();
          highestByKeyAttempt.set(n % keys, byAttempt);
          if (n < highest) {
            const line = `${n} after ${highest} (attempt ${attempt})`;
            orderBreaks.push(line);
            // Overtaken only by messages delivered fewer times than n: the broker's break.
            const overtakers = [...byAttempt].filter(([a, m]) => a >= Number(attempt) && m > n);
            if (overtakers.length === 0) brokerOrderBreaks++;
            else otherOrderBreaks.push(line);
          }
          highestByKey.set(n % keys, Math.max(n, highest));
          byAttempt.set(Number(attempt), Math.max(n, byAttempt.get(Number(attempt)) ?? -1));
        }
        stats.calls++;
        stats.handled.add(n);
        stats.firstHandledAt ||= Date.now();
        if (producer === "2") firstHandledOfGeneration2 ||= Date.now();
        if (producer === "1") handledByFirstProducer.add(n);
        handled.add(n);
        onHandled?.(child);
      } else anomalies.push([what, value, producer].join(" "));
    });
    children.push(child);
    return { child, stats };
  };
  /** Numbers handled as sent by the first producer (a copy sent again by the second counts there). */
  const handledByFirstProducer = new Set<number>();
  let firstHandledOfGeneration2 = 0;
  let onHandled: ((child: FaultChild) => void) | undefined;
  let onHeld: ((child: FaultChild) => void) | undefined;

  /** A producer process: which numbers it started sending and which it saw acknowledged. */
  const startProducer = (generation: number) => {
    const stats = {
      sent: new Set<number>(),
      acked: new Set<number>(),
      failures: 0,
      batchMs: [] as number[],
      firstAckAt: 0,
    };
    let batchStartedAt = 0;
    const child = new FaultChild("producer", cwd, env("producer", generation), ([what, a, b]) => {
      const numbers = Array.from({ length: Number(b) - Number(a) }, (_, i) => Number(a) + i);
      if (what === "s") {
        batchStartedAt = Date.now();
        for (const n of numbers) stats.sent.add(n);
        onBatchStart?.(child, Number(a));
      } else if (what === "p") {
        stats.firstAckAt ||= Date.now();
        stats.batchMs.push(Date.now() - batchStartedAt);
        for (const n of numbers) stats.acked.add(n);
      } else if (what === "f") stats.failures++;
      else if (what === "done") producerDone?.();
    });
    children.push(child);
    return { child, stats };
  };
  let onBatchStart: ((child: FaultChild, from: number) => void) | undefined;
  let producerDone: (() => void) | undefined;
  /** When the last message was published: with the start, tells a slow broker from a slow consumer. */
  let publishedAt = 0;
  const allPublished = new Promise<void>((resolve) => {
    producerDone = () => {
      publishedAt = Date.now();
      resolve();
    };
  });

  try {
    const consumer1 = startConsumer(1);
    const ordering = await consumer1.child.ready;
    const producer1 = startProducer(1);
    await producer1.child.ready;
    console.warn(
      `\n!!! FAULT TEST: (${options.adapter}) SIGKILL of the ${options.kill} process mid-stream, then a new one; the broker keeps running\n`,
    );
    const publishFrom = Date.now();
    let killed: FaultChild;
    let restarted: FaultChild;
    const figures: Record<string, unknown> = {};
    /** The checks of the killed side, run once the FAULT line is out. */
    let checks: () => void;
    /** Why not every message was handled in time: the FAULT line still goes out, with what was lost. */
    let incomplete: unknown;
    if (options.kill === "consumer") {
      const killedNow = new Promise<void>((resolve) => {
        // Once `killAt` are handled its handlers stop finishing (`hold`), and it is killed as soon as
        // one more starts: the process dies holding messages.
        onHandled = (child) => {
          if (child !== consumer1.child || handled.ids.size < killAt) return;
          onHandled = undefined;
          child.tell("hold");
        };
        onHeld = (child) => {
          if (child !== consumer1.child || child.killedAt !== undefined) return;
          child.kill();
          resolve();
        };
      });
      producer1.child.tell(`publish 0 ${total}`);
      await withTimeout(killedNow, 120_000, `the consumer was not killed after ${killAt} handled`);
      killed = consumer1.child;
      const { signal } = await killed.exited;
      expect(signal).toBe("SIGKILL");
      // What the killed process had started on but not finished: held, unsettled.
      const heldAtKill = [...consumer1.stats.received].filter((n) => !consumer1.stats.handled.has(n));
      const consumer2 = startConsumer(2);
      restarted = consumer2.child;
      await restarted.ready;
      await withTimeout(allPublished, timeoutMs, "the producer did not finish");
      incomplete = await handled
        .reach(total, timeoutMs, `all ${total} messages handled after the consumer was killed`)
        .then(
          () => sleep(1_000),
          (error: unknown) => error,
        ); // late redeliveries still count as duplicates
      Object.assign(figures, {
        heldAtKill: heldAtKill.length,
        handledByKilled: consumer1.stats.calls,
        handledByRestarted: consumer2.stats.calls,
        recoveryMs: consumer2.stats.firstHandledAt - restarted.readyAt!,
        publishFailures: producer1.stats.failures,
      });
      checks = () => {
        // The killed process really held messages, and each of them came back to the new one.
        expect(heldAtKill.length).toBeGreaterThan(0);
        expect(heldAtKill.filter((n) => !handled.ids.has(n))).toEqual([]);
        expect(consumer2.stats.calls).toBeGreaterThan(0);
      };
    } else {
      const killedNow = new Promise<void>((resolve) => {
        // Killed mid-batch: about half the mean publish time of the batches so far after it started;
        // if by then its last line says it is between batches, at the start of the next one.
        let scheduled = false;
        const killNow = (child: FaultChild) => {
          onBatchStart = undefined;
          child.kill();
          resolve();
        };
        onBatchStart = (child, from) => {
          if (child !== producer1.child || from < killAt || scheduled) return;
          scheduled = true;
          const { batchMs } = producer1.stats;
          const halfBatch = batchMs.reduce((sum, ms) => sum + ms, 0) / Math.max(1, batchMs.length) / 2;
          setTimeout(() => {
            if (child.lastLines.at(-1)?.startsWith("s ")) killNow(child);
            else onBatchStart = killNow;
          }, halfBatch);
        };
      });
      producer1.child.tell(`publish 0 ${total}`);
      await withTimeout(killedNow, 120_000, `the producer was not killed at message ${killAt}`);
      killed = producer1.child;
      const { signal } = await killed.exited;
      expect(signal).toBe("SIGKILL");
      const acked = producer1.stats.acked;
      const sentNotAcked = [...producer1.stats.sent].filter((n) => !acked.has(n));
      // The kill fell on a batch in flight.
      expect(sentNotAcked.length, `last lines: ${killed.lastLines.join(" | ")}`).toBeGreaterThan(0);
      const producer2 = startProducer(2);
      restarted = producer2.child;
      await restarted.ready;
      // As an application would: send again from the first message not acknowledged.
      const resendFrom = Math.min(...sentNotAcked);
      producer2.child.tell(`publish ${resendFrom} ${total}`);
      await withTimeout(allPublished, timeoutMs, "the new producer did not finish");
      incomplete = await handled
        .reach(total, timeoutMs, `all ${total} messages handled after the producer was killed`)
        .then(
          () => sleep(1_000),
          (error: unknown) => error,
        );
      Object.assign(figures, {
        ackedByKilled: acked.size,
        sentNotAcked: sentNotAcked.length,
        unackedArrived: sentNotAcked.filter((n) => handledByFirstProducer.has(n)).length,
        resentFrom: resendFrom,
        recoveryMs: firstHandledOfGeneration2 - restarted.readyAt!,
        firstAckMs: producer2.stats.firstAckAt - restarted.readyAt!,
        publishFailures: producer1.stats.failures + producer2.stats.failures,
        ackedLost: [...acked].filter((n) => !handled.ids.has(n)).length,
      });
      // 0 lost of what the killed producer saw acknowledged.
      checks = () => expect([...acked].filter((n) => !handled.ids.has(n))).toEqual([]);
    }
    Object.assign(figures, {
      broker: options.broker,
      fault: `${options.kill}-kill`,
      messages: total,
      handled: handled.calls,
      distinct: handled.ids.size,
      lost: total - handled.ids.size,
      duplicates: handled.calls - handled.ids.size,
      outageMs: restarted.readyAt! - killed.killedAt!,
      publishedInMs: publishedAt - publishFrom,
      ordering,
      orderBreaks: orderBreaks.length,
      ...(options.brokerOrderBreaks
        ? { brokerOrderBreaks, brokerOrderBreaksWhy: options.brokerOrderBreaks }
        : {}),
      anomalies: anomalies.length,
      runtimeMs: Date.now() - started,
    });
    console.log(`FAULT ${JSON.stringify(figures)}`);
    if (incomplete) throw incomplete;
    checks();
    expect(anomalies.slice(0, 10)).toEqual([]); // nothing that is not a whole message of the stream
    expect(handled.ids.size).toBe(total);
    if (ordering !== "none")
      expect((options.brokerOrderBreaks ? otherOrderBreaks : orderBreaks).slice(0, 10)).toEqual([]);
    // Both processes still running close their buses cleanly.
    for (const child of children)
      if (child.process.exitCode === null && child.process.signalCode === null) {
        expect(await child.stop()).toBe(0);
      }
    return figures as KillCaseFigures;
  } finally {
    for (const child of children)
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill("SIGKILL");
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}
