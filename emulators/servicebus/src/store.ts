import { randomBytes } from "node:crypto";

/** Per-entity settings, named as in Service Bus. Durations in milliseconds. */
export interface EntityOptions {
  /** How long a peek-lock holds a message. Default 60 s (Service Bus: 1 min). */
  lockDurationMs?: number;
  /** Deliveries before a message moves to the dead-letter sub-queue. Default 10. */
  maxDeliveryCount?: number;
  /** Time to live of a message without its own. Default: unlimited. */
  defaultMessageTimeToLiveMs?: number;
  /** Expired messages go to the dead-letter sub-queue instead of vanishing. Default false. */
  deadLetteringOnMessageExpiration?: boolean;
  /** Largest encoded message accepted. Default 256 KiB (the Standard tier). */
  maxMessageSizeBytes?: number;
  /** Sessions are not emulated: declaring an entity with it is refused. */
  requiresSession?: boolean;
}

export interface ResolvedEntityOptions {
  lockDurationMs: number;
  maxDeliveryCount: number;
  defaultMessageTimeToLiveMs: number | undefined;
  deadLetteringOnMessageExpiration: boolean;
  maxMessageSizeBytes: number;
}

export const STANDARD_MAX_MESSAGE_BYTES = 256 * 1024;

export function resolveEntityOptions(options: EntityOptions = {}): ResolvedEntityOptions {
  if (options.requiresSession) {
    throw new EmulatorError(
      "amqp:not-implemented",
      "sessions (requiresSession) are not supported by the Switchyard Service Bus emulator",
    );
  }
  const positive = (name: string, value: number | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    if (!Number.isFinite(value) || value <= 0)
      throw new EmulatorError("amqp:invalid-field", `${name} must be > 0`);
    return value;
  };
  return {
    lockDurationMs: positive("lockDurationMs", options.lockDurationMs, 60_000),
    maxDeliveryCount: positive("maxDeliveryCount", options.maxDeliveryCount, 10),
    defaultMessageTimeToLiveMs:
      options.defaultMessageTimeToLiveMs === undefined
        ? undefined
        : positive("defaultMessageTimeToLiveMs", options.defaultMessageTimeToLiveMs, 0),
    deadLetteringOnMessageExpiration: options.deadLetteringOnMessageExpiration ?? false,
    maxMessageSizeBytes: positive(
      "maxMessageSizeBytes",
      options.maxMessageSizeBytes,
      STANDARD_MAX_MESSAGE_BYTES,
    ),
  };
}

/** An error the emulator answers with, as an AMQP error condition and description. */
export class EmulatorError extends Error {
  constructor(
    readonly condition: string,
    description: string,
    readonly status = 500,
  ) {
    super(description);
  }
}

/** A stored message: the decoded AMQP message (rhea's shape) plus the broker's bookkeeping. */
export interface Entry {
  seq: number;
  message: Record<string, any>;
  enqueuedAt: number;
  /** Deliveries that did not end in a settlement (AMQP header `delivery-count`). */
  deliveryCount: number;
  state: "active" | "deferred";
  expiresAt: number | undefined;
  lock: Lock | undefined;
}

export interface Lock {
  /** Hex of the 16 bytes the client sends back as its lock token (the delivery tag reordered). */
  token: string;
  until: number;
  timer: NodeJS.Timeout;
  /** The receiver that holds it; undefined for a lock taken through `$management`. */
  owner: unknown;
}

/** .NET GUID byte order ⇄ RFC 4122 order: the client reads the delivery tag this way. */
export function reorderGuid(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  out[0] = bytes[3]!;
  out[1] = bytes[2]!;
  out[2] = bytes[1]!;
  out[3] = bytes[0]!;
  out[4] = bytes[5]!;
  out[5] = bytes[4]!;
  out[6] = bytes[7]!;
  out[7] = bytes[6]!;
  return out;
}

export interface Consumer {
  /** How many more messages it can take now. */
  credit(): number;
  /** Hands over a message; `lockToken` is set in peek-lock mode. */
  take(entry: Entry, tag: Buffer): void;
  readonly peekLock: boolean;
}

