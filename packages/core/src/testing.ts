import { Bus, type BusOptions } from "./bus.js";
import type { BusHooks, Message } from "./consumer.js";
import type { DeadLetterReason } from "./dead-letter.js";
import type { Envelope } from "./envelope.js";
import { SwitchyardError } from "./errors.js";
import { MemoryBroker, MemoryTransport } from "./memory/index.js";
import type { MessageType } from "./schema.js";
import type { Destination, Source } from "./transport.js";

export interface RecordedPublish {
  destination: Destination;
  envelope: Envelope;
}
export interface RecordedDeadLetter {
  source: Source;
  envelope?: Envelope;
  reason: DeadLetterReason;
  error?: unknown;
}

type Matcher = MessageType<any> | string | ((envelope: Envelope) => boolean);

function matches(matcher: Matcher, envelope: Envelope | undefined): boolean {
  if (!envelope) return false;
  if (typeof matcher === "function") return matcher(envelope);
  return envelope.type === (typeof matcher === "string" ? matcher : matcher.type);
}

function describe(matcher: Matcher): string {
  return typeof matcher === "function"
    ? "a message matching the predicate"
    : `"${typeof matcher === "string" ? matcher : matcher.type}"`;
}

/**
 * A bus on a private in-memory broker that records what happens, for users' own tests:
 * `await harness.handled(BlogCreated)` waits for a handler to finish one, with a timeout that
 * fails with a list of what was seen instead.
 */
export class TestBus {
  readonly bus: Bus;
  readonly broker = new MemoryBroker();
  readonly published: RecordedPublish[] = [];
  readonly handledMessages: Message[] = [];
  readonly deadLettered: RecordedDeadLetter[] = [];
  readonly errors: unknown[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(options: Omit<BusOptions, "url" | "transport"> = {}) {
    const user = options.hooks ?? {};
    const hooks: BusHooks = {
      ...user,
      onPublish: (event) => {
        this.published.push(event);
        user.onPublish?.(event);
        this.#notify();
      },
      onHandled: (event) => {
        this.handledMessages.push(event.message);
        user.onHandled?.(event);
        this.#notify();
      },
      onDeadLetter: (event) => {
        this.deadLettered.push(event);
        user.onDeadLetter?.(event);
        this.#notify();
      },
      onError: (event) => {
        this.errors.push(event.error);
        user.onError?.(event);
      },
    };
    this.bus = new Bus({ ...options, transport: new MemoryTransport({ broker: this.broker }), hooks });
  }

  /** Waits until a handler has finished a message of this type (or one already has). */
  handled(matcher: Matcher, options: { timeoutMs?: number; count?: number } = {}): Promise<Message[]> {
    return this.#waitFor(
      () => this.handledMessages.filter((m) => matches(matcher, m)),
      options,
      `${describe(matcher)} to be handled`,
    );
  }

  /** Waits until a message of this type was dead-lettered. */
  deadLetteredOf(
    matcher: Matcher,
    options: { timeoutMs?: number; count?: number } = {},
  ): Promise<RecordedDeadLetter[]> {
    return this.#waitFor(
      () => this.deadLettered.filter((d) => matches(matcher, d.envelope)),
      options,
      `${describe(matcher)} to be dead-lettered`,
    );
  }

  publishedOf(matcher: Matcher): Envelope[] {
    return this.published.filter((p) => matches(matcher, p.envelope)).map((p) => p.envelope);
  }

  close(): Promise<void> {
    return this.bus.close();
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  #waitFor<T>(find: () => T[], options: { timeoutMs?: number; count?: number }, what: string): Promise<T[]> {
    const count = options.count ?? 1;
    const timeoutMs = options.timeoutMs ?? 2000;
    return new Promise<T[]>((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found.length < count) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve(found.slice(0, count));
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        const seen = this.handledMessages.map((m) => m.type).join(", ") || "nothing";
        reject(
          new SwitchyardError(
            "TIMEOUT",
            `timed out after ${timeoutMs} ms waiting for ${count} × ${what}; found ${find().length}. Handled so far: ${seen}; dead-lettered: ${this.deadLettered.length}`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }
}

export function createTestBus(options: Omit<BusOptions, "url" | "transport"> = {}): TestBus {
  return new TestBus(options);
}
