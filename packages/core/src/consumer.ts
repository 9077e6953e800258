import { type DeadLetterReason, DUAL_VERSIONS, faultHeaders, REDRIVE_TO } from "./dead-letter.js";
import {
  BYTES_CONTENT_TYPE,
  decodeData,
  type Envelope,
  fromWire,
  isStructured,
  RESERVED_PREFIX,
  type WireMessage,
} from "./envelope.js";
import { PermanentError, SwitchyardError } from "./errors.js";
import { type IdempotencyStore, MemoryIdempotencyStore } from "./idempotency.js";
import type { Instrumentation, InstrumentationScope, Logger } from "./instrumentation.js";
import type { ReplyOptions } from "./request-reply.js";
import { backoffDelay, defaultRetry, type RetryOptions } from "./retry.js";
import {
  applyUpcasters,
  checkVersion,
  decideVersion,
  type InputOf,
  type LatestVersion,
  type MessageType,
  type ValidationResult,
  type VersionDecision,
  type VersionOf,
} from "./schema.js";
import {
  type Capabilities,
  type Delivery,
  type Destination,
  deadLetterQueueName,
  type Source,
  type TopologyEntity,
  type Transport,
  type TransportSubscription,
} from "./transport.js";

/** A received message as a handler sees it: the envelope with typed, validated, upcast data. */
export type Message<T = unknown> = Envelope<T>;

export interface HandlerContext {
  /** 1 on the first delivery. */
  readonly attempt: number;
  readonly source: Source;
  /** The schema version the message was published with (before upcasting). */
  readonly publishedVersion: number | undefined;
  /** The message as it came off the wire: headers and body bytes. */
  readonly wire: WireMessage;
  ack(): Promise<void>;
  /** Return the message for redelivery, not before `delayMs`. */
  nack(options?: { delayMs?: number }): Promise<void>;
  /** Move the message to the dead-letter queue now, with reason `explicit`. */
  deadLetter(reason?: string): Promise<void>;
  /**
   * Answers a `bus.request()`: sends `data` as `type` to the requester's reply queue, with this
   * message's id as causation id. NOT_A_REQUEST when the message has no reply-to. Settling is
   * separate: the message is acked when the handler returns, as always.
   */
  reply<M extends MessageType<any>, N extends VersionOf<VersionsOf<M>> = LatestVersion<VersionsOf<M>>>(
    type: M,
    data: InputOf<VersionsOf<M>, N>,
    options?: ReplyOptions<N>,
  ): Promise<Envelope>;
}

type VersionsOf<M> = M extends MessageType<infer V> ? V : never;

export type Handler<T = unknown> = (message: Message<T>, context: HandlerContext) => unknown;

/**
 * What a batch handler gets beside its messages. Returning acks every message not reported;
 * throwing fails every message not reported (each is retried or dead-lettered on its own, with its
 * own attempt count), so one bad message does not redeliver the whole batch.
 */
export interface BatchContext<T = unknown> {
  readonly source: Source;
  /** The delivery attempt of one message of the batch (1 on the first delivery). */
  attempt(message: Message<T>): number;
  /** The message as it came off the wire. */
  wire(message: Message<T>): WireMessage;
  /** This message failed: retry it with backoff (or dead-letter it when its attempts are used up). */
  fail(message: Message<T>, error: unknown): void;
  /** Move this message to the dead-letter queue now, with reason `explicit`. */
  deadLetter(message: Message<T>, reason?: string): void;
}

export type BatchHandler<T = unknown> = (messages: Message<T>[], context: BatchContext<T>) => unknown;

export interface BatchOptions {
  /** Most messages per call. Default 100; a batch also never holds more than `concurrency`. */
  maxMessages?: number;
  /**
   * How long the first message of a batch waits for more. Default 0: the batch is what arrived in
   * the same turn of the event loop (typically one fetch from the broker).
   */
  maxWaitMs?: number;
}

export type UnknownPolicy = "skip" | "dead-letter" | "fail";

export interface ConsumerOptions {
  /** Handlers running at once. Default 8. */
  concurrency?: number;
  /** Unsettled deliveries the broker may push ahead of the handlers. Default 2 × concurrency. */
  prefetch?: number;
  retry?: Partial<RetryOptions>;
  /** A version no handler takes (after upcasting). Default `dead-letter`. */
  unknownVersion?: UnknownPolicy;
  /** A type no handler takes. Default `skip` on topics (others' events), `dead-letter` on queues. */
  unknownType?: UnknownPolicy;
  /**
   * Drop redelivered duplicates by envelope id. `true` uses an in-memory store and a 24 h TTL.
   * `leaseMs` (default 5 min) is how long a message in a handler holds its claim in a store with
   * `complete()`: if the consumer dies mid-handler, the redelivery is handled after it, not skipped.
   */
  idempotency?: boolean | { store?: IdempotencyStore; ttlMs?: number; leaseMs?: number };
  /**
   * How long `stop()` (and `bus.close()`) waits for in-flight handlers. Default 30 s. When it runs
   * out, the subscription is closed anyway and what the handlers still hold is left unsettled, so
   * the broker redelivers it; whatever those handlers do later is not settled.
   */
  stopTimeoutMs?: number;
}

export interface BusHooks {
  onPublish?(event: { destination: Destination; envelope: Envelope }): void;
  onHandled?(event: { source: Source; message: Message; attempt: number; durationMs: number }): void;
  onError?(event: {
    source: Source;
    envelope?: Envelope;
    error: unknown;
    attempt: number;
    willRetry: boolean;
  }): void;
  onDeadLetter?(event: {
    source: Source;
    envelope?: Envelope;
    reason: DeadLetterReason;
    error?: unknown;
    attempt: number;
  }): void;
  onSkip?(event: { source: Source; envelope: Envelope; why: SkipReason }): void;
}

