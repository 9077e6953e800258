// kafkajs 2.2.4 behind the driver seam. Its idempotent producer allows one request in flight
// per broker, so concurrent publishes are batched above this seam. Only gzip is built in.
import {
  type Admin,
  CompressionTypes,
  type Consumer,
  type IHeaders,
  Kafka,
  type KafkaConfig,
  logLevel,
  type Producer,
  type SASLOptions,
} from "kafkajs";
import type {
  DriverConfig,
  GroupConsumer,
  GroupHandlers,
  GroupOptions,
  KafkaDriver,
  OutgoingRecord,
  PartitionOffsets,
  TopicPartition,
  TopicSpec,
} from "../driver.js";

process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= "1";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function headerEntriesOf(headers: IHeaders | undefined): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  for (const name in headers) {
    const value = headers[name];
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (v === undefined) continue;
      out.push([name, Buffer.isBuffer(v) ? v : Buffer.from(String(v), "utf8")]);
    }
  }
  return out;
}

/** Errors after which the idempotent producer's id or sequence is no use (kafkajs does not recover). */
const LOST_PRODUCER_STATE = new Set([
  "OUT_OF_ORDER_SEQUENCE_NUMBER",
  "UNKNOWN_PRODUCER_ID",
  "INVALID_PRODUCER_EPOCH",
]);

/** True when `error`, or an error it wraps (`cause`), is one of LOST_PRODUCER_STATE. */
export function hasLostProducerState(error: unknown): boolean {
  let current = error as { type?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; current && depth < 5; depth++) {
    if (typeof current.type === "string" && LOST_PRODUCER_STATE.has(current.type)) return true;
    current = current.cause as typeof current;
  }
  return false;
}

class KafkajsGroup implements GroupConsumer {
  readonly #consumer: Consumer;
  readonly #topics: string[];
  #closed = false;

  constructor(kafka: Kafka, options: GroupOptions, handlers: GroupHandlers) {
    this.#topics = options.topics;
    this.#consumer = kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs,
      heartbeatInterval: options.heartbeatIntervalMs,
      rebalanceTimeout: options.rebalanceTimeoutMs,
      maxWaitTimeInMs: options.maxWaitMs,
      allowAutoTopicCreation: false,
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 5_000 },
    });
    const { GROUP_JOIN, REBALANCING, CRASH } = this.#consumer.events;
    this.#consumer.on(GROUP_JOIN, ({ payload }) => {
      handlers.assigned(
        Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
          partitions.map((partition) => ({ topic, partition })),
        ),
      );
    });
    this.#consumer.on(REBALANCING, () => handlers.rebalancing());
    this.#consumer.on(CRASH, ({ payload }) => {
      if (this.#closed) return;
      // restart: kafkajs starts the consumer again by itself.
      if (payload.restart) handlers.recovered(payload.error);
      else handlers.failed(payload.error);
    });
    this.handlers = handlers;
    this.fromBeginning = options.fromBeginning;
  }

  readonly handlers: GroupHandlers;
  readonly fromBeginning: boolean;

  async start(): Promise<void> {
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topics: this.#topics, fromBeginning: this.fromBeginning });
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      partitionsConsumedConcurrently: 1,
      // Records are handed over and the batch returns at once: the fetch position moves on,
      // commits follow the handlers (the adapter commits the acknowledged prefix itself).
      eachBatch: async ({ batch }) => {
        const { topic, partition } = batch;
        for (const m of batch.messages) {
          this.handlers.record({
            topic,
            partition,
            offset: BigInt(m.offset),
            key: m.key,
            value: m.value,
            headerEntries: headerEntriesOf(m.headers),
          });
        }
      },
    });
  }

  pause(): void {
    this.#consumer.pause(this.#topics.map((topic) => ({ topic })));
  }

  resume(): void {
    this.#consumer.resume(this.#topics.map((topic) => ({ topic })));
  }

  async commit(offsets: Array<TopicPartition & { offset: bigint }>): Promise<void> {
    await this.#consumer.commitOffsets(
      offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset.toString() })),
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#consumer.disconnect();
  }
}

