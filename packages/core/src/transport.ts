import type { ContentMode, WireMessage } from "./envelope.js";

/**
 * What a broker can do, as data. The core and the conformance suite read these to choose a code
 * path or a test case; adapters override only what differs from `defaultCapabilities`, so adding a
 * capability never breaks an adapter.
 */
export interface Capabilities {
  /** Deliveries carry `deadLetter()`, which moves the message to the DLQ with our fault headers. */
  nativeDeadLetter: boolean;
  /** `nack({ delayMs })` is honoured by the broker (else the adapter emulates it, e.g. by waiting). */
  nativeDelay: boolean;
  /** How per-key order is kept: by partition, by ordering key, by message group, or not at all. */
  ordering: "partition" | "key" | "group" | "none";
  /** Several named subscriptions (consumer groups) on one topic, each with competing consumers. */
  consumerGroups: boolean;
  /** A subscription created after a publish still receives it (Kafka, HTTP feeds). */
  replayFromStart: boolean;
  /** Messages survive a broker restart. */
  persistent: boolean;
  /** Largest message (body plus headers) the broker accepts, in bytes. */
  maxMessageBytes: number;
  /** Most headers one message may carry (after the adapter's packing, if any). */
  maxHeaders: number;
  /** The broker reports the delivery attempt (else the adapter counts it in a header). */
  redeliveryCount: boolean;
  /** Competing consumers in one subscription really share the load (an emulator may not). */
  balancedConsumers: boolean;
  /** Upper bound of `nack({ delayMs })` the adapter can honour. */
  maxDelayMs: number;
  /**
   * The transport stores tombstones (`WireMessage.tombstone`: no value at all), which delete a key
   * on a compacted topic (Kafka). Without it the core refuses `publish(…, { tombstone: true })`.
   */
  tombstones: boolean;
  /**
   * A received wire message's `key` is its ordering key (the envelope's `partitionkey`; Kafka's
   * record key): the core then orders messages by it without decoding them, and decodes a message
   * only when a handler slot is free for it.
   */
  keyOnWire: boolean;
}

export const defaultCapabilities: Capabilities = {
  nativeDeadLetter: false,
  nativeDelay: false,
  ordering: "none",
  consumerGroups: true,
  replayFromStart: false,
  persistent: true,
  maxMessageBytes: 256 * 1024,
  maxHeaders: 64,
  redeliveryCount: false,
  balancedConsumers: true,
  maxDelayMs: 15 * 60 * 1000,
  tombstones: false,
  keyOnWire: false,
};

export function resolveCapabilities(partial: Partial<Capabilities> | undefined): Capabilities {
  return { ...defaultCapabilities, ...partial };
}

/** Where messages go: a queue (point-to-point) or a topic (fan-out to subscriptions). */
export interface Destination {
  kind: "queue" | "topic";
  name: string;
}

/**
 * Where messages are read from. For a topic, `subscription` names the consumer group; for a queue
 * it equals the queue name (all consumers of a queue compete).
 */
export interface Source extends Destination {
  subscription: string;
}

/** Topology a transport creates before use. Creating what exists already is not an error. */
export type TopologyEntity =
  | { kind: "queue"; name: string }
  | { kind: "topic"; name: string }
  | { kind: "subscription"; topic: string; name: string; deadLetterQueue: string; maxAttempts: number };

/** Fault headers the core attaches to a dead letter (see dead-letter.ts). */
export type FaultHeaders = Record<string, string>;

/**
 * One received message. The transport guarantees at most `prefetch` unsettled deliveries per
 * subscription; the core settles each exactly once. A delivery may be a class instance (its
 * methods on the prototype, as the memory and Kafka adapters' are): code that wraps one delegates
 * to it rather than spreading it.
 */
export interface Delivery {
  message: WireMessage;
  /** 1 on first delivery. */
  attempt: number;
  ack(): Promise<void>;
  /** Return the message for redelivery, not before `delayMs`. */
  nack(options?: { delayMs?: number }): Promise<void>;
  /** Present when `capabilities.nativeDeadLetter`: move to the DLQ with these extra headers. */
  deadLetter?(fault: FaultHeaders): Promise<void>;
  /**
   * Optional: headers the adapter wants on this message's dead letter (e.g. where it was first
   * read). Called only when the core dead-letters the message, so a delivery pays nothing for it.
   */
  originHeaders?(): Record<string, string>;
}