export type SkipReason = "duplicate" | "unknown-type" | "unknown-version" | "sibling" | "redriven-elsewhere";

/** What a consumer needs from its bus. */
export interface BusRuntime {
  transport(): Promise<Transport>;
  capabilities(): Promise<Capabilities>;
  ensure(entities: TopologyEntity[]): Promise<void>;
  hooks: BusHooks;
  /** The bus's `source` (the consuming service), named in its dead letters. */
  service?: string | undefined;
  /** Tracing/metrics seam (absent: nothing is called or allocated per message). */
  instrumentation?: Instrumentation | undefined;
  logger?: Logger | undefined;
  register(consumer: Consumer): void;
  unregister(consumer: Consumer): void;
  /** Sends a reply to `request` (ctx.reply); see request-reply.ts. */
  reply(
    request: Envelope,
    type: MessageType,
    data: unknown,
    options: ReplyOptions | undefined,
  ): Promise<Envelope>;
}

export interface Registration {
  type: MessageType;
  versions: number[];
  handler: Handler<any>;
  name: string;
  /** onAny({ foreign: true }): messages that are not CloudEvents reach the handler as raw bytes. */
  foreign?: boolean;
  /** onBatch(): messages are handed over in batches instead (`handler` is then unused). */
  batch?: { handler: BatchHandler<any>; maxMessages: number; maxWaitMs: number };
}

/** A message waiting in a batch, holding its handler slot until the batch settles. */
interface Batched {
  delivery: Delivery;
  envelope: Envelope;
  done: () => void;
}

/** The batch gathering for one registration. */
interface Gathering {
  items: Batched[];
  cancel: () => void;
}

/** Type given to a message from a non-Switchyard producer (no CloudEvents attributes). */
export const FOREIGN_TYPE = "switchyard.foreign";

export interface Consumer {
  readonly source: Source;
  /**
   * Stop fetching, let in-flight handlers finish and settle, then release the subscription. A
   * handler still running after `stopTimeoutMs` is abandoned: its message is left unsettled for
   * the broker to redeliver, and `stop()` resolves.
   */
  stop(): Promise<void>;
}

interface Failure {
  reason: DeadLetterReason;
  error?: unknown;
  reasonText?: string;
  handler?: string;
  envelope?: Envelope;
}

const DAY = 24 * 60 * 60 * 1000;
const UNKNOWN_DECISION: VersionDecision = { action: "unknown" };

/** A message that is not a CloudEvent (and no handler takes foreign ones): it is dead-lettered. */
class DecodeFailure {
  constructor(readonly error: unknown) {}
}
/** fromWire's options on the consume path: a binary body is decoded once its handler is known. */
const LAZY_BODY = { decodeBody: false } as const;
type Outcome = "ack" | "nack" | "dead-letter";

/**
 * What a handler gets as `ctx`: one object per message with its methods on the prototype (no
 * closures per delivery on the hot path). Settling twice is an ALREADY_SETTLED error.
 */
class Context implements HandlerContext {
  settled: Outcome | undefined;

  constructor(
    readonly consumer: RunningConsumer,
    readonly delivery: Delivery,
    readonly envelope: Envelope,
    readonly registration: Registration,
    readonly publishedVersion: number | undefined,
  ) {}

  get attempt(): number {
    return this.delivery.attempt;
  }
  get source(): Source {
    return this.consumer.source;
  }
  get wire(): WireMessage {
    return this.delivery.message;
  }

  claim(outcome: Outcome): void {
    if (this.settled) {
      throw new SwitchyardError(
        "ALREADY_SETTLED",
        `message ${this.envelope.id} was already settled (${this.settled})`,
      );
    }
    this.settled = outcome;
  }

  async ack(): Promise<void> {
    this.claim("ack");
    await this.consumer.settleAck(this.delivery);
  }

  async nack(options?: { delayMs?: number }): Promise<void> {
    // Checked before the claim: a refused nack leaves the message to be settled another way.
    if (options?.delayMs !== undefined) this.consumer.checkDelay(options.delayMs);
    this.claim("nack");
    await this.consumer.settleNack(this, options);
  }

  async deadLetter(reason?: string): Promise<void> {
    this.claim("dead-letter");
    await this.consumer.settleDeadLetter(this, reason ?? "explicit");
  }

  reply(type: MessageType, data: unknown, options?: ReplyOptions): Promise<Envelope> {
    return this.consumer.sendReply(this.envelope, type, data, options);
  }
}

/** A settlement with nothing left to do (shared: not allocated per message). */
const SETTLED: Promise<void> = Promise.resolve();

export class RunningConsumer implements Consumer {
  readonly #runtime: BusRuntime;
  readonly #registrations: Map<string, Registration>;
  readonly #fallback: Registration | undefined;
  readonly #retry: RetryOptions;
  readonly #unknownVersion: UnknownPolicy;
  readonly #unknownType: UnknownPolicy;
  readonly #idempotency: { store: IdempotencyStore; ttlMs: number; leaseMs: number } | undefined;
  readonly #concurrency: number;
  /** Handlers running now. */
  #running = 0;
  /** Deliveries waiting for a free handler slot, in arrival order (a queue with a moving head). */
  readonly #waiting: Array<{ delivery: Delivery; envelope: Envelope | undefined }> = [];
  #waitingHead = 0;
  /**
   * Per-key order: messages of a key run one after another. A key is in the map while one of its
   * messages is admitted; later ones of the key wait in its array.
   */
  readonly #keys = new Map<string, Array<{ delivery: Delivery; envelope: Envelope | undefined }>>();
  /** Deliveries received and not yet finished (settled or reported); stop() waits for 0. */
  #unfinished = 0;
  #drained: (() => void) | undefined;
  readonly #firstFailure = new Map<string, Date>();
  readonly #prefetch: number;
  #transport!: Transport;
  #capabilities!: Capabilities;
  /** capabilities.keyOnWire: order by the wire message's key, decode when a slot is free. */
  #keyOnWire = false;
  #subscription: TransportSubscription | undefined;
  #stopping: Promise<void> | undefined;
  #closing = false;
  /** stop() gave up waiting for handlers: their late outcomes are not settled (the broker redelivers). */
  #abandoned = false;
  readonly #stopTimeoutMs: number;
  readonly #instrumentation: Instrumentation | undefined;
  #scope!: InstrumentationScope;

