import { basename } from "node:path";
import { DEFAULT_URL, loadTransport, parseBusUrl } from "./config.js";
import {
  type BatchHandler,
  type BatchOptions,
  type BusHooks,
  type BusRuntime,
  type Consumer,
  type ConsumerOptions,
  type Handler,
  type Message,
  type Registration,
  RunningConsumer,
} from "./consumer.js";
import { DUAL_VERSIONS } from "./dead-letter.js";
import { DeadLetterQueue } from "./dead-letter-queue.js";
import {
  createEnvelope,
  type Envelope,
  type EnvelopeInput,
  plainEnvelope,
  toWire,
  type WireMessage,
  wireSize,
  wireSizeUpperBound,
} from "./envelope.js";
import { type ErrorCode, isSwitchyardError, redactUrl, SwitchyardError } from "./errors.js";
import type { Instrumentation, InstrumentationScope, Logger } from "./instrumentation.js";
import { type ReplyOptions, RequestClient, type RequestOptions } from "./request-reply.js";
import {
  assertDeclaredVersion,
  checkVersion,
  type InputOf,
  type LatestVersion,
  type MessageType,
  type OutputOf,
  type ValidationResult,
  type VersionMap,
  type VersionOf,
} from "./schema.js";
import {
  type AdapterModule,
  type Capabilities,
  type Destination,
  resolveCapabilities,
  type Source,
  type TopologyEntity,
  type Transport,
} from "./transport.js";

export interface BusOptions {
  /** Broker URL, e.g. `kafka://127.0.0.1:9092`. Default: `SWITCHYARD_URL`, else `memory://`. */
  url?: string;
  /** A ready transport instead of a URL (tests, custom adapters). */
  transport?: Transport;
  /** The adapter module for the URL's scheme, when it cannot be imported by name (bundles). */
  adapter?: AdapterModule;
  /** Passed to the adapter's `createTransport`. */
  adapterOptions?: Record<string, unknown>;
  /** The envelope's `source`. Default: `SWITCHYARD_SOURCE`, else the script name. */
  source?: string;
  /** Types that may be published by name (`publish(topic, "blog.created", …)`). */
  messages?: MessageType<any>[];
  hooks?: BusHooks;
  /** Tracing and metrics (e.g. `otel()` from `@switchyard/opentelemetry`). Absent: no cost. */
  instrumentation?: Instrumentation;
  /** A pino-compatible logger for connect, close, failed settlements and dead letters. Default: silent. */
  logger?: Logger;
  /**
   * Publishes to one destination made together go to the transport as one batch (one broker round
   * trip where the broker batches). `lingerMs` 0 (default) gathers what is published before the
   * current microtask queue runs out — concurrent publishes, or the callers of a batch that just
   * returned — and adds no measurable latency; 1–5 ms makes every batch wait that long for more.
   * `maxMessages` caps one batch (default: the transport's `publishBatchSize`, else 1,000). `false`
   * sends each publish on its own.
   */
  coalesce?: false | { lingerMs?: number; maxMessages?: number };
  /**
   * Name of this bus's reply queue for `request()`. Default: `switchyard-reply-<random>`, unique
   * per bus. Two buses must never share one (each would take the other's replies).
   */
  replyQueue?: string;
}

/** The options of a publish without any (not allocated per call). */
const NO_OPTIONS: PublishOptions = Object.freeze({});

/**
 * Codes a transport raises for one message's content, before it sends any of the batch (see
 * `Transport.publish`): the rest of a coalesced batch can go without that message.
 */
const MESSAGE_REFUSALS = new Set<ErrorCode>([
  "INVALID_HEADER",
  "MESSAGE_TOO_LARGE",
  "TOO_MANY_HEADERS",
  "INVALID_PAYLOAD",
]);

/** Publishes waiting to go out to one destination together. */
interface PendingBatch {
  destination: Destination;
  wires: WireMessage[];
  /** One per publish call: its resolvers and how many of `wires` are its own. */
  callers: Array<{
    count: number;
    envelopes: Envelope[];
    /** What the caller's promise resolves with (the envelope, for a single publish). */
    result: unknown;
    resolve(result: unknown): void;
    reject(error: unknown): void;
  }>;
  /** Cancels the linger timer (the batch went out early: full, or the bus is closing). */
  cancel(): void;
}

export interface PublishOptions<N extends number = number> {
  /** Schema version to publish. Default: the type's latest. */
  version?: N;
  key?: string;
  subject?: string;
  id?: string;
  correlationId?: string;
  causationId?: string;
  /** Where replies go (`bus.request()` sets it to the bus's reply queue). */
  replyTo?: string;
  traceparent?: string;
  tracestate?: string;
  headers?: Record<string, string>;
  source?: string;
  time?: string;
  /**
   * Publish a tombstone for `key` (data must be `null`): on a compacted Kafka topic it deletes the
   * key. Not validated. CAPABILITY_MISSING on transports without `capabilities.tombstones`.
   */
  tombstone?: boolean;
}

type Versions<M> = M extends MessageType<infer V> ? V : never;

/** Declares which versions a handler takes; its data is typed as their union. */
export interface HandlerOptions<V extends VersionMap, N extends VersionOf<V>> {
  versions?: readonly N[];
  /** Name recorded in dead letters. Default: the function's name, else the type. */
  name?: string;
}

