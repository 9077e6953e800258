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
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (have ${this.ids.size})`));
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