  constructor(
    runtime: BusRuntime,
    readonly source: Source,
    registrations: Map<string, Registration>,
    fallback: Registration | undefined,
    options: ConsumerOptions,
  ) {
    this.#runtime = runtime;
    this.#instrumentation = runtime.instrumentation;
    this.#registrations = registrations;
    this.#fallback = fallback;
    const concurrency = options.concurrency ?? 8;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        `concurrency must be a positive integer, got ${concurrency}`,
      );
    }
    this.#concurrency = concurrency;
    if (options.prefetch !== undefined && (!Number.isInteger(options.prefetch) || options.prefetch < 1)) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        `prefetch must be a positive integer, got ${options.prefetch}`,
      );
    }
    this.#prefetch = Math.max(concurrency, options.prefetch ?? concurrency * 2);
    this.#retry = { ...defaultRetry, ...options.retry };
    validateRetry(this.#retry);
    const stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
    if (typeof stopTimeoutMs !== "number" || !(stopTimeoutMs >= 0 && stopTimeoutMs < 2 ** 31)) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        `stopTimeoutMs must be from 0 to 2^31-1, got ${stopTimeoutMs}`,
      );
    }
    this.#stopTimeoutMs = stopTimeoutMs;
    this.#unknownVersion = options.unknownVersion ?? "dead-letter";
    this.#unknownType = options.unknownType ?? (source.kind === "topic" ? "skip" : "dead-letter");
    if (options.idempotency) {
      const config = options.idempotency === true ? {} : options.idempotency;
      this.#idempotency = {
        store: config.store ?? new MemoryIdempotencyStore(),
        ttlMs: config.ttlMs ?? DAY,
        leaseMs: config.leaseMs ?? 5 * 60_000,
      };
    }
  }

  get deadLetterQueue(): string {
    return deadLetterQueueName(this.source);
  }

  async start(): Promise<this> {
    this.#transport = await this.#runtime.transport();
    this.#capabilities = await this.#runtime.capabilities();
    this.#keyOnWire = this.#capabilities.keyOnWire;
    this.#scope = { system: this.#transport.name };
    const { source } = this;
    // A broker that keeps dead letters itself (deadLetterSource) needs no DLQ queue of ours.
    const nativeDeadLetters = this.#transport.deadLetterSource?.(source) !== undefined;
    await this.#runtime.ensure([
      source.kind === "queue" ? { kind: "queue", name: source.name } : { kind: "topic", name: source.name },
      ...(nativeDeadLetters ? [] : [{ kind: "queue" as const, name: this.deadLetterQueue }]),
      ...(source.kind === "topic"
        ? [
            {
              kind: "subscription" as const,
              topic: source.name,
              name: source.subscription,
              deadLetterQueue: this.deadLetterQueue,
              maxAttempts: this.#retry.maxAttempts,
            },
          ]
        : []),
    ]);
    this.#runtime.register(this);
    this.#subscription = await this.#transport.subscribe(
      source,
      { prefetch: this.#prefetch, onError: (error) => this.#recovered(error) },
      (delivery) => this.#receive(delivery),
    );
    return this;
  }

  /** A transport error the subscription recovers from by itself: reported, nothing to retry here. */
  #recovered(error: unknown): void {
    this.#runtime.logger?.warn({ source: this.source, error: String(error) }, "transport error, recovering");
    this.#runtime.hooks.onError?.({ source: this.source, error, attempt: 0, willRetry: true });
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#closing = true;
      await this.#subscription?.stop?.();
      if (this.#unfinished > 0) await this.#drain();
      await this.#subscription?.close();
      this.#runtime.unregister(this);
    })();
    return this.#stopping;
  }

  /** Waits for in-flight work, at most stopTimeoutMs; past it, abandons what is still held. */
  async #drain(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise<boolean>((resolve) => {
      this.#drained = () => resolve(true);
    });
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#stopTimeoutMs);
    });
    const finished = await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    if (finished) return;
    this.#abandoned = true;
    this.#drained = undefined;
    if (this.#idempotency && this.#claimed.size > 0) {
      const store = this.#idempotency.store;
      const keys = [...this.#claimed];
      this.#claimed.clear();
      await Promise.all(
        keys.map((key) =>
          store.release(key).catch((error: unknown) => {
            this.#runtime.logger?.warn(
              { source: this.source, key, error },
              "stop: could not release the idempotency claim of an abandoned message; its redelivery may be skipped until the claim expires",
            );
          }),
        ),
      );
    }
    const error = new SwitchyardError(
      "TIMEOUT",
      `stop: ${this.#unfinished} message(s) still in handlers after ${this.#stopTimeoutMs} ms; left unsettled for redelivery`,
    );
    this.#runtime.logger?.warn({ source: this.source, unfinished: this.#unfinished }, error.message);
    this.#runtime.hooks.onError?.({ source: this.source, error, attempt: 0, willRetry: true });
  }

  // ---- the pipeline: receive → (per-key order) → a handler slot → handle → settle ----

  #receive(delivery: Delivery): void {
    this.#unfinished++;
    if (this.#closing) {
      void this.#finish(this.#settle(delivery, "nack"));
      return;
    }
    // Where the transport carries the ordering key on the wire message, a message waiting for a
    // handler slot stays undecoded (a structured event is parsed whole, data and all: decoding a
    // fetch's worth of queued messages up front only keeps them alive longer, as GC work).
    let envelope: Envelope | undefined;
    let key: string | undefined;
    if (this.#keyOnWire) key = delivery.message.key;
    else {
      const decoded = this.#decode(delivery);
      if (decoded instanceof DecodeFailure) {
        void this.#finish(this.#deadLetter(delivery, { reason: "decode", error: decoded.error }));
        return;
      }
      envelope = decoded;
      key = envelope.key;
    }
    if (key !== undefined) {
      const queued = this.#keys.get(key);
      if (queued) {
        queued.push({ delivery, envelope });
        return;
      }
      this.#keys.set(key, []);
    }
    if (this.#running < this.#concurrency) this.#run(delivery, envelope, key);
    else this.#waiting.push({ delivery, envelope });
  }

  /** The envelope of a delivery; a foreign message is one when an onAny({ foreign }) handler takes it. */
  #decode(delivery: Delivery): Envelope | DecodeFailure {
    try {
      return fromWire(delivery.message, LAZY_BODY);
    } catch (error) {
      return this.#fallback?.foreign ? foreignEnvelope(delivery.message) : new DecodeFailure(error);
    }
  }

  /**
   * Runs one admitted delivery in a handler slot, then hands the slot on (#ran). `key` is the one
   * it was admitted under (its per-key queue is released with it). Not an async function: this
   * runs once per message, and a suspended async frame is one of the larger allocations per
   * message (a promise and two callbacks are smaller).
   */
  #run(delivery: Delivery, decoded: Envelope | undefined, key: string | undefined): void {
    this.#running++;
    let envelope = decoded;
    let work: Promise<void> | undefined;
    try {
      if (this.#closing) work = this.#settle(delivery, "nack");
      else {
        if (envelope === undefined) {
          const late = this.#decode(delivery);
          if (late instanceof DecodeFailure) {
            work = this.#deadLetter(delivery, { reason: "decode", error: late.error });
          } else envelope = late;
        }
        work ??= this.#process(delivery, envelope!);
      }
    } catch (error) {
      work = Promise.reject(error);
    }
    work.then(
      () => this.#ran(key),
      (error: unknown) => {
        // Only settlement failures get here (a lost connection): the broker will redeliver.
        this.#runtime.hooks.onError?.({
          source: this.source,
          ...(envelope ? { envelope } : {}),
          error,
          attempt: delivery.attempt,
          willRetry: true,
        });
        this.#ran(key);
      },
    );
  }

  /** A handler slot came free: the next waiting delivery takes it. */
  #ran(key: string | undefined): void {
    this.#running--;
    if (key !== undefined) {
      const queued = this.#keys.get(key)!;
      // The next message of this key goes to the back of the line for a slot, in arrival order.
      if (queued.length > 0) this.#waiting.push(queued.shift()!);
      else this.#keys.delete(key);
    }
    if (this.#waitingHead < this.#waiting.length) {
      const next = this.#waiting[this.#waitingHead]!;
      this.#waiting[this.#waitingHead++] = undefined!;
      if (this.#waitingHead === this.#waiting.length) {
        this.#waiting.length = 0;
        this.#waitingHead = 0;
      }
      this.#run(next.delivery, next.envelope, this.#keyOf(next));
    }
    this.#finished();
  }

  /** Handles a decoded delivery, inside the instrumentation's process span when there is one. */
  #process(delivery: Delivery, envelope: Envelope): Promise<void> {
    const instrumentation = this.#instrumentation;
    if (!instrumentation?.process) return this.#handle(delivery, envelope);
    return instrumentation.process(this.#scope, this.source, delivery, envelope, () =>
      this.#handle(delivery, envelope),
    );
  }

  /** The ordering key a waiting delivery was queued under (see #receive). */
  #keyOf(waiting: { delivery: Delivery; envelope: Envelope | undefined }): string | undefined {
    return this.#keyOnWire ? waiting.delivery.message.key : waiting.envelope?.key;
  }

  async #finish(work: Promise<void>): Promise<void> {
    try {
      await work;
    } finally {
      this.#finished();
    }
  }

  #finished(): void {
    if (--this.#unfinished === 0 && this.#drained) {
      const drained = this.#drained;
      this.#drained = undefined;
      drained();
    }
  }

  /**
   * Routes, decodes and validates a delivery, then runs its handler. Never throws (a throw from a
   * validator or an upcaster becomes the promise's rejection, as in an async function).
   */
  #handle(delivery: Delivery, envelope: Envelope): Promise<void> {
    try {
      return this.#route(delivery, envelope);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  // The steps below are plain functions that return the next step's promise, not async functions:
  // they run once per message, and each suspended async frame is an allocation the size of the
  // function's locals. Only the rare paths (idempotency, batches, failures) are async.

  #route(delivery: Delivery, envelope: Envelope): Promise<void> {
    const headers = delivery.message.headers;
    const redriveTo = headers[REDRIVE_TO];
    if (redriveTo !== undefined && redriveTo !== this.source.subscription) {
      return this.#skip(delivery, envelope, "redriven-elsewhere");
    }
    const registration = this.#registrations.get(envelope.type) ?? this.#fallback;
    if (!registration) {
      return this.#unknown(
        delivery,
        envelope,
        this.#unknownType,
        "unknown-type",
        `no handler for type "${envelope.type}"`,
      );
    }

    let data: unknown;
    try {
      // A structured-mode message was decoded whole by fromWire; a binary one only now. A
      // tombstone has no data at all.
      data = envelope.tombstone
        ? null
        : isStructured(delivery.message)
          ? envelope.data
          : decodeData(delivery.message.body, envelope.dataContentType);
    } catch (error) {
      return this.#deadLetter(delivery, { reason: "decode", error, envelope, handler: registration.name });
    }

    // The envelope is this delivery's own (fromWire made it): it becomes the handler's message.
    const publishedVersion = envelope.schemaVersion;
    // Untyped handlers and tombstones (null data by definition) skip version checks and validation.
    if (registration.type.versionList.length === 0 || envelope.tombstone) {
      envelope.data = data;
      return this.#invoke(delivery, envelope, registration, publishedVersion);
    }
    const type = registration.type;
    const version = publishedVersion;
    const dualHeader = headers[DUAL_VERSIONS];
    const dual = dualHeader === undefined ? undefined : dualHeader.split(",").map(Number);
    const decision =
      version === undefined
        ? UNKNOWN_DECISION
        : dual === undefined
          ? this.#decide(registration, version)
          : decideVersion(type, registration.versions, version, dual);
    if (decision.action === "sibling") return this.#skip(delivery, envelope, "sibling");
    if (decision.action === "unknown") {
      return this.#unknown(
        delivery,
        envelope,
        this.#unknownVersion,
        "unknown-version",
        `"${type.type}" version ${version ?? "(none)"} is not handled (handles ${registration.versions.join(", ")})`,
        registration.name,
      );
    }
    // A validator that throws (or rejects) is broken or its dependency is down, which says nothing
    // about the data: retried as a handler failure would be, dead-lettered when attempts run out.
    let valid: ReturnType<typeof checkVersion>;
    try {
      valid = checkVersion(type, version!, data);
    } catch (error) {
      return this.#fail(delivery, envelope, error, registration.name);
    }
    return valid instanceof Promise
      ? valid.then(
          (result) => this.#accept(delivery, envelope, registration, decision, result),
          (error: unknown) => this.#fail(delivery, envelope, error, registration.name),
        )
      : this.#accept(delivery, envelope, registration, decision, valid);
  }

  /** A validated message: upcast, then handled; an invalid one is dead-lettered. */
  #accept(
    delivery: Delivery,
    envelope: Envelope,
    registration: Registration,
    decision: Extract<VersionDecision, { action: "handle" }>,
    valid: ValidationResult,
  ): Promise<void> {
    const type = registration.type;
    const publishedVersion = envelope.schemaVersion;
    if (!valid.ok) {
      const error = new SwitchyardError(
        "VALIDATION_FAILED",
        `"${type.type}" v${publishedVersion} is invalid: ${valid.message}`,
      );
      return this.#deadLetter(delivery, {
        reason: "validation",
        error,
        envelope,
        handler: registration.name,
      });
    }
    let value = valid.value;
    try {
      value = applyUpcasters(type, value, decision.upcastFrom);
    } catch (error) {
      return this.#fail(delivery, envelope, error, registration.name);
    }
    envelope.data = value;
    envelope.schemaVersion = decision.version;
    return this.#invoke(delivery, envelope, registration, publishedVersion);
  }

  /** Runs the handler of a ready message (see #call), first claiming it or gathering it into a batch. */
  #invoke(
    delivery: Delivery,
    message: Message,
    registration: Registration,
    publishedVersion: number | undefined,
  ): Promise<void> {
    if (this.#idempotency || registration.batch) {
      return this.#invokeClaimed(delivery, message, registration, publishedVersion);
    }
    return this.#call(delivery, message, registration, publishedVersion, undefined);
  }

  /** #invoke with an idempotency claim around the handler, or into a batch handler's batch. */
  async #invokeClaimed(
    delivery: Delivery,
    message: Message,
    registration: Registration,
    publishedVersion: number | undefined,
  ): Promise<void> {
    // The claim key while this message holds one; completed once handled (see #completeClaim).
    let claimed: string | undefined;
    const idempotency = this.#idempotency;
    if (idempotency) {
      const { store, ttlMs, leaseMs } = idempotency;
      const key = this.#claimKey(message);
      if (!(await store.claim(key, store.complete ? leaseMs : ttlMs))) {
        return this.#skip(delivery, message, "duplicate");
      }
      this.#claimed.add(key);
      claimed = key;
    }

    if (registration.batch) {
      if (claimed === undefined) return this.#gather(registration, delivery, message);
      await this.#gather(registration, delivery, message);
      return this.#completeClaim(claimed);
    }
    return this.#call(delivery, message, registration, publishedVersion, claimed);
  }

  /** Calls the handler, then acks the message unless the handler settled it. */
  #call(
    delivery: Delivery,
    message: Message,
    registration: Registration,
    publishedVersion: number | undefined,
    claimed: string | undefined,
  ): Promise<void> {
    const context = new Context(this, delivery, message, registration, publishedVersion);
    const started = this.#runtime.hooks.onHandled ? performance.now() : 0;
    let result: unknown;
    try {
      result = registration.handler(message, context);
    } catch (error) {
      return this.#handlerFailed(context, error, claimed);
    }
    if (result instanceof Promise) {
      return result.then(
        () => this.#handlerReturned(context, started, claimed),
        (error: unknown) => this.#handlerFailed(context, error, claimed),
      );
    }
    return this.#handlerReturned(context, started, claimed);
  }

  /** The handler returned: ack unless it settled the message itself. */
  #handlerReturned(context: Context, started: number, claimed: string | undefined): Promise<void> {
    let settling = SETTLED;
    if (!context.settled) {
      context.settled = "ack";
      settling = this.#settle(context.delivery, "ack");
    }
    const onHandled = this.#runtime.hooks.onHandled;
    if (claimed === undefined && onHandled === undefined && this.#firstFailure.size === 0) return settling;
    return settling.then(() => this.#afterHandled(context, started, claimed));
  }

  async #afterHandled(context: Context, started: number, claimed: string | undefined): Promise<void> {
    if (claimed !== undefined) await this.#completeClaim(claimed);
    const message = context.envelope;
    if (this.#firstFailure.size > 0) this.#firstFailure.delete(message.id);
    this.#runtime.hooks.onHandled?.({
      source: this.source,
      message,
      attempt: context.delivery.attempt,
      durationMs: performance.now() - started,
    });
  }

  /** The handler threw: retried (or dead-lettered) unless it settled the message before throwing. */
  async #handlerFailed(context: Context, error: unknown, claimed: string | undefined): Promise<void> {
    const { delivery, envelope, registration } = context;
    if (context.settled) {
      this.#runtime.hooks.onError?.({
        source: this.source,
        envelope,
        error,
        attempt: delivery.attempt,
        willRetry: false,
      });
      if (claimed !== undefined) await this.#completeClaim(claimed);
      return;
    }
    context.settled = "nack";
    await this.#release(envelope);
    return this.#fail(delivery, envelope, error, registration.name);
  }

  /**
   * decideVersion for a message that is not dual-published, remembered per registration and
   * version: the answer depends on nothing else, and the consume path then allocates nothing for it.
   */
  #decide(registration: Registration, version: number): VersionDecision {
    let decisions = this.#decisions.get(registration);
    if (!decisions) {
      decisions = new Map();
      this.#decisions.set(registration, decisions);
    }
    let decision = decisions.get(version);
    if (!decision) {
      decision = decideVersion(registration.type, registration.versions, version);
      if (decisions.size < 1024) decisions.set(version, decision);
    }
    return decision;
  }

  readonly #decisions = new Map<Registration, Map<number, VersionDecision>>();

  // ---- batch handlers ----

  readonly #gathering = new Map<Registration, Gathering>();

  /** Adds a valid message to its registration's batch; resolves once the batch settled it. */
  #gather(registration: Registration, delivery: Delivery, envelope: Envelope): Promise<void> {
    const { maxMessages, maxWaitMs } = registration.batch!;
    let gathering = this.#gathering.get(registration);
    if (!gathering) {
      const created: Gathering = { items: [], cancel: () => {} };
      const flush = () => void this.#flushBatch(registration, created);
      if (maxWaitMs > 0) {
        const timer = setTimeout(flush, maxWaitMs);
        created.cancel = () => clearTimeout(timer);
      } else {
        const immediate = setImmediate(flush);
        created.cancel = () => clearImmediate(immediate);
      }
      this.#gathering.set(registration, created);
      gathering = created;
    }
    const batch = gathering;
    return new Promise<void>((done) => {
      batch.items.push({ delivery, envelope, done });
      // Full, or every handler slot is waiting in it (nothing more can arrive): go now.
      if (batch.items.length >= maxMessages || this.#running >= this.#concurrency) {
        void this.#flushBatch(registration, batch);
      }
    });
  }

  async #flushBatch(registration: Registration, batch: Gathering): Promise<void> {
    if (this.#gathering.get(registration) !== batch) return; // flushed already
    this.#gathering.delete(registration);
    batch.cancel();
    const { items } = batch;
    const byMessage = new Map<Message, Batched>(items.map((item) => [item.envelope, item]));
    const outcomes = new Map<Message, { error: unknown } | { deadLetter: string }>();
    const item = (message: Message): Batched => {
      const found = byMessage.get(message);
      if (!found) throw new SwitchyardError("CONFIG_INVALID", "that message is not part of this batch");
      return found;
    };
    const report = (message: Message, outcome: { error: unknown } | { deadLetter: string }) => {
      item(message);
      if (outcomes.has(message)) {
        throw new SwitchyardError("ALREADY_SETTLED", `message ${message.id} was already reported`);
      }
      outcomes.set(message, outcome);
    };
    const context: BatchContext = {
      source: this.source,
      attempt: (message) => item(message).delivery.attempt,
      wire: (message) => item(message).delivery.message,
      fail: (message, error) => report(message, { error }),
      deadLetter: (message, reason) => report(message, { deadLetter: reason ?? "explicit" }),
    };
    const started = performance.now();
    let thrown: { error: unknown } | undefined;
    try {
      const result = registration.batch!.handler(
        items.map((i) => i.envelope),
        context,
      );
      if (result instanceof Promise) await result;
    } catch (error) {
      thrown = { error };
    }
    const durationMs = performance.now() - started;
    await Promise.all(
      items.map(async ({ delivery, envelope, done }) => {
        try {
          const outcome = outcomes.get(envelope) ?? thrown;
          if (outcome && "deadLetter" in outcome) {
            await this.#deadLetter(delivery, {
              reason: "explicit",
              reasonText: outcome.deadLetter,
              envelope,
              handler: registration.name,
            });
          } else if (outcome) {
            await this.#release(envelope);
            await this.#fail(delivery, envelope, outcome.error, registration.name);
          } else {
            await this.#settle(delivery, "ack");
            this.#firstFailure.delete(envelope.id);
            this.#runtime.hooks.onHandled?.({
              source: this.source,
              message: envelope,
              attempt: delivery.attempt,
              durationMs,
            });
          }
        } finally {
          done();
        }
      }),
    );
  }

  // ---- settlements a handler makes through its context ----

  /** @internal ctx.ack() */
  settleAck(delivery: Delivery): Promise<void> {
    return this.#settle(delivery, "ack");
  }

  /** @internal ctx.nack() */
  async settleNack(context: Context, options: { delayMs?: number } | undefined): Promise<void> {
    await this.#release(context.envelope);
    await this.#settle(context.delivery, "nack", options);
  }

  /** @internal A delay for ctx.nack(): finite, ≥ 0, and within what the transport can honour. */
  checkDelay(delayMs: number): void {
    const max = this.#capabilities.maxDelayMs;
    if (typeof delayMs !== "number" || !Number.isFinite(delayMs) || delayMs < 0 || delayMs > max) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        `nack delayMs must be a number from 0 to ${max} (the ${this.#transport.name} limit), got ${delayMs}`,
      );
    }
  }

  /** @internal ctx.reply() */
  sendReply(request: Envelope, type: MessageType, data: unknown, options?: ReplyOptions): Promise<Envelope> {
    return this.#runtime.reply(request, type, data, options);
  }

  /** @internal ctx.deadLetter() */
  settleDeadLetter(context: Context, reasonText: string): Promise<void> {
    return this.#deadLetter(context.delivery, {
      reason: "explicit",
      reasonText,
      envelope: context.envelope,
      handler: context.registration.name,
    });
  }

  /**
   * Idempotency keys claimed by messages now in handlers. stop() releases the ones it abandons: the
   * broker redelivers those messages, and a claim kept for the whole TTL would make every consumer
   * sharing the store skip the redelivery as a duplicate — the message would be acked unhandled.
   */
  readonly #claimed = new Set<string>();

  /**
   * A handled message's claim is kept for the TTL — unless a failure, a nack or stop() released it
   * meanwhile (then it is no longer in #claimed and there is nothing to complete).
   */
  async #completeClaim(key: string): Promise<void> {
    const idempotency = this.#idempotency!;
    if (!this.#claimed.delete(key) || !idempotency.store.complete) return;
    await idempotency.store.complete(key, idempotency.ttlMs).catch((error: unknown) => {
      this.#runtime.logger?.warn(
        { source: this.source, key, error },
        "could not mark a handled message in the idempotency store; a redelivery after its lease would be handled again",
      );
    });
  }

  #claimKey(envelope: Envelope): string {
    return `${this.source.subscription}:${envelope.id}`;
  }

  async #release(envelope: Envelope): Promise<void> {
    if (!this.#idempotency) return;
    const key = this.#claimKey(envelope);
    this.#claimed.delete(key);
    await this.#idempotency.store.release(key);
  }

  async #skip(delivery: Delivery, envelope: Envelope, why: SkipReason): Promise<void> {
    await this.#settle(delivery, "ack");
    this.#runtime.hooks.onSkip?.({ source: this.source, envelope, why });
  }
  async #unknown(
    delivery: Delivery,
    envelope: Envelope,
    policy: UnknownPolicy,
    reason: "unknown-type" | "unknown-version",
    text: string,
    handler?: string,
  ): Promise<void> {
    if (policy === "skip") return this.#skip(delivery, envelope, reason);
    const error = new SwitchyardError(
      reason === "unknown-type" ? "UNKNOWN_MESSAGE_TYPE" : "UNKNOWN_VERSION",
      text,
    );
    if (policy === "dead-letter") {
      return this.#deadLetter(delivery, { reason, error, envelope, ...(handler ? { handler } : {}) });
    }
    // "fail": retry like a handler error (another instance of a rolling deploy may know it),
    // and dead-letter with this reason once the attempts are used up.
    return this.#fail(delivery, envelope, error, handler, reason);
  }

  /** A failed handling: retry with backoff, or dead-letter when retrying cannot help. */
  async #fail(
    delivery: Delivery,
    envelope: Envelope,
    error: unknown,
    handler: string | undefined,
    exhaustedReason: DeadLetterReason = "max-attempts",
  ): Promise<void> {
    if (!this.#firstFailure.has(envelope.id)) {
      if (this.#firstFailure.size > 10_000)
        this.#firstFailure.delete(this.#firstFailure.keys().next().value!);
      this.#firstFailure.set(envelope.id, new Date());
    }
    const base = { envelope, error, ...(handler ? { handler } : {}) };
    if (error instanceof PermanentError)
      return this.#deadLetter(delivery, { reason: "handler-error", ...base });
    if (delivery.attempt >= this.#retry.maxAttempts) {
      return this.#deadLetter(delivery, { reason: exhaustedReason, ...base });
    }
    this.#runtime.hooks.onError?.({
      source: this.source,
      envelope,
      error,
      attempt: delivery.attempt,
      willRetry: true,
    });
    const delayMs = Math.min(backoffDelay(delivery.attempt, this.#retry), this.#capabilities.maxDelayMs);
    await this.#settle(delivery, "nack", { delayMs }, error);
  }

  async #deadLetter(delivery: Delivery, failure: Failure): Promise<void> {
    if (this.#abandoned) return; // stop() gave up on it: the broker redelivers it
    const { envelope } = failure;
    const headers = faultHeaders({
      reason: failure.reason,
      ...(failure.reasonText ? { reasonText: failure.reasonText } : {}),
      // Present when something was thrown, even `undefined`; absent for an explicit dead letter.
      ...("error" in failure ? { error: failure.error } : {}),
      attempts: delivery.attempt,
      ...(envelope && this.#firstFailure.has(envelope.id)
        ? { firstFailureAt: this.#firstFailure.get(envelope.id)! }
        : {}),
      destination: { kind: this.source.kind, name: this.source.name },
      subscription: this.source.subscription,
      ...(this.#runtime.service ? { consumer: this.#runtime.service } : {}),
      ...(failure.handler ? { handler: failure.handler } : {}),
      ...(envelope ? { messageType: envelope.type } : {}),
      ...(envelope?.schemaVersion !== undefined ? { schemaVersion: envelope.schemaVersion } : {}),
    });
    if (envelope) this.#firstFailure.delete(envelope.id);
    try {
      if (this.#capabilities.nativeDeadLetter && delivery.deadLetter) {
        await delivery.deadLetter({ ...delivery.originHeaders?.(), ...headers });
      } else {
        const dead: WireMessage = {
          ...delivery.message,
          headers: { ...delivery.message.headers, ...delivery.originHeaders?.(), ...headers },
        };
        await this.#transport.publish({ kind: "queue", name: this.deadLetterQueue }, [dead]);
        await delivery.ack();
      }
    } catch (error) {
      // The DLQ refused it (or the connection dropped): keep the message rather than lose it.
      this.#runtime.hooks.onError?.({
        source: this.source,
        error,
        attempt: delivery.attempt,
        willRetry: true,
        ...(envelope ? { envelope } : {}),
      });
      await this.#settle(delivery, "nack", { delayMs: this.#retry.initialDelayMs });
      return;
    }
    this.#instrumentation?.settled?.(this.#scope, this.source, delivery, {
      kind: "dead-letter",
      reason: failure.reason,
      ...(failure.reasonText ? { reasonText: failure.reasonText } : {}),
      error: failure.error,
    });
    this.#runtime.logger?.warn(
      {
        source: this.source,
        reason: failure.reason,
        messageId: delivery.message.id,
        attempt: delivery.attempt,
      },
      "message dead-lettered",
    );
    this.#runtime.hooks.onDeadLetter?.({
      source: this.source,
      reason: failure.reason,
      error: failure.error,
      attempt: delivery.attempt,
      ...(envelope ? { envelope } : {}),
    });
  }

  /** Awaits a settlement; a failed one is reported (the broker will redeliver), never thrown. */
  /**
   * Acks or nacks through the transport; never rejects (a failure is logged and reported: the
   * broker redelivers). Not an async function: it runs once per message, and an async frame of
   * this size costs more to allocate than the two callbacks below.
   */
  #settle(
    delivery: Delivery,
    what: "ack" | "nack",
    options?: { delayMs?: number },
    failure?: unknown,
  ): Promise<void> {
    if (this.#abandoned) return SETTLED; // stop() gave up on it: the broker redelivers it
    let settling: Promise<void>;
    try {
      // Promise.resolve returns a native promise as it is; it also takes an adapter's plain value.
      settling = Promise.resolve(what === "ack" ? delivery.ack() : delivery.nack(options));
    } catch (error) {
      settling = Promise.reject(error);
    }
    const instrumentation = this.#instrumentation;
    return settling.then(
      instrumentation?.settled === undefined
        ? undefined
        : () =>
            instrumentation.settled!(
              this.#scope,
              this.source,
              delivery,
              what === "ack"
                ? { kind: "ack" }
                : {
                    kind: "nack",
                    ...(options?.delayMs !== undefined ? { delayMs: options.delayMs } : {}),
                    error: failure,
                  },
            ),
      (error: unknown) => this.#settleFailed(delivery, what, error),
    );
  }

  #settleFailed(delivery: Delivery, what: "ack" | "nack", error: unknown): void {
    this.#runtime.logger?.warn(
      { source: this.source, messageId: delivery.message.id, error: String(error) },
      `${what} failed`,
    );
    this.#runtime.hooks.onError?.({
      source: this.source,
      error: new SwitchyardError("TRANSPORT_ERROR", `${what} of message ${delivery.message.id} failed`, {
        cause: error,
      }),
      attempt: delivery.attempt,
      willRetry: true,
    });
  }
}

