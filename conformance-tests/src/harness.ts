import { randomUUID } from "node:crypto";
import {
  type Bus,
  type BusHooks,
  type Capabilities,
  createBus,
  type Logger,
  resolveCapabilities,
  type Transport,
} from "@switchyard/core";

/** What the suite needs to know about an adapter. */
export interface ConformanceTarget {
  /** Shown in test names, e.g. `kafka (platformatic)`. */
  name: string;
  /**
   * Returns a new transport connected to the broker under test. Called once per bus; buses in one
   * case must reach the same broker, so competing consumers really compete.
   */
  createTransport(): Transport | Promise<Transport>;
  /** Multiplies every wait, for slow emulators. Default 1. */
  timeScale?: number;
  /**
   * Called once after the suite, e.g. to delete what it created. `names` are every name the cases
   * made with `t.name()`: the queues, topics and subscriptions the adapter provisioned start with
   * one of them (a broker keeping them all, like Kafka, can delete them here).
   */
  teardown?(created: { names: string[] }): Promise<void>;
}

/** One behaviour of the contract. `applies` returns a reason to skip, or undefined to run. */
export interface ConformanceCase {
  name: string;
  applies?(capabilities: Capabilities): string | undefined;
  run(context: CaseContext): Promise<void>;
}

/** Records deliveries and lets a case wait for them without sleeping. */
export class Recorder<T> {
  readonly items: T[] = [];
  readonly #waiters = new Set<() => void>();

  push(item: T): void {
    this.items.push(item);
    for (const waiter of [...this.#waiters]) waiter();
  }

  get length(): number {
    return this.items.length;
  }

  /** Resolves once `predicate(items)` holds; rejects after `timeoutMs` with `what` and the count. */
  until(predicate: (items: T[]) => boolean, timeoutMs: number, what: string): Promise<T[]> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate(this.items)) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve(this.items);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (have ${this.items.length})`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  count(n: number, timeoutMs: number, what = `${n} messages`): Promise<T[]> {
    return this.until((items) => items.length >= n, timeoutMs, what);
  }
}

export class CaseContext {
  readonly #buses: Bus[] = [];
  readonly runId = randomUUID().slice(0, 8);

  constructor(
    readonly target: ConformanceTarget,
    readonly capabilities: Capabilities,
    /** Where the names this case makes are collected, for the target's teardown. */
    readonly names: Set<string> = new Set(),
  ) {}

  /** A unique, broker-safe name for this case (letters, digits, dashes). */
  name(label: string): string {
    const name = `sy-${label}-${this.runId}`;
    this.names.add(name);
    return name;
  }

  /** Milliseconds scaled for the target. */
  ms(base: number): number {
    return Math.round(base * (this.target.timeScale ?? 1));
  }

  /** A bus on a fresh transport of the target; closed when the case ends. */
  async bus(
    options: { hooks?: BusHooks; source?: string; logger?: Logger; replyQueue?: string } = {},
  ): Promise<Bus> {
    const transport = await this.target.createTransport();
    const bus = createBus({
      transport,
      source: options.source ?? "conformance",
      ...(options.hooks ? { hooks: options.hooks } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.replyQueue ? { replyQueue: options.replyQueue } : {}),
    });
    this.#buses.push(bus);
    return bus;
  }

  async dispose(): Promise<void> {
    await Promise.allSettled(this.#buses.map((bus) => bus.close()));
  }
}

export async function targetCapabilities(target: ConformanceTarget): Promise<Capabilities> {
  const transport = await target.createTransport();
  try {
    return resolveCapabilities(transport.capabilities);
  } finally {
    await transport.close();
  }
}

/** Runs one case against a target, with its own buses; throws what the case throws. */
export async function runCase(target: ConformanceTarget, testCase: ConformanceCase): Promise<void> {
  const capabilities = await targetCapabilities(target);
  const context = new CaseContext(target, capabilities);
  try {
    await testCase.run(context);
  } finally {
    await context.dispose();
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`conformance: ${message}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
