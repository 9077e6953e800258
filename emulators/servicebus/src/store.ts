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
  /**
   * Messages carry a session id (`sessionId`, AMQP `group-id`) and are received only through session
   * receivers: one receiver holds a session's lock and gets its messages in order. Default false.
   */
  requiresSession?: boolean;
}

export interface ResolvedEntityOptions {
  lockDurationMs: number;
  maxDeliveryCount: number;
  defaultMessageTimeToLiveMs: number | undefined;
  deadLetteringOnMessageExpiration: boolean;
  maxMessageSizeBytes: number;
  requiresSession: boolean;
}

export const STANDARD_MAX_MESSAGE_BYTES = 256 * 1024;

export function resolveEntityOptions(options: EntityOptions = {}): ResolvedEntityOptions {
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
    requiresSession: options.requiresSession === true,
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
  /** For a session's message: the session lock's expiry, shown as `x-opt-locked-until`. */
  shownUntil?: number;
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
  /** Set for a session receiver: the session whose lock it holds. */
  sessionId?: string;
}

/** A locked session: held by one session receiver until released or its lock lapses. */
export interface SessionLock {
  id: string;
  owner: Consumer;
  until: number;
  timer: NodeJS.Timeout;
  /** Called when the lock lapses (the server detaches the receiver with `session-lock-lost`). */
  lost: () => void;
}

interface SessionWaiter {
  owner: Consumer;
  /** Called with the session id locked for it. */
  granted: (lock: SessionLock) => void;
  lost: () => void;
}