function validateRetry(retry: RetryOptions): void {
  const problems: string[] = [];
  if (!Number.isInteger(retry.maxAttempts) || retry.maxAttempts < 1)
    problems.push(`maxAttempts must be an integer ≥ 1, got ${retry.maxAttempts}`);
  for (const name of ["initialDelayMs", "maxDelayMs"] as const) {
    const value = retry[name];
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0)
      problems.push(`${name} must be a finite number ≥ 0, got ${value}`);
  }
  if (typeof retry.multiplier !== "number" || !Number.isFinite(retry.multiplier) || retry.multiplier < 1)
    problems.push(`multiplier must be a finite number ≥ 1, got ${retry.multiplier}`);
  if (typeof retry.jitter !== "number" || !(retry.jitter >= 0 && retry.jitter <= 1))
    problems.push(`jitter must be from 0 to 1, got ${retry.jitter}`);
  if (problems.length > 0) throw new SwitchyardError("CONFIG_INVALID", `retry: ${problems.join("; ")}`);
}

/** A raw message from another producer, as an envelope: bytes as data, its headers as headers. */
function foreignEnvelope(message: WireMessage): Envelope {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) {
    if (!name.startsWith(RESERVED_PREFIX)) headers[name] = value;
  }
  const envelope: Envelope = {
    id: message.id,
    type: FOREIGN_TYPE,
    source: "",
    specversion: "1.0",
    time: new Date().toISOString(),
    dataContentType: BYTES_CONTENT_TYPE,
    headers,
    data: message.body,
  };
  if (message.key !== undefined) envelope.key = message.key;
  return envelope;
}