/**
 * One message store: a queue, a topic subscription, or a dead-letter sub-queue. Keeps Service Bus
 * semantics: peek-lock with lock expiry, delivery counts, max delivery count → dead letter, TTL,
 * deferral.
 */
export class MessageStore {
  readonly entries = new Map<number, Entry>();
  readonly locks = new Map<string, Entry>();
  readonly consumers: Consumer[] = [];
  #nextConsumer = 0;
  #pumping = false;
  #pumpAgain = false;

  constructor(
    /** Display path, e.g. `orders` or `events/Subscriptions/audit/$DeadLetterQueue`. */
    readonly path: string,
    readonly options: ResolvedEntityOptions,
    readonly sequence: { next: number },
    readonly deadLetterQueue: MessageStore | undefined,
  ) {}

  get activeCount(): number {
    let n = 0;
    for (const entry of this.entries.values()) if (entry.state === "active") n++;
    return n;
  }

  nextSeq(): number {
    return ++this.sequence.next;
  }

  /** Stores a message (its `seq` assigned already when it was scheduled). */
  enqueue(message: Record<string, any>, seq = this.nextSeq()): Entry {
    const now = Date.now();
    const ttl =
      typeof message.ttl === "number" && message.ttl > 0
        ? message.ttl
        : this.options.defaultMessageTimeToLiveMs;
    const entry: Entry = {
      seq,
      message,
      enqueuedAt: now,
      deliveryCount: 0,
      state: "active",
      expiresAt: ttl === undefined ? undefined : now + ttl,
      lock: undefined,
    };
    this.entries.set(seq, entry);
    this.pump();
    return entry;
  }

  addConsumer(consumer: Consumer): void {
    this.consumers.push(consumer);
    this.pump();
  }

  /** Removes a consumer; its locked messages go back at once (not counted as a delivery). */
  removeConsumer(consumer: Consumer): void {
    const index = this.consumers.indexOf(consumer);
    if (index !== -1) this.consumers.splice(index, 1);
    // After the frames already read (a settlement that came just before the detach) are applied.
    setImmediate(() => {
      for (const entry of [...this.locks.values()]) {
        if (entry.lock?.owner === consumer) this.#unlock(entry);
      }
      this.pump();
    });
  }

