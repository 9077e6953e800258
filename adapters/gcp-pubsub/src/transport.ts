import {
  type ClientConfig,
  Duration,
  type Message,
  PubSub,
  type Subscription,
  type Topic,
} from "@google-cloud/pubsub";
import {
  type Capabilities,
  type Delivery,
  type Destination,
  deadLetterQueueName,
  type FaultHeaders,
  type Source,
  type SubscribeOptions,
  SwitchyardError,
  type TopologyEntity,
  type Transport,
  type TransportSubscription,
  type WireMessage,
} from "@switchyard/core";
import { decode, encode, type PubsubMessage } from "./codec.js";
import { Names } from "./names.js";
import type { PubsubOptions } from "./options.js";

export const pubsubCapabilities: Partial<Capabilities> = {
  // deadLetter() publishes to the DLQ topic with the fault attributes and acks; every subscription
  // also carries a native dead-letter policy as a backstop and for deliveryAttempt.
  nativeDeadLetter: true,
  // nack({ delayMs }) sets the ack deadline to the delay (whole seconds, ≤ 600 s) and lets it lapse.
  nativeDelay: true,
  ordering: "key",
  consumerGroups: true,
  replayFromStart: false,
  persistent: true,
  // 10 MB is the service's limit; leave room for the attribute packing's JSON.
  maxMessageBytes: 9 * 1024 * 1024,
  maxHeaders: 512,
  redeliveryCount: true,
  // The emulator lets one streaming subscriber take every message.
  balancedConsumers: false,
  maxDelayMs: 600_000,
};

const ALREADY_EXISTS = 6;
const DEADLINE_EXCEEDED = 4;
const NOT_FOUND = 5;

function grpcCode(error: unknown): number | undefined {
  return typeof error === "object" && error !== null
    ? ((error as { code?: unknown }).code as number)
    : undefined;
}

/** gRPC errors carry the request in places; keep only the status and its text. */
function describe(error: unknown): string {
  if (error instanceof Error) return error.message.split("\n")[0]!;
  return String(error);
}

function transportError(what: string, error: unknown): SwitchyardError {
  return new SwitchyardError("TRANSPORT_ERROR", `pubsub: ${what}: ${describe(error)}`, {
    cause: error,
    details: { grpcCode: grpcCode(error) },
  });
}

function clampAttempts(n: number): number {
  return Math.min(100, Math.max(5, Math.floor(n)));
}

interface ExistingSubscription {
  topic?: string | null;
  enableMessageOrdering?: boolean | null;
  enableExactlyOnceDelivery?: boolean | null;
  deadLetterPolicy?: { deadLetterTopic?: string | null; maxDeliveryAttempts?: number | null } | null;
}

interface SubscriptionSpec {
  topic: string;
  deadLetterTopic?: string;
  maxDeliveryAttempts?: number;
}

export class PubsubTransport implements Transport {
  readonly name = "pubsub";
  readonly capabilities: Partial<Capabilities>;
  readonly client: PubSub;
  readonly names: Names;
  readonly options: PubsubOptions;
  readonly #topics = new Map<string, Topic>();
  readonly #subscriptions = new Set<PubsubSubscription>();
  #closed = false;

  constructor(options: PubsubOptions) {
    this.options = options;
    this.names = new Names(options.prefix);
    this.capabilities = options.ordering ? pubsubCapabilities : { ...pubsubCapabilities, ordering: "none" };
    const config: ClientConfig = { projectId: options.projectId, ...options.clientConfig };
    if (options.emulator) config.apiEndpoint = options.emulator;
    this.client = new PubSub(config);
  }

