// @platformatic/kafka behind the driver seam. Pitfalls handled here (see BROKERS.md): the stream
// starts at 'latest' unless told otherwise, and autocommit commits before any handler ran; we
// use mode 'committed' with an 'earliest' (or 'latest') fallback and commit ourselves.
import {
  Admin,
  type ConnectionOptions,
  Consumer,
  type GroupAssignment,
  type Message,
  type MessagesStream,
  ProduceAcks,
  Producer,
  type SASLOptions,
} from "@platformatic/kafka";
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
import { headerBytes } from "../mapping.js";

const TOPIC_ALREADY_EXISTS = 36;

function brokersOf(config: DriverConfig) {
  return config.brokers.map((b) => {
    const i = b.lastIndexOf(":");
    return { host: b.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(b.slice(i + 1)) };
  });
}

function connectionOptions(config: DriverConfig): ConnectionOptions & {
  clientId: string;
  bootstrapBrokers: { host: string; port: number }[];
} {
  const options: ConnectionOptions & {
    clientId: string;
    bootstrapBrokers: { host: string; port: number }[];
  } = {
    clientId: config.clientId,
    bootstrapBrokers: brokersOf(config),
    connectTimeout: config.connectTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
  };
  if (config.ssl) options.tls = config.ssl === true ? {} : config.ssl;
  if (config.sasl) {
    options.sasl = {
      mechanism: config.sasl.mechanism.toUpperCase() as SASLOptions["mechanism"],
      username: config.sasl.username,
      password: config.sasl.password,
    };
  }
  return options;
}

function assignmentOf(assignments: GroupAssignment[] | null | undefined): TopicPartition[] {
  return (assignments ?? []).flatMap((a) => a.partitions.map((partition) => ({ topic: a.topic, partition })));
}

class PlatformaticGroup implements GroupConsumer {
  readonly #consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  readonly #options: GroupOptions;
  readonly #handlers: GroupHandlers;
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  #paused = false;
  #closed = false;
  #restartTimer: NodeJS.Timeout | undefined;

  constructor(config: DriverConfig, options: GroupOptions, handlers: GroupHandlers) {
    this.#options = options;
    this.#handlers = handlers;
    this.#consumer = new Consumer({
      ...connectionOptions(config),
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs,
      heartbeatInterval: options.heartbeatIntervalMs,
      rebalanceTimeout: options.rebalanceTimeoutMs,
      maxWaitTime: options.maxWaitMs,
      autocommit: false,
      retries: Number.MAX_SAFE_INTEGER,
      // The client retries a failed request (a fetch, a heartbeat, a commit) without an event that
      // says why; the delay it asks for is the one place the error is seen.
      retryDelay: (_client, _operation, _attempt, _retries, error) => {
        this.#recovered(error);
        return 250;
      },
    });
    this.#consumer.on("consumer:group:join", (payload) => {
      this.#handlers.assigned(assignmentOf(payload.assignments ?? this.#consumer.assignments));
    });
    this.#consumer.on("consumer:group:rebalance", () => this.#handlers.rebalancing());
    // A failed rejoin after a heartbeat ('error') is tried again on the next one.
    this.#consumer.on("error", (error) => this.#recovered(error));
  }

  async start(): Promise<void> {
    const stream = await this.#consumer.consume({
      topics: this.#options.topics,
      mode: "committed",
      fallbackMode: this.#options.fromBeginning ? "earliest" : "latest",
      autocommit: false,
      maxWaitTime: this.#options.maxWaitMs,
      maxBytesPerPartition: this.#options.maxBytesPerPartition,
      sessionTimeout: this.#options.sessionTimeoutMs,
      heartbeatInterval: this.#options.heartbeatIntervalMs,
      rebalanceTimeout: this.#options.rebalanceTimeoutMs,
    });
    this.#stream = stream;
    this.#handlers.assigned(assignmentOf(this.#consumer.assignments));
    // Pulled, not flowing: records are read while this member has room (pause() stops reading), so
    // the stream's own buffer holds back the fetch loop and nothing is paused or resumed per fetch.
    // The client's message is an IncomingRecord already (topic, partition, offset, key, value,
    // headerEntries): handed over as it is.
    stream.on("readable", () => this.#read(stream));
    stream.on("error", (error) => this.#restart(stream, error));
    stream.on("close", () => this.#restart(stream, undefined));
  }

  /** A stream that died (a broker restart, a fenced member) is replaced; the group stays. */
  #restart(stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>, error: unknown): void {
    if (this.#closed || stream !== this.#stream) return;
    this.#stream = undefined;
    this.#recovered(error ?? new Error("the message stream closed; opening a new one"));
    const attempt = (delayMs: number) => {
      this.#restartTimer = setTimeout(() => {
        if (this.#closed) return;
        this.start().catch((failed: unknown) => {
          this.#recovered(failed);
          attempt(Math.min(delayMs * 2, 5_000));
        });
      }, delayMs);
    };
    attempt(200);
  }

  #recovered(error: unknown): void {
    if (!this.#closed) this.#handlers.recovered(error);
  }

  #read(stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>): void {
    while (!this.#paused && stream === this.#stream) {
      const message: Message<Buffer, Buffer, Buffer, Buffer> | null = stream.read();
      if (message === null) return;
      this.#handlers.record(message);
    }
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    // What the stream buffered meanwhile raises no new 'readable' event: read it now.
    if (this.#stream) this.#read(this.#stream);
  }

  async commit(offsets: Array<TopicPartition & { offset: bigint }>): Promise<void> {
    await this.#consumer.commit({
      offsets: offsets.map((o) => ({
        topic: o.topic,
        partition: o.partition,
        offset: o.offset,
        leaderEpoch: -1,
      })),
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#restartTimer);
    const stream = this.#stream;
    this.#stream = undefined;
    await stream?.close().catch(() => {});
    await this.#consumer.close(true);
  }
}

