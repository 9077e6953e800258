// Shared pieces of the fault tests (adapters/*/fault/*.fault.ts): drive the broker stack from a
// test, tell whether a broker really restarted, and count what a stream delivered.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

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
  #waiters: Array<() => void> = [];

  add(n: number): void {
    this.calls++;
    this.ids.add(n);
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