/** The session id of a stored message (`group_id`); "" when absent. */
export function sessionOf(entry: Entry): string {
  const id = entry.message.group_id;
  return id === undefined || id === null ? "" : String(id);
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
  /** Sessions locked by a receiver (session entities only), by session id. */
  readonly sessions = new Map<string, SessionLock>();
  /** Session state set through `set-session-state`. */
  readonly sessionStates = new Map<string, Buffer>();
  /** Receivers that asked for the next available session and wait for one. */
  readonly #waiters: SessionWaiter[] = [];
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
      // A dead-letter sub-queue (the only store without one of its own) never expires its letters:
      // Service Bus keeps them until they are received, whatever their time to live.
      expiresAt: ttl === undefined || !this.deadLetterQueue ? undefined : now + ttl,
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
    this.cancelWait(consumer);
    // After the frames already read (a settlement that came just before the detach) are applied.
    setImmediate(() => {
      for (const entry of [...this.locks.values()]) {
        if (entry.lock?.owner === consumer) this.#unlock(entry);
      }
      for (const session of [...this.sessions.values()])
        if (session.owner === consumer) this.#releaseSession(session);
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
    if (this.options.requiresSession) this.#serveWaiters();
    if (this.consumers.length === 0) return;
    // Called on every send, settlement and credit: without a receiver with credit there is nothing
    // to do, and the walk goes over the live map (deleting the visited entry is safe), not a copy.
    if (!this.options.requiresSession && !this.consumers.some((c) => c.credit() > 0)) return;
    const now = Date.now();
    for (const entry of this.entries.values()) {
      if (entry.state !== "active" || entry.lock) continue;
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
        this.#expire(entry);
        continue;
      }
      let consumer: Consumer | undefined;
      if (this.options.requiresSession) {
        // Only the receiver holding the session's lock gets its messages, in sequence order.
        consumer = this.sessions.get(sessionOf(entry))?.owner;
        if (!consumer || consumer.credit() <= 0) continue;
      } else {
        consumer = this.#pickConsumer();
        if (!consumer) return;
      }
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

  // ---- sessions ----

  /**
   * Locks a session for `owner`: the given one (refused with `session-cannot-be-locked` when another
   * receiver holds it), or with `id` undefined the first session, in sequence order, that has an
   * available message and no holder (undefined when there is none).
   */
  lockSession(id: string | undefined, owner: Consumer, lost: () => void): SessionLock | undefined {
    if (id === undefined) {
      id = this.#nextAvailableSession();
      if (id === undefined) return undefined;
    } else if (this.sessions.has(id)) {
      throw new EmulatorError(
        "com.microsoft:session-cannot-be-locked",
        `The requested session '${id}' cannot be accepted. It may be locked by another receiver (${this.path}).`,
        410,
      );
    }
    const sessionId = id;
    const session: SessionLock = {
      id: sessionId,
      owner,
      until: Date.now() + this.options.lockDurationMs,
      timer: setTimeout(() => this.#sessionLockExpired(session), this.options.lockDurationMs),
      lost,
    };
    session.timer.unref();
    owner.sessionId = sessionId;
    this.sessions.set(sessionId, session);
    return session;
  }

  /** Waits for the next available session; `granted` is called once one is locked for `owner`. */
  waitForSession(owner: Consumer, granted: (lock: SessionLock) => void, lost: () => void): void {
    this.#waiters.push({ owner, granted, lost });
    this.pump();
  }

  cancelWait(owner: Consumer): void {
    const index = this.#waiters.findIndex((w) => w.owner === owner);
    if (index !== -1) this.#waiters.splice(index, 1);
  }

  /** The lock of a session, or `session-lock-lost`. */
  session(id: string): SessionLock {
    const session = this.sessions.get(id);
    if (!session || session.until < Date.now()) {
      throw new EmulatorError(
        "com.microsoft:session-lock-lost",
        `The session lock has expired on the MessageSession '${id}' or it is not locked (${this.path}).`,
        410,
      );
    }
    return session;
  }

  renewSessionLock(id: string): number {
    const session = this.session(id);
    clearTimeout(session.timer);
    session.until = Date.now() + this.options.lockDurationMs;
    session.timer = setTimeout(() => this.#sessionLockExpired(session), this.options.lockDurationMs);
    session.timer.unref();
    return session.until;
  }

  /** Session ids with messages or state, in order of their first message. */
  sessionIds(): string[] {
    const ids = new Set<string>();
    for (const entry of [...this.entries.values()].sort((a, b) => a.seq - b.seq)) ids.add(sessionOf(entry));
    for (const id of this.sessionStates.keys()) ids.add(id);
    return [...ids];
  }

  #nextAvailableSession(): string | undefined {
    const now = Date.now();
    let best: Entry | undefined;
    for (const entry of this.entries.values()) {
      if (entry.state !== "active" || entry.lock) continue;
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) continue;
      if (this.sessions.has(sessionOf(entry))) continue;
      if (!best || entry.seq < best.seq) best = entry;
    }
    return best ? sessionOf(best) : undefined;
  }

  #serveWaiters(): void {
    while (this.#waiters.length > 0) {
      const waiter = this.#waiters[0]!;
      const session = this.lockSession(undefined, waiter.owner, waiter.lost);
      if (!session) return;
      this.#waiters.shift();
      waiter.granted(session);
    }
  }

  #releaseSession(session: SessionLock): void {
    clearTimeout(session.timer);
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
  }

  #sessionLockExpired(session: SessionLock): void {
    if (this.sessions.get(session.id) !== session) return;
    this.#releaseSession(session);
    // Its messages go back (not counted: the client could not settle them) once the receiver is gone.
    for (const entry of [...this.locks.values()]) {
      if (entry.lock?.owner === session.owner) this.#unlock(entry);
    }
    session.lost();
    this.pump();
  }

  lock(entry: Entry, token: string, owner: unknown): void {
    if (this.options.requiresSession && owner !== undefined) {
      // A session's messages are covered by the session lock, not a lock of their own.
      const session = this.sessions.get(sessionOf(entry));
      const until = session?.until ?? Date.now() + this.options.lockDurationMs;
      const timer = setTimeout(() => {}, 0);
      timer.unref();
      entry.lock = { token, until: Number.MAX_SAFE_INTEGER, timer, owner, shownUntil: until };
      this.locks.set(token, entry);
      return;
    }
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
    for (const session of this.sessions.values()) clearTimeout(session.timer);
    this.sessions.clear();
    this.#waiters.length = 0;
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