  /** Delivers available messages to consumers with credit, round-robin, in sequence order. */
  pump(): void {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#pumpAgain = false;
        this.#pumpOnce();
      } while (this.#pumpAgain);
    } finally {
      this.#pumping = false;
    }
  }

  #pumpOnce(): void {
    if (this.consumers.length === 0) return;
    const now = Date.now();
    for (const entry of [...this.entries.values()]) {
      if (entry.state !== "active" || entry.lock) continue;
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
        this.#expire(entry);
        continue;
      }
      const consumer = this.#pickConsumer();
      if (!consumer) return;
      const tag = randomBytes(16);
      if (consumer.peekLock) this.lock(entry, reorderGuid(tag).toString("hex"), consumer);
      else this.entries.delete(entry.seq);
      consumer.take(entry, tag);
    }
  }

  #pickConsumer(): Consumer | undefined {
    const n = this.consumers.length;
    for (let i = 0; i < n; i++) {
      const consumer = this.consumers[(this.#nextConsumer + i) % n]!;
      if (consumer.credit() > 0) {
        this.#nextConsumer = (this.#nextConsumer + i + 1) % n;
        return consumer;
      }
    }
    return undefined;
  }

  lock(entry: Entry, token: string, owner: unknown): void {
    const until = Date.now() + this.options.lockDurationMs;
    const timer = setTimeout(() => this.#lockExpired(entry, token), this.options.lockDurationMs);
    timer.unref();
    entry.lock = { token, until, timer, owner };
    this.locks.set(token, entry);
  }

  /** The entry locked under `token`, or a `MessageLockLost` error. */
  locked(token: string): Entry {
    const entry = this.locks.get(token);
    if (!entry || entry.lock?.token !== token || entry.lock.until < Date.now()) {
      throw new EmulatorError(
        "com.microsoft:message-lock-lost",
        `The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue (${this.path}).`,
        410,
      );
    }
    return entry;
  }

  renewLock(token: string): number {
    const entry = this.locked(token);
    const lock = entry.lock!;
    clearTimeout(lock.timer);
    lock.until = Date.now() + this.options.lockDurationMs;
    lock.timer = setTimeout(() => this.#lockExpired(entry, token), this.options.lockDurationMs);
    lock.timer.unref();
    return lock.until;
  }

  complete(token: string): void {
    const entry = this.locked(token);
    this.#unlock(entry);
    this.entries.delete(entry.seq);
    this.pump();
  }

  abandon(token: string, properties?: Record<string, unknown>): void {
    const entry = this.locked(token);
    this.#modify(entry, properties);
    this.#unlock(entry);
    this.#counted(entry);
    this.pump();
  }

  defer(token: string, properties?: Record<string, unknown>): void {
    const entry = this.locked(token);
    this.#modify(entry, properties);
    this.#unlock(entry);
    entry.state = "deferred";
    this.pump();
  }

  deadLetter(
    token: string,
    reason?: string,
    description?: string,
    properties?: Record<string, unknown>,
  ): void {
    const entry = this.locked(token);
    this.#unlock(entry);
    this.moveToDeadLetter(entry, reason, description, properties);
    this.pump();
  }

  moveToDeadLetter(
    entry: Entry,
    reason: string | undefined,
    description: string | undefined,
    properties?: Record<string, unknown>,
  ): void {
    this.entries.delete(entry.seq);
    if (!this.deadLetterQueue) return; // dead-lettering from a DLQ is not possible: dropped, as in Service Bus' absence of a DLQ of a DLQ
    const applicationProperties: Record<string, unknown> = {
      ...(entry.message.application_properties ?? {}),
      ...(properties ?? {}),
    };
    if (reason !== undefined) applicationProperties.DeadLetterReason = reason;
    if (description !== undefined) applicationProperties.DeadLetterErrorDescription = description;
    const message = {
      ...entry.message,
      application_properties: applicationProperties,
      message_annotations: {
        ...(entry.message.message_annotations ?? {}),
        "x-opt-deadletter-source": this.path,
      },
    };
    const dead = this.deadLetterQueue.enqueue(message);
    dead.deliveryCount = entry.deliveryCount;
  }

  /** Messages from `fromSeq` on, active or deferred, for `peek`. */
  peek(fromSeq: number, count: number): Entry[] {
    const out: Entry[] = [];
    const now = Date.now();
    for (const entry of [...this.entries.values()].sort((a, b) => a.seq - b.seq)) {
      if (entry.seq < fromSeq) continue;
      if (entry.expiresAt !== undefined && entry.expiresAt <= now && !entry.lock) {
        this.#expire(entry);
        continue;
      }
      out.push(entry);
      if (out.length >= count) break;
    }
    return out;
  }

  close(): void {
    for (const entry of this.locks.values()) if (entry.lock) clearTimeout(entry.lock.timer);
    this.locks.clear();
  }

  #modify(entry: Entry, properties?: Record<string, unknown>): void {
    if (properties && Object.keys(properties).length > 0) {
      entry.message = {
        ...entry.message,
        application_properties: { ...(entry.message.application_properties ?? {}), ...properties },
      };
    }
  }

  #unlock(entry: Entry): void {
    if (!entry.lock) return;
    clearTimeout(entry.lock.timer);
    this.locks.delete(entry.lock.token);
    entry.lock = undefined;
  }

  /** A delivery that did not end in a settlement: count it, and dead-letter past the maximum. */
  #counted(entry: Entry): void {
    entry.deliveryCount++;
    if (entry.deliveryCount >= this.options.maxDeliveryCount && this.deadLetterQueue) {
      this.moveToDeadLetter(
        entry,
        "MaxDeliveryCountExceeded",
        `Message could not be consumed after ${this.options.maxDeliveryCount} delivery attempts.`,
      );
    }
  }

  #lockExpired(entry: Entry, token: string): void {
    if (entry.lock?.token !== token) return;
    this.#unlock(entry);
    this.#counted(entry);
    this.pump();
  }

  #expire(entry: Entry): void {
    if (this.options.deadLetteringOnMessageExpiration && this.deadLetterQueue) {
      this.moveToDeadLetter(entry, "TTLExpiredException", "The message expired and was dead lettered.");
    } else {
      this.entries.delete(entry.seq);
    }
  }
}