/**
 * What a bus was told and has done, for tools that describe an app from its bus (an AsyncAPI
 * document, a topology listing): plain data, a snapshot taken when `bus.describe()` is called.
 */
export interface BusDescription {
  /** The broker URL (may hold credentials: pass it through `redactUrl` before showing it). */
  url: string;
  /** The types registered to be published by name (`BusOptions.messages`). */
  messages: MessageType[];
  /**
   * Every consumer started on this bus (whether still running or not), one per source, in the
   * order `start()` was first called: the types its handlers take, with the versions each
   * handler declared, and whether an `onAny()` handler takes the rest.
   */
  consumers: Array<{
    source: Source;
    handlers: Array<{ type: MessageType; versions: number[]; name: string }>;
    any: boolean;
  }>;
  /**
   * The destinations this bus has published typed messages to so far (`publish`, `send`, their
   * batch and versions forms, `request`), in the order of their first publish, with the types
   * published there. Replies (`ctx.reply`) and untyped publishes (`publishRaw`,
   * `publishEnvelopes`) are not listed. A bus cannot know where it will publish before it does.
   */
  published: Array<{ destination: Destination; messages: MessageType[] }>;
}

const ANY_TYPE: MessageType = {
  type: "*",
  versions: {},
  versionList: [],
  latest: 0,
  dataContentType: "application/json",
  upcast: {},
};

export class ConsumerBuilder {
  readonly #registrations = new Map<string, Registration>();
  #fallback: Registration | undefined;

  constructor(
    readonly bus: Bus,
    readonly source: Source,
    readonly launch: (
      registrations: Map<string, Registration>,
      fallback: Registration | undefined,
      options: ConsumerOptions,
    ) => Promise<Consumer>,
  ) {}

  on<M extends MessageType<any>, N extends VersionOf<Versions<M>> = LatestVersion<Versions<M>>>(
    type: M,
    handler: Handler<OutputOf<Versions<M>, N>>,
  ): this;
  on<M extends MessageType<any>, const N extends VersionOf<Versions<M>>>(
    type: M,
    options: HandlerOptions<Versions<M>, N>,
    handler: Handler<OutputOf<Versions<M>, N>>,
  ): this;
  on(type: MessageType, a: any, b?: any): this {
    const options: HandlerOptions<any, any> = typeof a === "function" ? {} : a;
    const handler: Handler = typeof a === "function" ? a : b;
    if (typeof handler !== "function")
      throw new SwitchyardError("CONFIG_INVALID", "on() needs a handler function");
    return this.#register(type, options, handler);
  }