export class KafkajsDriver implements KafkaDriver {
  readonly name = "kafkajs";
  readonly #config: DriverConfig;
  readonly #kafka: Kafka;
  readonly #kafkaConfig: KafkaConfig;
  #admin: Admin | undefined;
  #producer: Promise<Producer> | undefined;

  constructor(config: DriverConfig) {
    this.#config = config;
    const kafkaConfig: KafkaConfig = {
      clientId: config.clientId,
      brokers: config.brokers,
      connectionTimeout: config.connectTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      logLevel: logLevel.NOTHING,
      retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 5_000 },
    };
    if (config.ssl !== undefined) kafkaConfig.ssl = config.ssl;
    if (config.sasl) {
      kafkaConfig.sasl = {
        mechanism: config.sasl.mechanism,
        username: config.sasl.username,
        password: config.sasl.password,
      } as SASLOptions;
    }
    this.#kafkaConfig = kafkaConfig;
    this.#kafka = new Kafka(kafkaConfig);
  }

  /**
   * A client for one group member whose lost connections reach `handlers.recovered`: kafkajs retries
   * a failed fetch or heartbeat without an event, and says so only in its log (each client, and so
   * each consumer, has connections of its own).
   */
  #groupClient(handlers: GroupHandlers): Kafka {
    return new Kafka({
      ...this.#kafkaConfig,
      logLevel: logLevel.ERROR,
      logCreator:
        () =>
        ({ namespace, log }) => {
          if (namespace === "Connection" && log.message.startsWith("Connection ")) {
            handlers.recovered(new Error(`${log.message} (${String(log.broker)})`));
          }
        },
    });
  }

  async #adminClient(): Promise<Admin> {
    if (!this.#admin) {
      const admin = this.#kafka.admin();
      await admin.connect();
      this.#admin = admin;
    }
    return this.#admin;
  }

  #producerClient(): Promise<Producer> {
    this.#producer ??= (async () => {
      const producer = this.#kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
      });
      await producer.connect();
      return producer;
    })();
    this.#producer.catch(() => {
      this.#producer = undefined;
    });
    return this.#producer;
  }

  async connect(): Promise<void> {
    const admin = await this.#adminClient();
    await admin.describeCluster();
  }

  /**
   * kafkajs refreshes metadata for every topic a client ever asked about, so concurrent creations
   * with waitForLeaders fail each other while one is still unknown: creations are queued and
   * made one request at a time, each request taking all that waited.
   */
  async deleteTopics(topics: string[]): Promise<void> {
    const admin = await this.#adminClient();
    const existing = new Set(await admin.listTopics());
    const doomed = topics.filter((topic) => existing.has(topic));
    if (doomed.length > 0) await admin.deleteTopics({ topics: doomed });
  }

  createTopics(topics: TopicSpec[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#creating.push({ topics, resolve, reject });
      void this.#createNext();
    });
  }

  readonly #creating: Array<{ topics: TopicSpec[]; resolve(): void; reject(error: unknown): void }> = [];
  #creatingNow = false;

  async #createNext(): Promise<void> {
    if (this.#creatingNow || this.#creating.length === 0) return;
    this.#creatingNow = true;
    const batch = this.#creating.splice(0);
    const specs = new Map(batch.flatMap((b) => b.topics).map((t) => [t.topic, t]));
    try {
      const admin = await this.#adminClient();
      for (let attempt = 1; ; attempt++) {
        try {
          // Resolves false when they exist already; other failures throw.
          await admin.createTopics({
            waitForLeaders: true,
            topics: [...specs.values()].map((t) => ({
              topic: t.topic,
              numPartitions: t.partitions,
              replicationFactor: t.replicationFactor,
              configEntries: Object.entries(t.configs).map(([name, value]) => ({ name, value })),
            })),
          });
          // "Exists already" returns at once, perhaps while another client still creates it:
          // wait until every partition has a leader either way.
          const { topics } = await admin.fetchTopicMetadata({ topics: [...specs.keys()] });
          if (topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) break;
          throw Object.assign(new Error("topics have no leaders yet"), { retriable: true });
        } catch (error) {
          if (attempt >= 40 || !(error as { retriable?: boolean }).retriable) throw error;
          await sleep(Math.min(50 * attempt, 500));
        }
      }
      for (const b of batch) b.resolve();
    } catch (error) {
      for (const b of batch) b.reject(error);
    } finally {
      this.#creatingNow = false;
      void this.#createNext();
    }
  }

  async send(records: OutgoingRecord[]): Promise<void> {
    try {
      await this.#sendOnce(records);
    } catch (error) {
      if (!hasLostProducerState(error)) throw error;
      // kafkajs keeps the idempotent producer's id and sequence numbers after the broker refused
      // them (after a broker restart its sequence can run ahead of what the broker kept), and
      // every later send fails the same way. A new producer gets a new id; the refused batch was
      // not written, so sending it again under that id adds nothing twice.
      await this.#resetProducer();
      await this.#sendOnce(records);
    }
  }

  async #resetProducer(): Promise<void> {
    const producer = this.#producer;
    this.#producer = undefined;
    await producer?.then((p) => p.disconnect()).catch(() => {});
  }

  async #sendOnce(records: OutgoingRecord[]): Promise<void> {
    const producer = await this.#producerClient();
    const byTopic = new Map<string, OutgoingRecord[]>();
    for (const record of records) {
      const list = byTopic.get(record.topic);
      if (list) list.push(record);
      else byTopic.set(record.topic, [record]);
    }
    await producer.sendBatch({
      acks: -1,
      compression: this.#config.compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None,
      topicMessages: [...byTopic].map(([topic, list]) => ({
        topic,
        messages: list.map((r) => {
          const headers: IHeaders = {};
          for (const [name, value] of r.headers) headers[name] = value;
          return r.key === undefined ? { value: r.value, headers } : { key: r.key, value: r.value, headers };
        }),
      })),
    });
  }

  async consume(options: GroupOptions, handlers: GroupHandlers): Promise<GroupConsumer> {
    for (let attempt = 1; ; attempt++) {
      const group = new KafkajsGroup(this.#groupClient(handlers), options, handlers);
      try {
        await group.start();
        return group;
      } catch (error) {
        await group.close().catch(() => {});
        // A topic created a moment ago may not be in every broker's metadata yet.
        if (attempt >= 10 || !(error as { retriable?: boolean }).retriable) throw error;
        await sleep(100 * attempt);
      }
    }
  }

  async close(): Promise<void> {
    const producer = this.#producer;
    const admin = this.#admin;
    this.#producer = undefined;
    this.#admin = undefined;
    await Promise.allSettled([producer?.then((p) => p.disconnect()), admin?.disconnect()]);
  }

  async groupOffsets(groupId: string, topics: string[]): Promise<PartitionOffsets[]> {
    const admin = await this.#adminClient();
    const existing = new Set(await admin.listTopics());
    const names = topics.filter((topic) => existing.has(topic));
    if (names.length === 0) return [];
    const [ends, commits] = await Promise.all([
      Promise.all(names.map(async (topic) => ({ topic, partitions: await admin.fetchTopicOffsets(topic) }))),
      admin.fetchOffsets({ groupId, topics: names }),
    ]);
    const committed = new Map(
      commits.flatMap((t) =>
        t.partitions.map((p) => [`${t.topic}:${p.partition}`, BigInt(p.offset)] as const),
      ),
    );
    return ends.flatMap(({ topic, partitions }) =>
      partitions.map((p) => {
        const offset = committed.get(`${topic}:${p.partition}`);
        return {
          topic,
          partition: p.partition,
          earliest: BigInt(p.low),
          latest: BigInt(p.high),
          ...(offset !== undefined && offset >= 0n ? { committed: offset } : {}),
        };
      }),
    );
  }
}
