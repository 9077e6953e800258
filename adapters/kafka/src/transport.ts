import {
  type Capabilities,
  type ContentMode,
  type Delivery,
  type Destination,
  type Source,
  type SubscribeOptions,
  SwitchyardError,
  type TopologyEntity,
  type Transport,
  type TransportSubscription,
  type WireMessage,
} from "@switchyard/core";
import type { KafkaDriver, OutgoingRecord, PartitionOffsets } from "./driver.js";
import { KafkajsDriver } from "./drivers/kafkajs.js";
import { PlatformaticDriver } from "./drivers/platformatic.js";
import { assertTopicName, recordBytes, toRecord } from "./mapping.js";
import {
  assertKeyedForCompaction,
  type KafkaConfig,
  type KafkaOptions,
  parseKafkaConfig,
  topicConfigs,
} from "./options.js";
import { KafkaSubscription } from "./subscription.js";

/** What Kafka gives (see README: why each value). */
export function kafkaCapabilities(config: Pick<KafkaConfig, "maxMessageBytes" | "startFrom">) {
  return {
    nativeDeadLetter: false, // dead letters are records on the `<…>.dlq` topic, written by the core
    nativeDelay: false, // emulated: a retry topic per group, with the due time in a header
    ordering: "partition", // one key → one partition → read in order by one member
    consumerGroups: true,
    replayFromStart: config.startFrom === "earliest", // a new group starts at the earliest offset
    persistent: true,
    maxMessageBytes: config.maxMessageBytes,
    maxHeaders: 1024, // Kafka limits bytes, not headers
    redeliveryCount: false, // counted by the adapter in a header of the retry copy
    balancedConsumers: true,
    maxDelayMs: 24 * 60 * 60 * 1000,
    tombstones: true, // a null record value; compacted topics (options.topics) delete the key
    keyOnWire: true, // the record key: what Kafka partitions, and so orders, by
  } satisfies Partial<Capabilities>;
}

export function createDriver(config: KafkaConfig): KafkaDriver {
  return config.driver === "kafkajs" ? new KafkajsDriver(config) : new PlatformaticDriver(config);
}

interface Pending {
  records: OutgoingRecord[];
  bytes: number;
  resolve(): void;
  reject(error: unknown): void;
}

/** Concurrent publishes share produce requests: one in flight, the rest gather behind it. */
class Batcher {
  readonly #pending: Pending[] = [];
  #inFlight = false;
  #scheduled = false;

  constructor(
    readonly driver: KafkaDriver,
    readonly maxBytes: number,
  ) {}

  send(records: OutgoingRecord[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const bytes = records.reduce((sum, r) => sum + recordBytes(r), 0);
      this.#pending.push({ records, bytes, resolve, reject });
      // Wait for the publishes made in the same turn of the event loop, then send them together.
      if (!this.#scheduled && !this.#inFlight) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#kick();
        });
      }
    });
  }

  #kick(): void {
    if (this.#inFlight || this.#pending.length === 0) return;
    const batch: Pending[] = [];
    let bytes = 0;
    // A produce request carries one record batch per partition, and Kafka limits each to the
    // topic's max.message.bytes: cap the whole request at that (a single large message goes alone).
    while (this.#pending.length > 0) {
      const next = this.#pending[0]!;
      if (batch.length > 0 && bytes + next.bytes > this.maxBytes) break;
      batch.push(this.#pending.shift()!);
      bytes += next.bytes;
    }
    this.#inFlight = true;
    this.driver
      .send(batch.flatMap((p) => p.records))
      .then(
        () => {
          for (const p of batch) p.resolve();
        },
        (error: unknown) => {
          for (const p of batch) p.reject(error);
        },
      )
      .finally(() => {
        this.#inFlight = false;
        this.#kick();
      });
  }
}

/** Switchyard over Kafka: queues and subscriptions are consumer groups on topics. */
export class KafkaTransport implements Transport {
  readonly name = "kafka";
  readonly config: KafkaConfig;
  readonly capabilities: Partial<Capabilities>;
  readonly contentMode: ContentMode;
  readonly driver: KafkaDriver;
  readonly #batcher: Batcher;
  readonly #topics = new Map<string, Promise<void>>();
  readonly #subscriptions = new Set<KafkaSubscription>();
  #connected: Promise<void> | undefined;
  #closed = false;