  /**
   * Like `on()`, but the handler takes the messages of this type in batches (up to
   * `maxMessages`, gathered for at most `maxWaitMs`): each message is still decoded, validated,
   * upcast and settled on its own, and the handler reports the ones that failed with
   * `ctx.fail(message, error)`.
   */
  onBatch<M extends MessageType<any>, N extends VersionOf<Versions<M>> = LatestVersion<Versions<M>>>(
    type: M,
    handler: BatchHandler<OutputOf<Versions<M>, N>>,
  ): this;
  onBatch<M extends MessageType<any>, const N extends VersionOf<Versions<M>>>(
    type: M,
    options: HandlerOptions<Versions<M>, N> & BatchOptions,
    handler: BatchHandler<OutputOf<Versions<M>, N>>,
  ): this;
  onBatch(type: MessageType, a: any, b?: any): this {
    const options: HandlerOptions<any, any> & BatchOptions = typeof a === "function" ? {} : a;
    const handler: BatchHandler = typeof a === "function" ? a : b;
    if (typeof handler !== "function")
      throw new SwitchyardError("CONFIG_INVALID", "onBatch() needs a handler function");
    const maxMessages = options.maxMessages ?? 100;
    const maxWaitMs = options.maxWaitMs ?? 0;
    if (!Number.isInteger(maxMessages) || maxMessages < 1 || !(maxWaitMs >= 0 && maxWaitMs <= 60_000)) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        `onBatch() needs an integer maxMessages ≥ 1 and 0 ≤ maxWaitMs ≤ 60000, got ${maxMessages} and ${maxWaitMs}`,
      );
    }
    const unused: Handler = () => {};
    return this.#register(type, { ...options, name: options.name ?? (handler.name || type.type) }, unused, {
      handler,
      maxMessages,
      maxWaitMs,
    });
  }

  #register(
    type: MessageType,
    options: HandlerOptions<any, any>,
    handler: Handler,
    batch?: Registration["batch"],
  ): this {
    if (this.#registrations.has(type.type)) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        `type "${type.type}" already has a handler on this consumer`,
      );
    }
    const versions = options.versions ? [...options.versions] : [type.latest];
    for (const version of versions) assertDeclaredVersion(type, version);
    this.#registrations.set(type.type, {
      type,
      versions,
      handler,
      name: options.name ?? (handler.name || type.type),
      ...(batch ? { batch } : {}),
    });
    return this;
  }

  /**
   * Takes every message no typed handler takes; data is decoded by content type, not validated.
   * With `foreign: true` it also takes messages that are not CloudEvents at all (another
   * producer's), as type `switchyard.foreign` with the raw body bytes as data, instead of
   * dead-lettering them with reason `decode`.
   */
  onAny(handler: Handler<unknown>, options: { name?: string; foreign?: boolean } = {}): this {
    this.#fallback = {
      type: ANY_TYPE,
      versions: [],
      handler,
      name: options.name ?? (handler.name || "any"),
      ...(options.foreign ? { foreign: true } : {}),
    };
    return this;
  }

  /** Provisions the subscription and starts receiving. */
  async start(options: ConsumerOptions = {}): Promise<Consumer> {
    if (this.#registrations.size === 0 && !this.#fallback) {
      throw new SwitchyardError("CONFIG_INVALID", "a consumer needs at least one handler (on() or onAny())");
    }
    return this.launch(new Map(this.#registrations), this.#fallback, options);
  }
}

export class Bus {
  readonly #options: BusOptions;
  readonly #registry = new Map<string, MessageType<any>>();
  readonly #provisioned = new Map<string, Promise<void>>();
  readonly #done = new Set<string>();
  /** Names of the queues and topics known to exist: a publish checks here without building a key. */
  readonly #ready = { queue: new Set<string>(), topic: new Set<string>() };
  readonly #consumers = new Set<Consumer>();
  /** What describe() reports: consumers started, by source; typed publishes, by destination. */
  readonly #described = {
    consumers: new Map<string, BusDescription["consumers"][number]>(),
    published: {
      queue: new Map<string, Map<string, MessageType>>(),
      topic: new Map<string, Map<string, MessageType>>(),
    },
    order: [] as Destination[],
  };
  readonly #source: string;
  #transport: Promise<Transport> | undefined;
  /** The transport once connected (and until the bus closes). */
  #connected: Transport | undefined;
  #capabilities: Capabilities | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly hooks: BusHooks;
  readonly #runtime: BusRuntime;
  #coalesce: { lingerMs: number; maxMessages: number } | undefined;
  /** Batches gathering, by destination kind and name. */
  readonly #pending = { queue: new Map<string, PendingBatch>(), topic: new Map<string, PendingBatch>() };
  readonly #instrumentation: Instrumentation | undefined;
  #scope: InstrumentationScope | undefined;
  /** Outstanding `request()`s and the reply queue, created by the first request. */
  #requests: RequestClient | undefined;

  constructor(options: BusOptions = {}) {
    this.#options = options;
    this.hooks = options.hooks ?? {};
    this.#instrumentation = options.instrumentation;
    this.#source =
      options.source ?? process.env.SWITCHYARD_SOURCE ?? basename(process.argv[1] ?? "switchyard");
    for (const type of options.messages ?? []) this.#registry.set(type.type, type);
    if (options.coalesce !== false) {
      const lingerMs = options.coalesce?.lingerMs ?? 0;
      const maxMessages = options.coalesce?.maxMessages ?? 1000;
      if (!(lingerMs >= 0 && lingerMs <= 1000) || !Number.isInteger(maxMessages) || maxMessages < 1) {
        throw new SwitchyardError(
          "CONFIG_INVALID",
          `coalesce needs 0 ≤ lingerMs ≤ 1000 and an integer maxMessages ≥ 1, got ${lingerMs} and ${maxMessages}`,
        );
      }
      this.#coalesce = { lingerMs, maxMessages };
    }
    if (!options.transport) parseBusUrl(this.url); // fail fast on a bad URL
    this.#runtime = {
      transport: () => this.transport(),
      capabilities: () => this.capabilities(),
      ensure: (entities) => this.ensure(entities),
      hooks: this.hooks,
      service: this.#source,
      instrumentation: options.instrumentation,
      logger: options.logger,
      register: (consumer) => this.#consumers.add(consumer),
      unregister: (consumer) => this.#consumers.delete(consumer),
      reply: (request, type, data, options) => this.#reply(request, type, data, options),
    };
  }

  get url(): string {
    return this.#options.url ?? process.env.SWITCHYARD_URL ?? DEFAULT_URL;
  }

  /** Connects (once) and returns the transport. */
  transport(): Promise<Transport> {
    if (this.#closed) return Promise.reject(new SwitchyardError("CLOSED", "the bus is closed"));
    this.#transport ??= (async () => {
      const transport =
        this.#options.transport ??
        (await loadTransport(
          parseBusUrl(this.url),
          this.#options.adapterOptions ?? {},
          this.#options.adapter,
        ));
      try {
        await transport.connect?.();
      } catch (error) {
        this.#options.logger?.error(
          { transport: transport.name, url: redactUrl(this.url), error: String(error) },
          "connect failed",
        );
        throw error;
      }
      this.#capabilities = resolveCapabilities(transport.capabilities);
      this.#scope = { system: transport.name };
      // The transport's preferred batch size, unless the application chose one.
      const batchSize = transport.publishBatchSize;
      const chosen = this.#options.coalesce;
      if (this.#coalesce && batchSize !== undefined && !(chosen && chosen.maxMessages !== undefined)) {
        this.#coalesce = { ...this.#coalesce, maxMessages: batchSize };
      }
      this.#connected = transport;
      this.#options.logger?.info({ transport: transport.name, url: redactUrl(this.url) }, "connected");
      return transport;
    })();
    return this.#transport;
  }

  async capabilities(): Promise<Capabilities> {
    await this.transport();
    return this.#capabilities!;
  }

  // ---- producing ----

  publish<M extends MessageType<any>, N extends VersionOf<Versions<M>> = LatestVersion<Versions<M>>>(
    topic: string,
    type: M | string,
    data: InputOf<Versions<M>, N>,
    options?: PublishOptions<N>,
  ): Promise<Envelope>;
  /** A tombstone: deletes `key` on a compacted topic (see `PublishOptions.tombstone`). */
  publish<M extends MessageType<any>>(
    topic: string,
    type: M | string,
    data: null,
    options: PublishOptions & { key: string; tombstone: true },
  ): Promise<Envelope>;
  publish(
    topic: string,
    type: MessageType | string,
    data: unknown,
    options?: PublishOptions,
  ): Promise<Envelope> {
    return this.#publishTyped({ kind: "topic", name: topic }, type, data, options);
  }

  /**
   * Sends `data` to `queue` and waits for the responder's `ctx.reply()`: resolves with the reply
   * (its envelope, `data` validated against `replyType` when given), rejects with TIMEOUT after
   * `timeoutMs` (default 30 s). The first request creates this bus's reply queue.
   */
  request<
    M extends MessageType<any>,
    R extends MessageType<any>,
    N extends VersionOf<Versions<M>> = LatestVersion<Versions<M>>,
  >(
    queue: string,
    type: M | string,
    data: InputOf<Versions<M>, N>,
    options: RequestOptions<N> & { replyType: R },
  ): Promise<Message<OutputOf<Versions<R>, LatestVersion<Versions<R>>>>>;
  /** Without `replyType` the reply's data is whatever its content type decodes to, unchecked. */
  request<M extends MessageType<any>, N extends VersionOf<Versions<M>> = LatestVersion<Versions<M>>>(
    queue: string,
    type: M | string,
    data: InputOf<Versions<M>, N>,
    options?: RequestOptions<N>,
  ): Promise<Message<unknown>>;
  request(
    queue: string,
    type: MessageType | string,
    data: unknown,
    options?: RequestOptions,
  ): Promise<Message> {
    if (this.#closed) return Promise.reject(new SwitchyardError("CLOSED", "the bus is closed"));
    validateName(queue);
    this.#requests ??= new RequestClient(
      {
        transport: () => this.transport(),
        ensure: (entities) => this.ensure(entities),
        send: (to, requestType, requestData, publishOptions) =>
          this.#publishTyped({ kind: "queue", name: to }, requestType, requestData, publishOptions),
        logger: this.#options.logger,
      },
      this.#options.replyQueue,
    );
    return this.#requests.request(queue, type, data, options);
  }

  /** ctx.reply(): the reply goes to the request's reply queue, linked to it by its ids. */
  #reply(request: Envelope, type: MessageType, data: unknown, options: ReplyOptions = {}): Promise<Envelope> {
    if (request.replyTo === undefined) {
      return Promise.reject(
        new SwitchyardError(
          "NOT_A_REQUEST",
          `message ${request.id} ("${request.type}") has no reply-to: it was not sent by request()`,
        ),
      );
    }
    const replyOptions: PublishOptions = {
      ...options,
      causationId: request.id,
      correlationId: request.correlationId ?? request.id,
    };
    if (request.traceparent !== undefined) replyOptions.traceparent = request.traceparent;
    if (request.tracestate !== undefined) replyOptions.tracestate = request.tracestate;
    return this.#publishTyped({ kind: "queue", name: request.replyTo }, type, data, replyOptions, false);
  }

  send<M extends MessageType<any>, N extends VersionOf<Versions<M>> = LatestVersion<Versions<M>>>(
    queue: string,
    type: M | string,
    data: InputOf<Versions<M>, N>,
    options?: PublishOptions<N>,
  ): Promise<Envelope> {
    return this.#publishTyped({ kind: "queue", name: queue }, type, data, options);
  }

  /**
   * Publishes many messages of one type in one transport call (one round trip on brokers that
   * batch). All are validated first: if one is invalid, none is sent.
   */
  publishBatch<M extends MessageType<any>, N extends VersionOf<Versions<M>> = LatestVersion<Versions<M>>>(
    topic: string,
    type: M,
    items: ReadonlyArray<{ data: InputOf<Versions<M>, N>; options?: PublishOptions<N> }>,
  ): Promise<Envelope[]> {
    return this.#publishBatch({ kind: "topic", name: topic }, type, items);
  }

  sendBatch<M extends MessageType<any>, N extends VersionOf<Versions<M>> = LatestVersion<Versions<M>>>(
    queue: string,
    type: M,
    items: ReadonlyArray<{ data: InputOf<Versions<M>, N>; options?: PublishOptions<N> }>,
  ): Promise<Envelope[]> {
    return this.#publishBatch({ kind: "queue", name: queue }, type, items);
  }

  async #publishBatch(
    destination: Destination,
    type: MessageType,
    items: ReadonlyArray<{ data: unknown; options?: PublishOptions }>,
  ): Promise<Envelope[]> {
    if (items.length === 0) return [];
    this.#notePublished(destination, type);
    const prepared = settledAll(items.map((item) => this.#prepare(type, item.data, item.options ?? {})));
    const envelopes = prepared instanceof Promise ? await prepared : prepared;
    await this.#send(destination, envelopes);
    return envelopes;
  }

  /**
   * Publishes one event in several versions side by side (a schema migration). Each consumer
   * handles exactly one of them, the best its declared versions allow, and skips the rest.
   */
  publishVersions<M extends MessageType<any>>(
    topic: string,
    type: M,
    dataByVersion: { [N in VersionOf<Versions<M>>]?: InputOf<Versions<M>, N> },
    options?: Omit<PublishOptions, "version" | "id">,
  ): Promise<Envelope[]> {
    return this.#publishVersions({ kind: "topic", name: topic }, type, dataByVersion, options);
  }

  sendVersions<M extends MessageType<any>>(
    queue: string,
    type: M,
    dataByVersion: { [N in VersionOf<Versions<M>>]?: InputOf<Versions<M>, N> },
    options?: Omit<PublishOptions, "version" | "id">,
  ): Promise<Envelope[]> {
    return this.#publishVersions({ kind: "queue", name: queue }, type, dataByVersion, options);
  }

  /** Publishes an untyped envelope (bytes, foreign types); no schema validation. */
  async publishRaw(destination: Destination, input: EnvelopeInput): Promise<Envelope> {
    const envelope = createEnvelope(input, { source: this.#source });
    await this.#send(destination, [envelope]);
    return envelope;
  }

  /**
   * Publishes envelopes built earlier (by `prepareEnvelope`, or read back from a store such as an
   * outbox) in one transport call, in order, keeping their ids, times and sources: the wire is
   * what the original publish would have sent. No schema validation (it happened when they were built).
   */
  async publishEnvelopes(destination: Destination, inputs: readonly EnvelopeInput[]): Promise<Envelope[]> {
    validateName(destination.name);
    const envelopes = inputs.map((input) => createEnvelope(input, { source: this.#source }));
    if (envelopes.length > 0) await this.#send(destination, envelopes);
    return envelopes;
  }

  /**
   * One typed publish. Not an async function on purpose: with a synchronous validator the common
   * case returns the coalesced batch's own promise (see #sendOne), with no async frames between the
   * caller and the batch.
   */
  #publishTyped(
    destination: Destination,
    typeOrName: MessageType | string,
    data: unknown,
    options: PublishOptions = NO_OPTIONS,
    described = true,
  ): Promise<Envelope> {
    let prepared: Envelope | Promise<Envelope>;
    try {
      const type = this.#resolveType(typeOrName);
      if (described) this.#notePublished(destination, type);
      prepared = options.tombstone
        ? this.#tombstone(type, data, options)
        : this.#prepare(type, data, options);
    } catch (error) {
      return Promise.reject(error);
    }
    return prepared instanceof Promise
      ? prepared.then((envelope) => this.#sendOne(destination, envelope))
      : this.#sendOne(destination, prepared);
  }

  /**
   * Sends one envelope and resolves with it. Once connected and without publish instrumentation,
   * the wire goes straight into the coalesced batch (after the destination's first provisioning);
   * otherwise through #send.
   */
  #sendOne(destination: Destination, envelope: Envelope): Promise<Envelope> {
    const transport = this.#connected;
    const coalesce = this.#coalesce;
    if (transport === undefined || coalesce === undefined || this.#instrumentation?.publish !== undefined) {
      return this.#send(destination, [envelope]).then(() => envelope);
    }
    let wire: WireMessage;
    try {
      validateName(destination.name);
      wire = this.#wire(transport, envelope, undefined);
    } catch (error) {
      return Promise.reject(error);
    }
    const provisioning = this.#ensureDestination(destination);
    if (provisioning) {
      return provisioning.then(
        () => this.#gather(destination, [envelope], [wire], coalesce, envelope) as Promise<Envelope>,
      );
    }
    return this.#gather(destination, [envelope], [wire], coalesce, envelope) as Promise<Envelope>;
  }

  async #publishVersions(
    destination: Destination,
    type: MessageType,
    dataByVersion: Record<number, unknown>,
    options: PublishOptions = {},
  ): Promise<Envelope[]> {
    const versions = Object.keys(dataByVersion)
      .map(Number)
      .sort((a, b) => a - b);
    if (versions.length === 0)
      throw new SwitchyardError("CONFIG_INVALID", "publishVersions needs at least one version");
    this.#notePublished(destination, type);
    // Validate every version before anything is sent: all or nothing.
    const prepared = settledAll(
      versions.map((version) => this.#prepare(type, dataByVersion[version], { ...options, version })),
    );
    const envelopes = prepared instanceof Promise ? await prepared : prepared;
    await this.#send(destination, envelopes, { [DUAL_VERSIONS]: versions.join(",") });
    return envelopes;
  }

  /** Two map lookups per publish once the destination and type were seen. */
  #notePublished(destination: Destination, type: MessageType): void {
    const byName = this.#described.published[destination.kind];
    let types = byName.get(destination.name);
    if (types === undefined) {
      if (!isValidName(destination.name)) return; // refused by the publish itself
      types = new Map();
      byName.set(destination.name, types);
      this.#described.order.push({ kind: destination.kind, name: destination.name });
    }
    if (!types.has(type.type)) types.set(type.type, type);
  }

  /** What this bus was told and has published so far (see `BusDescription`). */
  describe(): BusDescription {
    const described = this.#described;
    return {
      url: this.url,
      messages: [...this.#registry.values()],
      consumers: [...described.consumers.values()].map((consumer) => ({
        source: { ...consumer.source },
        handlers: consumer.handlers.map((handler) => ({ ...handler, versions: [...handler.versions] })),
        any: consumer.any,
      })),
      published: described.order.map((destination) => ({
        destination: { ...destination },
        messages: [...described.published[destination.kind].get(destination.name)!.values()],
      })),
    };
  }

  #resolveType(typeOrName: MessageType | string): MessageType {
    if (typeof typeOrName !== "string") return typeOrName;
    const type = this.#registry.get(typeOrName);
    if (!type) {
      throw new SwitchyardError(
        "UNKNOWN_MESSAGE_TYPE",
        `unknown message type "${typeOrName}"; register it with createBus({ messages: [...] })`,
        { details: { type: typeOrName } },
      );
    }
    return type;
  }

  /** A tombstone's envelope: a key, null data, no validation (there is nothing to validate). */
  #tombstone(type: MessageType, data: unknown, options: PublishOptions): Envelope {
    if (data !== null) {
      throw new SwitchyardError("INVALID_PAYLOAD", `a tombstone's data must be null, got ${typeof data}`);
    }
    if (typeof options.key !== "string" || options.key.length === 0) {
      throw new SwitchyardError("CONFIG_INVALID", "a tombstone needs the key it deletes (options.key)");
    }
    const { version, tombstone, ...fields } = options;
    const schemaVersion = version ?? type.latest;
    assertDeclaredVersion(type, schemaVersion);
    return createEnvelope(
      {
        ...fields,
        type: type.type,
        schemaVersion,
        dataContentType: type.dataContentType,
        data: null,
        tombstone: true,
      },
      { source: this.#source },
    );
  }

  /**
   * Validates and builds the envelope; synchronous when the validator is (zod, valibot, arktype
   * usually are), so concurrent publishes reach the batch in call order and pay no extra turn.
   */
  #prepare(type: MessageType, data: unknown, options: PublishOptions): Envelope | Promise<Envelope> {
    const version = options.version ?? type.latest;
    assertDeclaredVersion(type, version);
    let result: ReturnType<typeof checkVersion>;
    try {
      result = checkVersion(type, version, data);
    } catch (error) {
      throw validatorThrew(type, version, error);
    }
    return result instanceof Promise
      ? result.then(
          (valid) => this.#envelope(type, version, valid, options),
          (error: unknown) => {
            throw validatorThrew(type, version, error);
          },
        )
      : this.#envelope(type, version, result, options);
  }

  #envelope(type: MessageType, version: number, result: ValidationResult, options: PublishOptions): Envelope {
    if (!result.ok) {
      throw new SwitchyardError(
        "VALIDATION_FAILED",
        `"${type.type}" v${version} is invalid: ${result.message}`,
        {
          details: { type: type.type, version },
        },
      );
    }
    if (options === NO_OPTIONS) {
      return plainEnvelope(type.type, version, type.dataContentType, result.value, this.#source);
    }
    // The options are the envelope's optional fields (plus `version`, which createEnvelope ignores).
    const input: EnvelopeInput = Object.assign({}, options as Omit<PublishOptions, "version">, {
      type: type.type,
      schemaVersion: version,
      dataContentType: type.dataContentType,
      data: result.value,
    });
    return createEnvelope(input, { source: this.#source });
  }

  #send(
    destination: Destination,
    envelopes: Envelope[],
    extraHeaders?: Record<string, string>,
  ): Promise<void> {
    try {
      validateName(destination.name);
    } catch (error) {
      return Promise.reject(error);
    }
    const instrumentation = this.#instrumentation;
    if (instrumentation?.publish) {
      return (this.#scope ? Promise.resolve() : this.transport()).then(() =>
        instrumentation.publish!(this.#scope!, destination, envelopes, () =>
          this.#sendNow(destination, envelopes, extraHeaders),
        ),
      );
    }
    return this.#sendNow(destination, envelopes, extraHeaders);
  }

  async #sendNow(
    destination: Destination,
    envelopes: Envelope[],
    extraHeaders?: Record<string, string>,
  ): Promise<void> {
    // Once connected and provisioned, a publish costs no extra awaits (each one is a microtask
    // turn per message on the hot path).
    const transport = this.#connected ?? (await this.transport());
    const wires: WireMessage[] = new Array(envelopes.length);
    for (let i = 0; i < envelopes.length; i++) wires[i] = this.#wire(transport, envelopes[i]!, extraHeaders);
    // The first publish to a destination provisions it; afterwards there is no await before the
    // batch, so concurrent publishes are gathered in call order (and so keep per-key order).
    const provisioning = this.#ensureDestination(destination);
    if (provisioning) await provisioning;
    if (this.#coalesce) {
      await this.#gather(destination, envelopes, wires, this.#coalesce, undefined);
      return;
    }
    await transport.publish(destination, wires);
    for (const envelope of envelopes) this.hooks.onPublish?.({ destination, envelope });
  }

  /** An envelope's wire message for `transport`, refused here if the broker could not take it. */
  #wire(
    transport: Transport,
    envelope: Envelope,
    extraHeaders: Record<string, string> | undefined,
  ): WireMessage {
    const capabilities = this.#capabilities!;
    const wire = toWire(envelope, extraHeaders, transport.contentMode ?? "binary");
    checkLimits(wire, capabilities, transport.name);
    if (wire.tombstone && !capabilities.tombstones) {
      throw new SwitchyardError(
        "CAPABILITY_MISSING",
        `${transport.name} cannot store tombstones (no compacted topics); message ${wire.id} not sent`,
      );
    }
    return wire;
  }

  /** Resolves once the destination exists (at once after the first time). */
  #ensureDestination(destination: Destination): Promise<void> | undefined {
    const ready = this.#ready[destination.kind];
    if (ready.has(destination.name)) return undefined;
    const entity: TopologyEntity = { kind: destination.kind, name: destination.name };
    if (!this.#done.has(entityId(entity))) return this.ensure([entity]);
    ready.add(destination.name);
    return undefined;
  }

  /**
   * Adds one publish to its destination's batch; resolves (or rejects) with the batch. A publish
   * call's messages stay together and in order, so per-key order is kept. With `lingerMs` 0 the
   * batch goes out at the end of the current microtask queue: publishes made in one synchronous
   * run — or resumed together, like the callers of a batch that just returned — share it, and a
   * sequential publisher waits for nothing measurable. With `lingerMs` > 0 it waits that long.
   */
  #gather(
    destination: Destination,
    envelopes: Envelope[],
    wires: WireMessage[],
    coalesce: { lingerMs: number; maxMessages: number },
    result: unknown,
  ): Promise<unknown> {
    const pending = this.#pending[destination.kind];
    let batch = pending.get(destination.name);
    if (batch && batch.wires.length + wires.length > coalesce.maxMessages) {
      void this.#flush(batch);
      batch = undefined;
    }
    if (!batch) {
      const created: PendingBatch = { destination, wires: [], callers: [], cancel: () => {} };
      if (coalesce.lingerMs > 0) {
        const timer = setTimeout(() => void this.#flush(created), coalesce.lingerMs);
        created.cancel = () => clearTimeout(timer);
      } else {
        // #flush ignores a batch that went out already (full, or the bus closed).
        queueMicrotask(() => void this.#flush(created));
      }
      pending.set(destination.name, created);
      batch = created;
    }
    const gathering = batch;
    const published = new Promise<unknown>((resolve, reject) => {
      for (const wire of wires) gathering.wires.push(wire);
      gathering.callers.push({ count: wires.length, envelopes, result, resolve, reject });
    });
    return published;
  }

  /** Sends a gathered batch; the returned promise settles with it and never rejects. */
  #flush(batch: PendingBatch): Promise<void> {
    const { destination, callers } = batch;
    const pending = this.#pending[destination.kind];
    if (pending.get(destination.name) !== batch) return Promise.resolve(); // went out already
    pending.delete(destination.name);
    batch.cancel();
    const transport = this.#connected;
    const sent = transport
      ? transport.publish(destination, batch.wires)
      : Promise.reject(new SwitchyardError("CLOSED", "the bus is closed"));
    return sent.then(
      () => {
        for (const caller of callers) {
          caller.resolve(caller.result);
          for (const envelope of caller.envelopes) this.hooks.onPublish?.({ destination, envelope });
        }
      },
      // The broker refused the batch (or the connection dropped): every publish in it fails, so
      // none is reported as sent when it may not have been.
      (error: unknown) => {
        if (callers.length > 1 && isSwitchyardError(error) && MESSAGE_REFUSALS.has(error.code)) {
          return this.#sendEach(destination, batch);
        }
        for (const caller of callers) caller.reject(error);
      },
    );
  }

  /**
   * A coalesced batch the transport refused for one message's content (before sending any of it):
   * the callers are unrelated publishes, so each goes again on its own, in call order (per-key
   * order), and only the one with the bad message fails.
   */
  async #sendEach(destination: Destination, batch: PendingBatch): Promise<void> {
    let offset = 0;
    for (const caller of batch.callers) {
      const wires = batch.wires.slice(offset, offset + caller.count);
      offset += caller.count;
      const transport = this.#connected;
      try {
        if (!transport) throw new SwitchyardError("CLOSED", "the bus is closed");
        await transport.publish(destination, wires);
        caller.resolve(caller.result);
        for (const envelope of caller.envelopes) this.hooks.onPublish?.({ destination, envelope });
      } catch (error) {
        caller.reject(error);
      }
    }
  }

  // ---- consuming ----

  /** A subscription (consumer group) on a topic: every subscription gets every message. */
  subscribe(topic: string, subscription: string): ConsumerBuilder {
    return this.#builder({ kind: "topic", name: topic, subscription });
  }

  /** A queue's consumers compete: each message goes to one of them. */
  consume(queue: string): ConsumerBuilder {
    return this.#builder({ kind: "queue", name: queue, subscription: queue });
  }

  #builder(source: Source): ConsumerBuilder {
    validateName(source.name);
    validateName(source.subscription);
    return new ConsumerBuilder(this, source, async (registrations, fallback, options) => {
      this.#noteConsumer(source, registrations, fallback);
      const consumer = new RunningConsumer(this.#runtime, source, registrations, fallback, options);
      return consumer.start();
    });
  }

  /** A second start() on one source (another instance of a consumer) adds the handlers it lacks. */
  #noteConsumer(
    source: Source,
    registrations: Map<string, Registration>,
    fallback: Registration | undefined,
  ) {
    const id = JSON.stringify([source.kind, source.name, source.subscription]);
    let consumer = this.#described.consumers.get(id);
    if (!consumer) {
      consumer = { source: { ...source }, handlers: [], any: false };
      this.#described.consumers.set(id, consumer);
    }
    for (const registration of registrations.values()) {
      if (consumer.handlers.some((handler) => handler.type.type === registration.type.type)) continue;
      const { type, versions, name } = registration;
      consumer.handlers.push({ type, versions: [...versions], name });
    }
    if (fallback) consumer.any = true;
  }

  /** The dead-letter queue of a topic subscription (or of a queue, with `{ queue }`). */
  deadLetters(topic: string, subscription: string): DeadLetterQueue;
  deadLetters(target: { queue: string }): DeadLetterQueue;
  deadLetters(a: string | { queue: string }, subscription?: string): DeadLetterQueue {
    const source: Source =
      typeof a === "string"
        ? { kind: "topic", name: a, subscription: subscription! }
        : { kind: "queue", name: a.queue, subscription: a.queue };
    return new DeadLetterQueue(this, source);
  }

  /**
   * The backlog of a topic subscription (or of a queue, with `{ queue }`): messages published to
   * it and not settled yet, as the broker counts them (approximate on most brokers). `undefined`
   * when the transport does not report it (see `Transport.backlog`) or the source does not exist.
   */
  backlog(topic: string, subscription: string): Promise<number | undefined>;
  backlog(target: { queue: string }): Promise<number | undefined>;
  async backlog(a: string | { queue: string }, subscription?: string): Promise<number | undefined> {
    const source: Source =
      typeof a === "string"
        ? { kind: "topic", name: a, subscription: subscription! }
        : { kind: "queue", name: a.queue, subscription: a.queue };
    validateName(source.name);
    validateName(source.subscription);
    const transport = await this.transport();
    return transport.backlog ? transport.backlog(source) : undefined;
  }

  /** Creates topology once per bus; adapters treat existing entities as success. */
  async ensure(entities: TopologyEntity[]): Promise<void> {
    const transport = await this.transport();
    if (!transport.provision) {
      for (const entity of entities) this.#done.add(entityId(entity));
      return;
    }
    // Fast path for the publish loop: everything here was provisioned already.
    if (entities.length === 1 && this.#done.has(entityId(entities[0]!))) return;
    await Promise.all(
      entities.map((entity) => {
        const id = entityId(entity);
        let pending = this.#provisioned.get(id);
        if (!pending) {
          pending = transport.provision!([entity]);
          this.#provisioned.set(id, pending);
          pending.then(
            () => this.#done.add(id),
            () => this.#provisioned.delete(id),
          );
        }
        return pending;
      }),
    );
  }

  /** Stops every consumer (in-flight handlers finish and settle), then closes the transport. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      // Batches still gathering go out now, before the transport closes.
      const gathering = [...this.#pending.queue.values(), ...this.#pending.topic.values()];
      await Promise.all(gathering.map((batch) => this.#flush(batch)));
      await Promise.all([...this.#consumers].map((consumer) => consumer.stop()));
      // After the consumers: a responder on this bus may still be replying while it drains.
      await this.#requests?.close();
      const transport = this.#transport;
      this.#closed = true;
      this.#connected = undefined;
      if (transport) {
        const connected = await transport;
        await connected.close();
        this.#options.logger?.info({ transport: connected.name, url: redactUrl(this.url) }, "closed");
      }
    })();
    return this.#closing;
  }

  get closed(): boolean {
    return this.#closed;
  }
}

export function createBus(options: BusOptions | string = {}): Bus {
  const bus = new Bus(typeof options === "string" ? { url: options } : options);
  return bus;
}

/** The envelopes, awaited only where a validator was asynchronous. */
function settledAll(prepared: Array<Envelope | Promise<Envelope>>): Envelope[] | Promise<Envelope[]> {
  return prepared.some((p) => p instanceof Promise) ? Promise.all(prepared) : (prepared as Envelope[]);
}

/** A validator that threw instead of returning issues: nothing is sent, and the cause is kept. */
function validatorThrew(type: MessageType, version: number, error: unknown): SwitchyardError {
  return new SwitchyardError(
    "VALIDATION_FAILED",
    `"${type.type}" v${version} could not be validated: its validator threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
    { cause: error, details: { type: type.type, version } },
  );
}

function entityId(entity: TopologyEntity): string {
  return entity.kind === "subscription" ? JSON.stringify(entity) : `${entity.kind}:${entity.name}`;
}

function isValidName(name: string): boolean {
  return typeof name === "string" && name.length > 0 && name.length <= 200;
}

function validateName(name: string): void {
  if (!isValidName(name)) {
    throw new SwitchyardError("CONFIG_INVALID", `"${name}" is not a valid name (1–200 characters)`);
  }
}

function checkLimits(wire: WireMessage, capabilities: Capabilities, transport: string): void {
  let headers = 0;
  for (const _ in wire.headers) headers++;
  if (headers > capabilities.maxHeaders) {
    throw new SwitchyardError(
      "TOO_MANY_HEADERS",
      `message ${wire.id} has ${headers} headers; ${transport} allows ${capabilities.maxHeaders}`,
    );
  }
  if (wireSizeUpperBound(wire) <= capabilities.maxMessageBytes) return;
  const size = wireSize(wire);
  if (size > capabilities.maxMessageBytes) {
    throw new SwitchyardError(
      "MESSAGE_TOO_LARGE",
      `message ${wire.id} is ${size} bytes; ${transport} allows ${capabilities.maxMessageBytes}`,
      { details: { size, limit: capabilities.maxMessageBytes } },
    );
  }
}

export type { Message };