export class PlatformaticDriver implements KafkaDriver {
  readonly name = "platformatic";
  readonly #config: DriverConfig;
  #admin: Admin | undefined;
  #producer: Producer<Buffer, Buffer, Buffer, Buffer> | undefined;

  constructor(config: DriverConfig) {
    this.#config = config;
  }

  get #adminClient(): Admin {
    this.#admin ??= new Admin({ ...connectionOptions(this.#config), retries: 2 });
    return this.#admin;
  }

  get #producerClient(): Producer<Buffer, Buffer, Buffer, Buffer> {
    this.#producer ??= new Producer({
      ...connectionOptions(this.#config),
      idempotent: true,
      acks: ProduceAcks.ALL,
      compression: this.#config.compression,
      retries: 10,
      retryDelay: 250,
    });
    return this.#producer;
  }

  async connect(): Promise<void> {
    await this.#adminClient.metadata({ topics: [] });
  }

  /**
   * Deletes those of `topics` that exist. A DeleteTopics the broker refuses for a topic it lists (in
   * CI a loaded broker refused a retry topic made moments before with a protocol error, after the
   * client's own three tries) is tried again on what is still listed, for a few seconds: what is
   * gone meanwhile counts as deleted.
   */
  async deleteTopics(topics: string[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const existing = new Set(await this.#adminClient.listTopics());
      const doomed = topics.filter((topic) => existing.has(topic));
      if (doomed.length === 0) return;
      try {
        await this.#adminClient.deleteTopics({ topics: doomed });
        return;
      } catch (error) {
        if (attempt >= 8) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2_000)));
      }
    }
  }

  async createTopics(topics: TopicSpec[]): Promise<void> {
    for (const spec of topics) {
      try {
        await this.#adminClient.createTopics({
          topics: [spec.topic],
          partitions: spec.partitions,
          replicas: spec.replicationFactor,
          configs: Object.entries(spec.configs).map(([name, value]) => ({ name, value })),
        });
      } catch (error) {
        if (!alreadyExists(error)) throw error;
      }
    }
    await this.#leadersOf(topics.map((t) => t.topic));
  }

  /**
   * Waits until the broker's metadata has a leader for every partition: a CreateTopics reply can
   * come before the broker serves the topic, and a produce then fails with "Unknown topic" (seen on
   * a freshly started broker), which the client does not retry.
   */
  async #leadersOf(topics: string[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const metadata = await this.#adminClient.metadata({ topics, forceUpdate: true });
        const ready = topics.every((name) => {
          const topic = metadata.topics.get(name);
          return (
            topic !== undefined && topic.partitions.length > 0 && topic.partitions.every((p) => p.leader >= 0)
          );
        });
        if (ready) return;
      } catch (error) {
        if (attempt >= 40) throw error;
      }
      if (attempt >= 40) return; // the produce's own error will say what is wrong
      await new Promise((resolve) => setTimeout(resolve, Math.min(25 * attempt, 250)));
    }
  }

  async send(records: OutgoingRecord[]): Promise<void> {
    await this.#producerClient.send({
      messages: records.map((r) => {
        const message: { topic: string; key?: Buffer; value: Buffer; headers: Map<Buffer, Buffer> } = {
          topic: r.topic,
          // null is a tombstone: the client's types say Buffer, and it writes null as Kafka's null.
          value: r.value as Buffer,
          headers: new Map(r.headers.map(([name, value]) => [headerBytes(name), value])),
        };
        if (r.key !== undefined) message.key = r.key;
        return message;
      }),
    });
  }

  async consume(options: GroupOptions, handlers: GroupHandlers): Promise<GroupConsumer> {
    const group = new PlatformaticGroup(this.#config, options, handlers);
    try {
      await group.start();
    } catch (error) {
      await group.close().catch(() => {});
      throw error;
    }
    return group;
  }

  async close(): Promise<void> {
    const producer = this.#producer;
    const admin = this.#admin;
    this.#producer = undefined;
    this.#admin = undefined;
    await Promise.allSettled([producer?.close(true), admin?.close()]);
  }

  async groupOffsets(groupId: string, topics: string[]): Promise<PartitionOffsets[]> {
    const admin = this.#adminClient;
    const existing = new Set(await admin.listTopics());
    const names = topics.filter((topic) => existing.has(topic));
    if (names.length === 0) return [];
    const metadata = await admin.metadata({ topics: names, autocreateTopics: false });
    const partitions = names.map((name) => ({
      name,
      indexes: Array.from({ length: metadata.topics.get(name)?.partitionsCount ?? 0 }, (_, i) => i),
    }));
    const key = (topic: string, partition: number) => `${topic}:${partition}`;
    // ListOffsets with timestamp -2 answers the earliest offset, with -1 the latest.
    const listed = async (timestamp: bigint) => {
      const result = await admin.listOffsets({
        topics: partitions.map(({ name, indexes }) => ({
          name,
          partitions: indexes.map((partitionIndex) => ({ partitionIndex, timestamp })),
        })),
      });
      const offsets = new Map<string, bigint>();
      for (const t of result)
        for (const p of t.partitions) offsets.set(key(t.name, p.partitionIndex), p.offset);
      return offsets;
    };
    const [earliest, latest, groups] = await Promise.all([
      listed(-2n),
      listed(-1n),
      admin.listConsumerGroupOffsets({
        groups: [
          { groupId, topics: partitions.map(({ name, indexes }) => ({ name, partitionIndexes: indexes })) },
        ],
      }),
    ]);
    const committed = new Map<string, bigint>();
    for (const t of groups[0]?.topics ?? []) {
      // -1: the group never committed on this partition.
      for (const p of t.partitions)
        if (p.committedOffset >= 0n) committed.set(key(t.name, p.partitionIndex), p.committedOffset);
    }
    return partitions.flatMap(({ name, indexes }) =>
      indexes.map((partition) => {
        const offset = committed.get(key(name, partition));
        return {
          topic: name,
          partition,
          earliest: earliest.get(key(name, partition)) ?? 0n,
          latest: latest.get(key(name, partition)) ?? 0n,
          ...(offset === undefined ? {} : { committed: offset }),
        };
      }),
    );
  }
}

/** CreateTopics failed only because every topic exists already. */
function alreadyExists(error: unknown): boolean {
  const responses = ((error as { errors?: unknown[] })?.errors ?? []) as Array<{
    response?: { topics?: Array<{ errorCode: number }> };
  }>;
  if (responses.length === 0) return false;
  return responses.every(
    (r) =>
      r.response?.topics?.every((t) => t.errorCode === 0 || t.errorCode === TOPIC_ALREADY_EXISTS) === true,
  );
}