  get #secrets(): string[] {
    return this.config.sasl ? [this.config.sasl.password] : [];
  }

  constructor(config: KafkaConfig, driver: KafkaDriver = createDriver(config)) {
    this.config = config;
    this.driver = driver;
    this.capabilities = kafkaCapabilities(config);
    this.contentMode = config.contentMode;
    this.#batcher = new Batcher(driver, config.maxMessageBytes);
  }

  connect(): Promise<void> {
    this.#connected ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${this.config.connectTimeoutMs} ms`)),
          this.config.connectTimeoutMs,
        );
      });
      try {
        await Promise.race([this.driver.connect(), timeout]);
      } catch (cause) {
        this.#connected = undefined;
        throw new SwitchyardError(
          "TRANSPORT_ERROR",
          `kafka: cannot reach ${this.config.brokers.join(",")} (${this.config.driver} driver): ${describe(cause, this.#secrets)}`,
          { cause, details: { brokers: this.config.brokers, driver: this.config.driver } },
        );
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.#connected;
  }

  async provision(entities: TopologyEntity[]): Promise<void> {
    this.#assertOpen();
    const topics: string[] = [];
    for (const entity of entities) {
      if (entity.kind === "subscription")
        topics.push(retryTopicName({ kind: "topic", name: entity.topic, subscription: entity.name }));
      else topics.push(entity.name);
    }
    await Promise.all(topics.map((topic) => this.ensureTopic(topic)));
  }

  /**
   * Deletes what `provision` made: a queue's topic and its retry topic, a topic, a subscription's
   * retry topic (the request-reply queue of a closing bus comes here). The consumer groups stay:
   * Kafka drops an empty group's offsets after `offsets.retention.minutes`.
   */
  async unprovision(entities: TopologyEntity[]): Promise<void> {
    this.#assertOpen();
    if (!this.driver.deleteTopics) return;
    const topics: string[] = [];
    for (const entity of entities) {
      if (entity.kind === "subscription")
        topics.push(retryTopicName({ kind: "topic", name: entity.topic, subscription: entity.name }));
      else if (entity.kind === "queue")
        topics.push(
          entity.name,
          retryTopicName({ kind: "queue", name: entity.name, subscription: entity.name }),
        );
      else topics.push(entity.name);
    }
    for (const topic of topics) this.#topics.delete(topic);
    try {
      await this.driver.deleteTopics(topics);
    } catch (cause) {
      throw new SwitchyardError(
        "TRANSPORT_ERROR",
        `kafka: cannot delete topics ${topics.join(", ")}: ${describe(cause, this.#secrets)}`,
        { cause },
      );
    }
  }

  /** Creates a topic once per transport (partitions, replication and limits from the config). */
  ensureTopic(topic: string): Promise<void> {
    assertTopicName(topic);
    let pending = this.#topics.get(topic);
    if (!pending) {
      pending = this.driver
        .createTopics([
          {
            topic,
            partitions: this.config.partitions,
            replicationFactor: this.config.replicationFactor,
            configs: topicConfigs(this.config, topic),
          },
        ])
        .catch((cause: unknown) => {
          this.#topics.delete(topic);
          throw new SwitchyardError(
            "TRANSPORT_ERROR",
            `kafka: cannot create topic "${topic}": ${describe(cause, this.#secrets)}`,
            {
              cause,
            },
          );
        });
      this.#topics.set(topic, pending);
    }
    return pending;
  }

  async publish(destination: Destination, messages: WireMessage[]): Promise<void> {
    this.#assertOpen();
    assertTopicName(destination.name);
    if (messages.length === 0) return;
    assertKeyedForCompaction(this.config, destination.name, messages);
    await this.send(messages.map((message) => toRecord(destination.name, message)));
  }

  /** Produces records through the shared batching producer; errors become TRANSPORT_ERROR. */
  async send(records: OutgoingRecord[]): Promise<void> {
    try {
      await this.#batcher.send(records);
    } catch (cause) {
      throw new SwitchyardError(
        "TRANSPORT_ERROR",
        `kafka: publishing to "${records[0]?.topic}" failed: ${describe(cause, this.#secrets)}`,
        { cause },
      );
    }
  }

  async subscribe(
    source: Source,
    options: SubscribeOptions,
    deliver: (delivery: Delivery) => void,
  ): Promise<TransportSubscription> {
    this.#assertOpen();
    assertTopicName(source.name);
    const retryTopic = retryTopicName(source);
    await Promise.all([this.ensureTopic(source.name), this.ensureTopic(retryTopic)]);
    const subscription = new KafkaSubscription({
      driver: this.driver,
      groupId: this.config.groupPrefix + groupName(source),
      topic: source.name,
      retryTopic,
      prefetch: Math.max(1, options.prefetch),
      fromBeginning: this.config.startFrom === "earliest",
      sessionTimeoutMs: this.config.sessionTimeoutMs,
      heartbeatIntervalMs: this.config.heartbeatIntervalMs,
      rebalanceTimeoutMs: this.config.rebalanceTimeoutMs,
      maxWaitMs: this.config.maxWaitMs,
      maxBytesPerPartition: this.config.maxBytesPerPartition,
      commitIntervalMs: this.config.commitIntervalMs,
      send: (record) => this.send([record]),
      deliver,
      recovered: (doing, cause) =>
        options.onError?.(
          new SwitchyardError(
            "TRANSPORT_ERROR",
            `kafka: group "${groupName(source)}", ${doing}: ${describe(cause, this.#secrets)}`,
            { cause },
          ),
        ),
    });
    try {
      await subscription.start();
    } catch (cause) {
      await subscription.close().catch(() => {});
      throw new SwitchyardError(
        "TRANSPORT_ERROR",
        `kafka: cannot join group "${groupName(source)}": ${describe(cause, this.#secrets)}`,
        { cause },
      );
    }
    this.#subscriptions.add(subscription);
    return {
      stop: () => subscription.stop(),
      close: async () => {
        this.#subscriptions.delete(subscription);
        await subscription.close();
      },
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#subscriptions].map((s) => s.close()));
    this.#subscriptions.clear();
    await this.driver.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new SwitchyardError("CLOSED", "kafka: the transport is closed");
  }

  /**
   * The consumer lag of the source's group, on its topic and its retry topic: per partition, the
   * end offset minus the group's committed offset (a group that never committed starts at the
   * earliest or the latest offset, as `startFrom` says). `undefined` when the topic does not exist.
   */
  async backlog(source: Source): Promise<number | undefined> {
    this.#assertOpen();
    if (!this.driver.groupOffsets) return undefined;
    let partitions: PartitionOffsets[];
    try {
      const group = this.config.groupPrefix + groupName(source);
      partitions = await this.driver.groupOffsets(group, [source.name, retryTopicName(source)]);
    } catch (cause) {
      throw new SwitchyardError(
        "TRANSPORT_ERROR",
        `kafka: cannot read the offsets of group "${groupName(source)}": ${describe(cause, this.#secrets)}`,
        { cause },
      );
    }
    if (!partitions.some((p) => p.topic === source.name)) return undefined;
    let lag = 0n;
    for (const p of partitions) {
      const unset = this.config.startFrom === "earliest" ? p.earliest : p.latest;
      const from = p.committed === undefined || p.committed < p.earliest ? unset : p.committed;
      if (p.latest > from) lag += p.latest - from;
    }
    return Number(lag);
  }
}