  /** Fails with a typed error within `connectTimeoutMs` when the service cannot be reached. */
  async connect(): Promise<void> {
    const timeoutMs = this.options.connectTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new SwitchyardError(
              "TRANSPORT_ERROR",
              `pubsub: no answer from ${this.options.emulator ?? "the Pub/Sub service"} within ${timeoutMs} ms (project ${this.options.projectId})`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      await Promise.race([
        this.client
          .getTopics({ pageSize: 1, autoPaginate: false, gaxOpts: { timeout: timeoutMs } })
          .catch((e) => {
            throw transportError(`cannot list topics of project ${this.options.projectId}`, e);
          }),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async provision(entities: TopologyEntity[]): Promise<void> {
    this.#assertOpen();
    for (const entity of entities) {
      if (entity.kind === "topic") {
        await this.#createTopic(this.names.topic(entity.name));
      } else if (entity.kind === "queue") {
        const topic = this.names.queueTopic(entity.name);
        await this.#createTopic(topic);
        const spec: SubscriptionSpec = { topic };
        // A queue's own DLQ has no DLQ of its own: its attempts are counted by the adapter.
        const source: Source = { kind: "queue", name: entity.name, subscription: entity.name };
        if (!entity.name.endsWith(".dlq")) {
          spec.deadLetterTopic = this.names.queueTopic(deadLetterQueueName(source));
          spec.maxDeliveryAttempts = this.options.queueMaxDeliveryAttempts;
          await this.#createTopic(spec.deadLetterTopic);
        }
        await this.#createSubscription(this.names.queueSubscription(entity.name), spec);
      } else {
        const topic = this.names.topic(entity.topic);
        const deadLetterTopic = this.names.queueTopic(entity.deadLetterQueue);
        await this.#createTopic(topic);
        await this.#createTopic(deadLetterTopic);
        await this.#createSubscription(this.names.subscription(entity.topic, entity.name), {
          topic,
          deadLetterTopic,
          maxDeliveryAttempts: clampAttempts(entity.maxAttempts),
        });
      }
    }
  }

  /**
   * Deletes what `provision` made for topology a bus used alone: a queue's subscription, topic and
   * dead-letter topic (the reply queue of `bus.request()`), a subscription (the throwaway one of
   * `switchyard tail`; its dead-letter queue is an entity of its own), a topic. Already gone is fine.
   */
  async unprovision(entities: TopologyEntity[]): Promise<void> {
    this.#assertOpen();
    for (const entity of entities) {
      if (entity.kind === "topic") {
        const topic = this.names.topic(entity.name);
        await this.#ignoreNotFound(`cannot delete topic ${topic}`, () => this.client.topic(topic).delete());
        continue;
      }
      if (entity.kind === "subscription") {
        const subscription = this.names.subscription(entity.topic, entity.name);
        await this.#ignoreNotFound(`cannot delete subscription ${subscription}`, () =>
          this.client.subscription(subscription).delete(),
        );
        continue;
      }
      const source: Source = { kind: "queue", name: entity.name, subscription: entity.name };
      const subscription = this.names.queueSubscription(entity.name);
      await this.#ignoreNotFound(`cannot delete subscription ${subscription}`, () =>
        this.client.subscription(subscription).delete(),
      );
      for (const topic of [
        this.names.queueTopic(entity.name),
        this.names.queueTopic(deadLetterQueueName(source)),
      ]) {
        await this.#ignoreNotFound(`cannot delete topic ${topic}`, () => this.client.topic(topic).delete());
      }
    }
  }