export interface TransportSubscription {
  /**
   * Optional: stop fetching new messages while unsettled deliveries stay settleable (e.g. AMQP
   * basic.cancel). The core calls it first on shutdown and before releasing browsed dead letters,
   * so released messages are not handed straight back to the same consumer.
   */
  stop?(): Promise<void>;
  /** Release the consumer. Called after in-flight deliveries were settled. */
  close(): Promise<void>;
}

export interface SubscribeOptions {
  /** Most unsettled deliveries at once. */
  prefetch: number;
  /**
   * Optional: where the subscription reports a transport error it recovers from by itself (a
   * failed receive it sends again, a settlement it retries): the core passes it to the `onError`
   * hook (attempt 0, `willRetry: true`) and its logger. Errors that end the subscription or fail a
   * settlement still reject as before.
   */
  onError?(error: unknown): void;
}

/**
 * The contract an adapter implements: a broker's I/O and its mapping of the wire message.
 * Retries, DLQ routing, validation, idempotency and concurrency live in the core, once.
 */
export interface Transport {
  /** Short name used in errors and logs, e.g. `kafka`. */
  readonly name: string;
  readonly capabilities: Partial<Capabilities>;
  /**
   * How the core encodes envelopes for this transport (CloudEvents content mode). Default `binary`
   * (attributes as `ce_*` headers). `structured` puts the whole event in the body with one
   * `content-type` header: far cheaper where a client pays per header (Kafka). Deliveries may
   * arrive in either mode; the core reads both.
   */
  readonly contentMode?: ContentMode;
  /**
   * Optional: the most publishes one `publish()` call should carry; the bus's coalescing closes a
   * batch there unless `coalesce.maxMessages` says otherwise (default 1,000). A transport that
   * writes each message on its own and awaits each one's confirmation (RabbitMQ) gains nothing from
   * a large batch and loses pipelining: a batch settles with its slowest confirm, and the publishers
   * waiting on it send nothing meanwhile, while several smaller batches settle one after another.
   */
  readonly publishBatchSize?: number;
  connect?(): Promise<void>;
  provision?(entities: TopologyEntity[]): Promise<void>;
  /**
   * Optional: deletes topology a bus created for itself alone (the reply queue of
   * `bus.request()`), called on close. Absent: it stays on the broker. Deleting what is already
   * gone is not an error.
   */
  unprovision?(entities: TopologyEntity[]): Promise<void>;
  /**
   * Publish a batch to one destination; resolves once the broker accepted all of it. A message the
   * broker cannot hold (a header name too long, too large) is refused with INVALID_HEADER,
   * MESSAGE_TOO_LARGE or TOO_MANY_HEADERS before any of the batch is sent: the core then sends the
   * other publishes it had gathered into the batch on their own.
   */
  publish(destination: Destination, messages: WireMessage[]): Promise<void>;
  /**
   * Optional: where the dead letters of `source` are read when the broker keeps them itself (e.g. a
   * Service Bus `$DeadLetterQueue` sub-queue), as a source to pass to `subscribe()`. Absent or
   * `undefined`: the queue named `deadLetterQueueName(source)`, which the core provisions.
   */
  deadLetterSource?(source: Source): Source | undefined;
  subscribe(
    source: Source,
    options: SubscribeOptions,
    deliver: (delivery: Delivery) => void,
  ): Promise<TransportSubscription>;
  /**
   * Optional: the backlog of `source` as the broker counts it — messages published to it and not
   * settled yet (waiting, held by a consumer, or waiting for a delayed redelivery), e.g. Kafka's
   * end offsets minus the group's committed offsets, SQS's `ApproximateNumberOfMessages*`.
   * `undefined` when the broker cannot tell (the subscription does not exist, no count is
   * exposed). Read by `bus.backlog()` and consumer-lag gauges, never on the hot path; implement it
   * only where the broker reports the count (browsing a queue to count it is not a backlog).
   */
  backlog?(source: Source): Promise<number | undefined>;
  close(): Promise<void>;
}

/** How an adapter module exposes itself to `createBus({ url })`. */
export interface AdapterModule {
  /** URL schemes it serves, e.g. `["kafka"]`. */
  schemes?: readonly string[];
  createTransport(url: URL, options: Record<string, unknown>): Transport | Promise<Transport>;
}

/** Name of the dead-letter queue of a source, the same on every broker unless configured. */
export function deadLetterQueueName(source: Source): string {
  return source.kind === "queue" ? `${source.name}.dlq` : `${source.name}.${source.subscription}.dlq`;
}