/** The consumer group of a source: the queue's name, or `<topic>.<subscription>`. */
export function groupName(source: Source): string {
  return source.kind === "queue" ? source.name : `${source.name}.${source.subscription}`;
}

/** Where nacked messages of a group wait for their redelivery: `<group>.retry`. */
export function retryTopicName(source: Source): string {
  return `${groupName(source)}.retry`;
}

/** A driver error as text for our messages: nested causes included, user info and secrets masked. */
export function describe(error: unknown, secrets: readonly string[] = []): string {
  const parts: string[] = [];
  const visit = (e: unknown, depth: number) => {
    if (depth > 3 || parts.length > 4) return;
    const message = e instanceof Error ? e.message : String(e);
    if (message && !parts.includes(message)) parts.push(message);
    for (const inner of (e as { errors?: unknown[] })?.errors ?? []) visit(inner, depth + 1);
  };
  visit(error, 0);
  let text = parts.join(": ").replace(/\/\/[^\s/@]*@/g, "//***@");
  for (const secret of secrets) if (secret) text = text.split(secret).join("***");
  return text.slice(0, 500);
}

/** `kafka://host:9092[,host:9092]?driver=…` plus options (options win). */
export function createTransport(url: URL, options: Record<string, unknown> = {}): KafkaTransport {
  return new KafkaTransport(parseKafkaConfig(url, options as KafkaOptions));
}