  async #ignoreNotFound(what: string, operation: () => Promise<unknown>): Promise<void> {
    try {
      await operation();
    } catch (error) {
      if (grpcCode(error) !== NOT_FOUND) throw transportError(what, error);
    }
  }

  async #createTopic(id: string): Promise<void> {
    try {
      await this.client.createTopic(id);
    } catch (error) {
      if (grpcCode(error) !== ALREADY_EXISTS) throw transportError(`cannot create topic ${id}`, error);
    }
  }

  async #createSubscription(id: string, spec: SubscriptionSpec): Promise<void> {
    const wanted = {
      ackDeadlineSeconds: this.options.ackDeadlineSeconds,
      enableMessageOrdering: this.options.ordering,
      enableExactlyOnceDelivery: this.options.exactlyOnce,
      ...(spec.deadLetterTopic
        ? {
            deadLetterPolicy: {
              deadLetterTopic: this.client.topic(spec.deadLetterTopic).name,
              maxDeliveryAttempts: spec.maxDeliveryAttempts!,
            },
          }
        : {}),
      ...(this.options.retryPolicy
        ? {
            retryPolicy: {
              minimumBackoff: { seconds: this.options.retryPolicy.minimumBackoffSeconds },
              maximumBackoff: { seconds: this.options.retryPolicy.maximumBackoffSeconds },
            },
          }
        : {}),
    };
    try {
      await this.client.topic(spec.topic).createSubscription(id, wanted);
      return;
    } catch (error) {
      if (grpcCode(error) !== ALREADY_EXISTS) throw transportError(`cannot create subscription ${id}`, error);
    }
    // It exists: it must be what we would have created, or the mapping would silently change.
    let existing: ExistingSubscription;
    try {
      [existing] = (await this.client.subscription(id).getMetadata()) as unknown as [ExistingSubscription];
    } catch (error) {
      throw transportError(`cannot read subscription ${id}`, error);
    }
    const conflicts: string[] = [];
    const topicName = this.client.topic(spec.topic).name;
    if (existing.topic !== topicName) conflicts.push(`topic is ${existing.topic}, expected ${topicName}`);
    if (Boolean(existing.enableMessageOrdering) !== this.options.ordering)
      conflicts.push(`message ordering is ${existing.enableMessageOrdering ? "on" : "off"}`);
    if (Boolean(existing.enableExactlyOnceDelivery) !== this.options.exactlyOnce)
      conflicts.push(`exactly-once delivery is ${existing.enableExactlyOnceDelivery ? "on" : "off"}`);
    const policy = existing.deadLetterPolicy;
    if (wanted.deadLetterPolicy) {
      if (policy?.deadLetterTopic !== wanted.deadLetterPolicy.deadLetterTopic)
        conflicts.push(`dead-letter topic is ${policy?.deadLetterTopic || "unset"}`);
      else if (policy?.maxDeliveryAttempts !== wanted.deadLetterPolicy.maxDeliveryAttempts)
        conflicts.push(
          `maxDeliveryAttempts is ${policy?.maxDeliveryAttempts}, expected ${wanted.deadLetterPolicy.maxDeliveryAttempts}`,
        );
    }
    if (conflicts.length > 0) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        `pubsub subscription ${id} exists with a different configuration: ${conflicts.join("; ")}`,
        { details: { subscription: id, conflicts } },
      );
    }
  }

  #topic(destination: Destination): Topic {
    // Keyed by the Switchyard name, so a publish does not re-encode the Pub/Sub id.
    const key = `${destination.kind}:${destination.name}`;
    let topic = this.#topics.get(key);
    if (!topic) {
      const id =
        destination.kind === "queue"
          ? this.names.queueTopic(destination.name)
          : this.names.topic(destination.name);
      topic = this.client.topic(id, {
        messageOrdering: this.options.ordering,
        batching: this.options.batching,
      });
      leanPublishRequests(this.client, topic);
      this.#topics.set(key, topic);
    }
    return topic;
  }

  publish(destination: Destination, messages: WireMessage[]): Promise<void> {
    try {
      this.#assertOpen();
      // Encode everything first: an over-limit message refuses the batch before anything is sent.
      const encoded = messages.map(encode);
      const topic = this.#topic(destination);
      if (encoded.length === 1) return this.#publishOne(topic, destination, encoded[0]!);
      return Promise.all(encoded.map((message) => this.#publishOne(topic, destination, message))).then(
        () => undefined,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Resolves when the service accepted the message (the client batches them). */
  #publishOne(topic: Topic, destination: Destination, message: PubsubMessage): Promise<void> {
    if (!this.options.ordering) delete message.orderingKey;
    return topic.publishMessage(message).then(
      () => undefined,
      (error: unknown) => {
        // A failed ordered publish pauses its key; resume so one failure does not wedge it.
        if (message.orderingKey) topic.resumePublishing(message.orderingKey);
        const code = grpcCode(error);
        throw transportError(
          `publish to ${destination.kind} ${destination.name} (${topic.name.split("/").pop()}) failed${code === NOT_FOUND ? " (it does not exist)" : ""}`,
          error,
        );
      },
    );
  }

  async subscribe(
    source: Source,
    options: SubscribeOptions,
    deliver: (delivery: Delivery) => void,
  ): Promise<TransportSubscription> {
    this.#assertOpen();
    const id =
      source.kind === "queue"
        ? this.names.queueSubscription(source.name)
        : this.names.subscription(source.name, source.subscription);
    const subscription = new PubsubSubscription(this, source, id, options.prefetch, deliver, options.onError);
    this.#subscriptions.add(subscription);
    try {
      await subscription.open();
    } catch (error) {
      this.#subscriptions.delete(subscription);
      await subscription.close().catch(() => {});
      throw error;
    }
    return {
      stop: () => subscription.stop(),
      close: async () => {
        this.#subscriptions.delete(subscription);
        await subscription.close();
      },
    };
  }

  /** Publishes a dead letter to the source's DLQ (the same topic its dead-letter policy names). */
  async publishDeadLetter(source: Source, message: WireMessage, fault: FaultHeaders): Promise<void> {
    await this.publish({ kind: "queue", name: deadLetterQueueName(source) }, [
      { ...message, headers: { ...message.headers, ...fault } },
    ]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#subscriptions].map((s) => s.close()));
    this.#subscriptions.clear();
    await Promise.allSettled([...this.#topics.values()].map((t) => t.flush()));
    await this.client.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new SwitchyardError("CLOSED", "pubsub transport is closed");
  }
}

type RequestCallback = (error: Error | null, response?: unknown) => void;
interface RequestConfig {
  client: string;
  method: string;
  reqOpts: unknown;
  gaxOpts?: unknown;
}
interface PubsubInternals {
  isOpen: boolean;
  getClient_(
    config: RequestConfig,
    callback: (
      error: Error | null,
      gapic?: Record<string, (req: unknown, opts: unknown, cb: RequestCallback) => void>,
    ) => void,
  ): void;
}

/**
 * The client funnels every publish batch through `PubSub.request`, which deep-copies the request
 * (`extend`) and walks all of it for `{{projectId}}` tokens, every attribute of every message
 * included: about a fifth of the publish path's CPU with Switchyard's seven attributes (profiled, see
 * docs/benchmarks.md), and it rewrites any attribute value that contains `{{projectId}}`. The
 * publisher builds a fresh request per batch and this adapter's topic names are concrete, so
 * neither step is needed: publish batches go straight to the generated client (other calls keep
 * the client's path). Touches `Topic.request` and `PubSub.getClient_` of @google-cloud/pubsub 6.2.
 */
function leanPublishRequests(client: PubSub, topic: Topic): void {
  const internals = client as unknown as PubsubInternals;
  const target = topic as unknown as { request: (config: RequestConfig, callback: RequestCallback) => void };
  const original = target.request;
  if (typeof original !== "function" || typeof internals.getClient_ !== "function") return;
  target.request = (config, callback) => {
    if (config.method !== "publish" || !internals.isOpen) return original(config, callback);
    internals.getClient_(config, (error, gapic) => {
      if (error || !gapic) callback(error ?? new Error("no publisher client"));
      else gapic.publish!(config.reqOpts, config.gaxOpts, callback);
    });
  };
}

/** Internals of @google-cloud/pubsub 6.2 used for nack with a delay (see README). */
interface SubscriberInternals {
  isOpen: boolean;
  _inventory?: { add(message: Message): void; remove(message: Message): void; clear?(): Message[] };
  _modAcks?: {
    numInFlightRequests: number;
    numPendingRequests?: number;
    onDrain(): Promise<void>;
    flush?(reason?: string): Promise<void>;
  };
  modAck(message: Message, seconds: number): Promise<void>;
  modAckWithResponse(message: Message, seconds: number): Promise<unknown>;
  _stream?: {
    _streams?: Array<{ stream?: unknown }>;
    setStreamAckDeadline?(deadline: Duration): void;
    resume?(): void;
  };
  getClient(): Promise<{
    modifyAckDeadline(
      request: { subscription: string; ackIds: string[]; ackDeadlineSeconds: number },
      options: { timeout: number },
    ): Promise<unknown>;
  }>;
}

/** The generated subscriber client as @google-cloud/pubsub 6.2's MessageStream reaches it. */
interface SubscriberGapic {
  initialize(): Promise<unknown>;
  subscriberStub: Promise<{ streamingPull(options: { deadline: number }): unknown }>;
}

/**
 * How long a StreamingPull call of an emulator subscription lives (the client's default: 30 min).
 * The emulator keeps delivering to the streams of a process that died without closing them (a
 * SIGKILL, a cut connection) until their deadline; each message it sends there comes back only when
 * its ack deadline (10 s) lapses, with one more delivery attempt, so after five of them the
 * dead-letter policy takes it without any consumer having seen it, and on an ordered subscription the
 * keys it routes to the dead stream stall (README, "Dead streams"). With a 20 s deadline a dead
 * stream takes messages for at most 20 s, at most three times each; live streams are reopened by the
 * client (DEADLINE_EXCEEDED is retried at once).
 */
const EMULATOR_STREAM_DEADLINE_MS = 20_000;

/** The client's flow control on the emulator, where the subscription keeps `prefetch` itself. */
const EMULATOR_MAX_HELD = 100_000;
const EMULATOR_MAX_HELD_BYTES = 1024 * 1024 * 1024;

/**
 * Gives every StreamingPull call of `subscription` (and of the other subscriptions of its client,
 * which share the generated subscriber client) the deadline `ms`. Touches `Subscriber.getClient` and
 * the generated client's `subscriberStub` of @google-cloud/pubsub 6.2, which MessageStream uses.
 */
function shortStreams(subscription: Subscription, ms: number): void {
  const subscriber = (subscription as unknown as { _subscriber: { getClient(): Promise<unknown> } })
    ._subscriber;
  const getClient = subscriber.getClient.bind(subscriber);
  subscriber.getClient = async () => {
    const client = (await getClient()) as SubscriberGapic & { shortStreams?: boolean };
    if (!client.shortStreams) {
      client.shortStreams = true;
      await client.initialize();
      client.subscriberStub = client.subscriberStub.then((stub) => {
        const streamingPull = stub.streamingPull.bind(stub);
        stub.streamingPull = (options) => streamingPull({ ...options, deadline: Date.now() + ms });
        return stub;
      });
    }
    return client;
  };
}

interface Ticket {
  key: string;
  send?: () => void;
}

class PubsubSubscription {
  readonly #subscription: Subscription;
  /**
   * Settlements wait for their turn per ordering key (receipt order): with exactly-once on an
   * ordered subscription (the service refuses out-of-order acks), and on any ordered subscription
   * of the emulator, which redelivers every later message of a key, acknowledged or not, when an
   * earlier one is acknowledged after them (messages without a key count as one key there; see
   * README, "Connection cuts").
   */
  readonly #ordered: boolean;
  readonly #order = new Map<string, Ticket[]>();
  /** Attempts counted here where the service reports none (no dead-letter policy). */
  readonly #counts = new Map<string, number>();
  #error: unknown;
  #reopenMs = 1000;
  #opened = false;
  #closing: Promise<void> | undefined;
  /**
   * On the emulator the client's flow control is off and `prefetch` is kept here: deliveries handed
   * to the core and not settled yet, and the received messages waiting for one of them to settle
   * (leased by the client meanwhile, nacked by its close). A paused stream leaves what the emulator
   * wrote to it unread, and when the stream ends (its deadline, a cut) those messages come back only
   * after their ack deadline, one delivery attempt later, never having reached a consumer (README,
   * "Dead streams").
   */
  readonly #holding: boolean;
  readonly #held: Delivery[] = [];
  readonly #settled = new WeakSet<Delivery>();
  #unsettled = 0;
  #stopped = false;

  constructor(
    readonly transport: PubsubTransport,
    readonly source: Source,
    readonly id: string,
    readonly prefetch: number,
    readonly deliver: (delivery: Delivery) => void,
    /** Where errors it recovers from go (the core's `onError`); without it they are process warnings. */
    readonly onError?: (error: unknown) => void,
  ) {
    this.#ordered =
      transport.options.ordering &&
      (transport.options.exactlyOnce || transport.options.emulator !== undefined);
    // Not with exactly-once, whose leases and closes work differently (README, "Dead streams").
    this.#holding = transport.options.emulator !== undefined && !transport.options.exactlyOnce;
    this.#subscription = transport.client.subscription(id, {
      flowControl: this.#holding
        ? { maxMessages: EMULATOR_MAX_HELD, maxBytes: EMULATOR_MAX_HELD_BYTES, allowExcessMessages: false }
        : { maxMessages: prefetch, allowExcessMessages: false },
      streamingOptions: { maxStreams: transport.options.maxStreams },
      // Bounded: a close must not wait on unconfirmable acks for the client default of an hour.
      closeOptions: { behavior: "NACK", timeout: Duration.from({ seconds: 10 }) },
    });
    if (this.#holding) shortStreams(this.#subscription, EMULATOR_STREAM_DEADLINE_MS);
  }

  get #internals(): SubscriberInternals {
    return (this.#subscription as unknown as { _subscriber: SubscriberInternals })._subscriber;
  }

  /** Resolves once the streaming pull is open, or rejects with the stream's error. */
  async open(): Promise<void> {
    // A stream the client gave up on once open: the 'close' below opens it again (before, open fails).
    this.#subscription.on("error", (error) => {
      this.#error = error;
      if (this.#opened && !this.#closing) {
        this.#recovered(transportError(`subscription ${this.id} failed; reopening`, error));
      }
    });
    // What the client retries by itself and shows only here: a stream that ended and is opened again,
    // an ack or modAck batch that failed (the service redelivers those messages).
    this.#subscription.on("debug", (debug: { message: string; error?: unknown }) => {
      if (this.#closing || grpcCode(debug.error) === DEADLINE_EXCEEDED) return; // a stream's routine end
      this.#recovered(
        new SwitchyardError(
          "TRANSPORT_ERROR",
          `pubsub: subscription ${this.id}: ${describe(debug.message)}`,
          {
            cause: debug.error,
            details: { grpcCode: grpcCode(debug.error) },
          },
        ),
      );
    });
    this.#subscription.on("message", (message: Message) => this.#onMessage(message));
    // The client gives up on a stream after a non-retryable status (the emulator ends ordered
    // streams with UNKNOWN when its dead-letter policy fires): reopen, so the consumer goes on.
    this.#subscription.on("close", () => {
      if (this.#closing) return;
      const timer = setTimeout(() => {
        if (!this.#closing && !this.#subscription.isOpen) this.#subscription.open();
      }, this.#reopenMs);
      this.#reopenMs = Math.min(30_000, this.#reopenMs * 2);
      timer.unref();
    });
    const deadline = Date.now() + this.transport.options.connectTimeoutMs;
    for (;;) {
      if (this.#error) throw transportError(`cannot open subscription ${this.id}`, this.#error);
      const streams = this.#internals._stream?._streams;
      if (streams && streams.length > 0 && streams.every((s) => s.stream)) {
        this.#opened = true;
        return;
      }
      if (Date.now() > deadline) {
        throw new SwitchyardError("TRANSPORT_ERROR", `pubsub: subscription ${this.id} did not open in time`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  #recovered(error: SwitchyardError): void {
    if (this.onError) this.onError(error);
    else process.emitWarning(error.message, "SwitchyardWarning");
  }

  #onMessage(message: Message): void {
    this.#reopenMs = 1000;
    let attempt = message.deliveryAttempt;
    if (!(attempt > 0)) {
      attempt = (this.#counts.get(message.id) ?? 0) + 1;
      this.#counts.set(message.id, attempt);
      if (this.#counts.size > 10_000) this.#counts.delete(this.#counts.keys().next().value!);
    }
    const wire = decode({
      id: message.id,
      data: message.data,
      attributes: message.attributes ?? {},
      orderingKey: message.orderingKey,
    });
    const exactlyOnce = this.transport.options.exactlyOnce;
    const ticket = this.#ordered ? this.#ticket(message.orderingKey ?? "") : undefined;
    const confirm = (what: string, call: () => Promise<unknown>) =>
      this.#confirm(ticket, what, message.id, call);
    const inTurn = (call: () => unknown) => this.#inTurn(ticket, call);
    const forget = () => this.#counts.delete(message.id);
    const settling = () => this.#settling(delivery);
    const delivery: Delivery = {
      message: wire,
      attempt,
      ack: async () => {
        settling();
        forget();
        await this.#modAcksLanded();
        if (exactlyOnce) await confirm("ack", () => message.ackWithResponse());
        else await inTurn(() => message.ack());
      },
      nack: async (options) => {
        settling();
        const delayMs = options?.delayMs ?? 0;
        if (delayMs <= 0) {
          if (exactlyOnce) await confirm("nack", () => message.nackWithResponse());
          else await inTurn(() => message.nack());
          return;
        }
        if (exactlyOnce) await confirm("delayed nack", () => this.#delay(message, delayMs));
        else await inTurn(() => this.#delay(message, delayMs));
      },
      deadLetter: async (fault) => {
        settling();
        await this.transport.publishDeadLetter(this.source, wire, fault);
        forget();
        if (exactlyOnce) await confirm("ack", () => message.ackWithResponse());
        else await inTurn(() => message.ack());
      },
    };
    if (!this.#holding) this.deliver(delivery);
    else {
      this.#held.push(delivery);
      this.#dispatch();
    }
  }

  /** Hands held messages to the core while fewer than `prefetch` deliveries are unsettled. */
  #dispatch(): void {
    while (!this.#stopped && this.#unsettled < this.prefetch && this.#held.length > 0) {
      this.#unsettled++;
      this.deliver(this.#held.shift()!);
    }
  }

  /** A delivery's first settlement frees its place for the next held message. */
  #settling(delivery: Delivery): void {
    if (!this.#holding || this.#settled.has(delivery)) return;
    this.#settled.add(delivery);
    this.#unsettled--;
    this.#dispatch();
  }

  /**
   * Pub/Sub has no per-message delay: stop leasing the message and set its ack deadline to the
   * delay, so the service redelivers it once the deadline lapses. The client's own modAcks for it
   * (the initial lease) must land first, or they would override ours.
   */
  async #delay(message: Message, delayMs: number): Promise<void> {
    const seconds = Math.min(600, Math.ceil(delayMs / 1000));
    const internals = this.#internals;
    const handled = message as unknown as { _handled: boolean; _handledPromise?: { resolve(): void } };
    handled._handled = true;
    handled._handledPromise?.resolve();
    internals._inventory?.remove(message);
    const queue = internals._modAcks;
    if (queue && queue.numInFlightRequests > 0) {
      await Promise.race([queue.onDrain(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    }
    if (this.transport.options.exactlyOnce) await internals.modAckWithResponse(message, seconds);
    else await internals.modAck(message, seconds);
  }

  /**
   * An ack must not overtake the modAcks the client still has in flight (the receipt modAck and
   * lease extensions): gax retries each RPC on its own, so after a connection cut a modAck can land
   * after the ack of its message, and the emulator then leases the acknowledged message again and
   * redelivers it when that deadline lapses (on an ordered subscription with every later message of
   * its key). Waits for the modAck queue to drain, at most 10 s.
   */
  async #modAcksLanded(): Promise<void> {
    const queue = this.#internals._modAcks;
    if (!queue || queue.numInFlightRequests <= 0) return;
    if ((queue.numPendingRequests ?? 0) > 0) queue.flush?.("ack").catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      queue.onDrain(),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 10_000);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  /** A place in the receipt order of `key`'s messages, for settling them in that order. */
  #ticket(key: string): Ticket {
    const ticket: Ticket = { key };
    const queue = this.#order.get(key);
    if (queue) queue.push(ticket);
    else this.#order.set(key, [ticket]);
    return ticket;
  }

  /**
   * Without exactly-once: runs a settlement once every message received before it on its ordering
   * key was settled (at once when the subscription does not order settlements, or while closing).
   */
  #inTurn(ticket: Ticket | undefined, call: () => unknown): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const send = () => {
        try {
          Promise.resolve(call()).then(() => resolve(), reject);
        } catch (error) {
          reject(error);
        }
      };
      if (!ticket || this.#closing) return send();
      ticket.send = send;
      this.#drain(ticket.key);
    });
  }

  /**
   * Exactly-once: sends a settlement and waits at most `settleTimeoutMs` for the service's
   * confirmation; a refusal or no answer rejects with a typed error (the core reports it through
   * onError, the service redelivers). On an ordered subscription the settlement is sent only once
   * every message received before it on its ordering key was settled: the service answers an
   * out-of-order one with TRANSIENT_FAILURE_UNORDERED_ACK_ID, which the client retries with a
   * backoff doubling to 64 s for up to 10 minutes (README).
   */
  #confirm(
    ticket: Ticket | undefined,
    what: string,
    id: string,
    call: () => Promise<unknown>,
  ): Promise<void> {
    const timeoutMs = this.transport.options.settleTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      const send = () => {
        const timer = setTimeout(() => {
          reject(
            new SwitchyardError(
              "TIMEOUT",
              `pubsub: ${what} of message ${id} on ${this.id} was not confirmed within ${timeoutMs} ms (exactly-once delivery)`,
              { details: { subscription: this.id, messageId: id, settlement: what } },
            ),
          );
        }, timeoutMs);
        call().then(
          () => {
            clearTimeout(timer);
            resolve();
          },
          (error: unknown) => {
            clearTimeout(timer);
            reject(transportError(`${what} of message ${id} on ${this.id} was refused`, error));
          },
        );
      };
      if (!ticket || this.#closing) return send();
      ticket.send = send;
      this.#drain(ticket.key);
    });
  }

  #drain(key: string): void {
    const queue = this.#order.get(key);
    if (!queue) return;
    while (queue.length > 0 && queue[0]!.send) queue.shift()!.send!();
    if (queue.length === 0) this.#order.delete(key);
  }

  /**
   * Before the stream closes. With exactly-once the client asks for a 60 s stream ack deadline, so
   * whatever the service has written onto the stream and the closing client never reads (flow
   * control pauses the stream while the consumer is full) comes back only 60 s later. Lower it to
   * the service's minimum, 10 s (as without exactly-once), and read what is buffered: those
   * messages are leased, held back by flow control and nacked by the client's close. Held
   * deliveries stay settleable; the core nacks any new arrival.
   */
  async stop(): Promise<void> {
    // Held messages stay leased until the close nacks them.
    this.#stopped = true;
    if (!this.transport.options.exactlyOnce) return;
    const stream = this.#internals._stream;
    stream?.setStreamAckDeadline?.(Duration.from({ seconds: 10 }));
    stream?.resume?.();
  }

  /**
   * With exactly-once the client leases a message only once its receipt modAck is confirmed. The
   * client's close flushes those modAcks, and each confirmed one puts its message back into the
   * inventory the close has just cleared and nacked: nobody nacks it, and it sits out the 60 s
   * lease. Catch those adds while closing and nack them directly.
   */
  #catchStragglers(): () => Promise<void> {
    const inventory = this.#internals._inventory;
    if (!this.transport.options.exactlyOnce || !inventory) return async () => {};
    const late: Message[] = [];
    let released = false;
    const add = inventory.add.bind(inventory);
    inventory.add = (message: Message) => {
      if (this.#internals.isOpen) return add(message);
      if (released) void this.#nackDirectly([message]);
      else late.push(message);
    };
    return async () => {
      await new Promise((resolve) => setImmediate(resolve));
      released = true;
      const left = (inventory.clear?.() ?? []).filter(
        (m) => !(m as unknown as { _handled: boolean })._handled,
      );
      await this.#nackDirectly([...late, ...left]);
    };
  }

  async #nackDirectly(messages: Message[]): Promise<void> {
    if (messages.length === 0) return;
    try {
      const client = await this.#internals.getClient();
      await client.modifyAckDeadline(
        {
          subscription: this.#subscription.name,
          ackIds: messages.map((m) => m.ackId),
          ackDeadlineSeconds: 0,
        },
        { timeout: this.transport.options.settleTimeoutMs },
      );
    } catch {
      // Best effort: the service redelivers them when their lease lapses anyway.
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      // Held messages are in the client's inventory: its close nacks them.
      this.#stopped = true;
      this.#held.length = 0;
      // Settlements still waiting for their turn go out now (before the client's queues close).
      for (const queue of this.#order.values()) for (const ticket of queue) ticket.send?.();
      this.#order.clear();
      this.#subscription.removeAllListeners("message");
      const release = this.#catchStragglers();
      await this.#subscription.close();
      this.#subscription.removeAllListeners("error");
      await release();
    })();
    return this.#closing;
  }
}
