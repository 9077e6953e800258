import type { Bus } from "./bus.js";
import { type DeadLetter, REDRIVE_TO, readDeadLetter } from "./dead-letter.js";
import type { WireMessage } from "./envelope.js";
import { SwitchyardError } from "./errors.js";
import { type Delivery, deadLetterQueueName, type Source } from "./transport.js";

export interface BrowseOptions {
  /** Most letters to read. Default 100. */
  limit?: number;
  /** Stop once no letter arrived for this long. Default 500 ms. */
  idleMs?: number;
}

/**
 * The dead letters of one subscription or queue. Works on every transport through its plain
 * subscribe/publish: browsing reads letters and returns them unsettled (nack), redriving
 * republishes them to where they failed and acks them. Letters are read from the queue
 * `deadLetterQueueName(source)`, or where `transport.deadLetterSource(source)` says the broker
 * keeps them.
 */
export class DeadLetterQueue {
  readonly name: string;

  constructor(
    readonly bus: Bus,
    readonly source: Source,
  ) {
    this.name = deadLetterQueueName(source);
  }

  /** Where the letters are read: the broker's own place for them when it has one, else `name`. */
  async location(): Promise<string> {
    const transport = await this.bus.transport();
    return transport.deadLetterSource?.(this.source)?.name ?? this.name;
  }

  /** Reads up to `limit` letters without removing them. */
  async list(options: BrowseOptions = {}): Promise<DeadLetter[]> {
    const letters: DeadLetter[] = [];
    await this.#drain(options, (letter) => {
      letters.push(letter);
      return "keep";
    });
    return letters;
  }

  /**
   * Sends letters back to the destination they failed on (only to the failing subscription of a
   * topic) and removes them from the DLQ. `ids` limits it to some letters. Returns the count.
   */
  async redrive(options: BrowseOptions & { ids?: readonly string[] } = {}): Promise<number> {
    const wanted = options.ids ? new Set(options.ids) : undefined;
    const transport = await this.bus.transport();
    let count = 0;
    await this.#drain(options, async (letter) => {
      if (wanted && !wanted.has(letter.id)) return "keep";
      const destination = letter.destination ?? { kind: this.source.kind, name: this.source.name };
      const headers = { ...letter.message.headers };
      if (destination.kind === "topic") headers[REDRIVE_TO] = letter.subscription ?? this.source.subscription;
      const wire: WireMessage = { ...letter.message, headers };
      await transport.publish(destination, [wire]);
      count++;
      return "remove";
    });
    return count;
  }

  /**
   * How many letters wait here, counted by browsing (every letter is read and released, none
   * removed), up to `limit` (default 10,000): a number ≥ `limit` means "at least".
   */
  async depth(options: BrowseOptions = {}): Promise<number> {
    let count = 0;
    await this.#drain({ limit: 10_000, idleMs: 300, ...options }, () => {
      count++;
      return "keep";
    });
    return count;
  }

  /** Removes letters for good. `ids` limits it to some letters. Returns the count. */
  async purge(options: BrowseOptions & { ids?: readonly string[] } = {}): Promise<number> {
    const wanted = options.ids ? new Set(options.ids) : undefined;
    let count = 0;
    await this.#drain(options, (letter) => {
      if (wanted && !wanted.has(letter.id)) return "keep";
      count++;
      return "remove";
    });
    return count;
  }

  async #drain(
    options: BrowseOptions,
    visit: (letter: DeadLetter) => "keep" | "remove" | Promise<"keep" | "remove">,
  ): Promise<void> {
    const limit = options.limit ?? 100;
    const idleMs = options.idleMs ?? 500;
    if (!Number.isInteger(limit) || limit < 1)
      throw new SwitchyardError("CONFIG_INVALID", "limit must be ≥ 1");
    if (typeof idleMs !== "number" || !(idleMs >= 0 && idleMs < 2 ** 31))
      throw new SwitchyardError("CONFIG_INVALID", `idleMs must be from 0 to 2^31-1, got ${idleMs}`);
    const transport = await this.bus.transport();
    // A broker's own dead-letter sub-queue exists with its entity; the core's DLQ queue is created.
    const native = transport.deadLetterSource?.(this.source);
    if (!native) await this.bus.ensure([{ kind: "queue", name: this.name }]);

    const held: Delivery[] = [];
    const seen = new Set<string>();
    let stopped = false;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(finish, idleMs);
    };

    const subscription = await transport.subscribe(
      native ?? { kind: "queue", name: this.name, subscription: this.name },
      { prefetch: limit },
      (delivery) => {
        // A letter seen twice means the broker handed back one we released: we have them all.
        if (stopped || seen.has(delivery.message.id)) {
          void delivery.nack().catch(() => {});
          if (!stopped) finish();
          return;
        }
        seen.add(delivery.message.id);
        held.push(delivery);
        if (held.length >= limit) finish();
        else armIdle();
      },
    );
    armIdle();
    await finished;
    stopped = true;
    clearTimeout(idle);
    await subscription.stop?.();
    let failure: unknown;
    for (const delivery of held) {
      // After a failure the rest are released untouched, so nothing is lost or half-done.
      const verdict = failure === undefined ? await visitSafely(delivery) : "keep";
      if (verdict === "remove") await delivery.ack();
      else await delivery.nack();
    }
    await subscription.close();
    if (failure !== undefined) throw failure;

    async function visitSafely(delivery: Delivery): Promise<"keep" | "remove"> {
      try {
        return await visit(readDeadLetter(delivery.message, delivery.attempt));
      } catch (error) {
        failure = error;
        return "keep";
      }
    }
  }
}
