import { parseBusUrl, type TopologyEntity } from "@switchyard/core";
import { importFromAdapter } from "./connect.js";

/**
 * What the transport contract cannot do (it creates and deletes topology): look at what exists, and
 * remove what a throwaway subscription leaves beyond its topology (Kafka's consumer group). Done
 * here, per broker, with the broker client the adapter itself uses and the adapter's own names.
 * Brokers without an entry answer "unknown".
 */
export interface BrokerAdmin {
  /** Whether each entity exists, in order. */
  exists(entities: TopologyEntity[]): Promise<boolean[]>;
  /**
   * Deletes what a topic subscription leaves beyond what the adapter's `unprovision` removes
   * (Kafka: the consumer group, which is no topology entity).
   */
  removeSubscription?(topic: string, subscription: string): Promise<void>;
  close(): Promise<void>;
}

export async function brokerAdmin(url: string): Promise<BrokerAdmin | undefined> {
  const parsed = parseBusUrl(url); // also kafka://h1:9092,h2:9092, as the `hosts` parameter
  switch (parsed.protocol) {
    case "kafka:":
      return kafkaAdmin(parsed);
    case "amqp:":
    case "amqps:":
      return rabbitAdmin(parsed);
    default:
      return undefined;
  }
}

/** The names the adapter gives a subscription's parts (see each adapter's README). */
const subscriptionNames = (topic: string, subscription: string) => ({
  /** Kafka: the consumer group; RabbitMQ: the subscription's queue. */
  base: `${topic}.${subscription}`,
  /** Kafka: where nacked messages wait for redelivery. */
  retry: `${topic}.${subscription}.retry`,
  deadLetters: `${topic}.${subscription}.dlq`,
});

// ---- Kafka: topics for topics and queues, a retry topic per subscription ----

interface KafkaAdminClient {
  listTopics(options?: { includeInternals?: boolean }): Promise<string[]>;
  deleteTopics(options: { topics: string[] }): Promise<void>;
  deleteGroups(options: { groups: string[] }): Promise<void>;
  close(): Promise<void>;
}

async function kafkaAdmin(url: URL): Promise<BrokerAdmin | undefined> {
  const kafka = await importFromAdapter<{ Admin: new (options: object) => KafkaAdminClient }>(
    "kafka",
    "@platformatic/kafka",
  );
  if (!kafka) return undefined;
  const hosts = (url.searchParams.get("hosts") ?? url.host).split(",");
  const bootstrapBrokers = hosts.map((host) => {
    const at = host.lastIndexOf(":");
    return { host: host.slice(0, at).replace(/^\[|\]$/g, ""), port: Number(host.slice(at + 1)) };
  });
  const groupPrefix = url.searchParams.get("groupPrefix") ?? "";
  const admin = new kafka.Admin({ clientId: "switchyard-cli", bootstrapBrokers, retries: 2 });
  return {
    async exists(entities) {
      const topics = new Set(await admin.listTopics());
      return entities.map((entity) =>
        topics.has(
          entity.kind === "subscription" ? subscriptionNames(entity.topic, entity.name).retry : entity.name,
        ),
      );
    },
    async removeSubscription(topic, subscription) {
      const names = subscriptionNames(topic, subscription);
      // The group empties once its last member has left; the broker may take a moment to see it.
      for (let attempt = 1; ; attempt++) {
        try {
          await admin.deleteGroups({ groups: [groupPrefix + names.base] });
          break;
        } catch (error) {
          if (attempt >= 10 || !/NON_EMPTY|not empty/i.test(String(error))) {
            if (/GROUP_ID_NOT_FOUND|does not exist/i.test(String(error))) break;
            throw error;
          }
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
      }
      const existing = new Set(await admin.listTopics());
      const topics = [names.retry, names.deadLetters].filter((name) => existing.has(name));
      if (topics.length > 0) await admin.deleteTopics({ topics });
    },
    close: () => admin.close(),
  };
}

// ---- RabbitMQ: an exchange per topic, a queue per subscription and per queue ----

interface AmqpChannel {
  on(event: "error", listener: () => void): void;
  checkQueue(name: string): Promise<unknown>;
  checkExchange(name: string): Promise<unknown>;
  close(): Promise<void>;
}
interface AmqpConnection {
  on(event: "error", listener: () => void): void;
  createChannel(): Promise<AmqpChannel>;
  close(): Promise<void>;
}

async function rabbitAdmin(url: URL): Promise<BrokerAdmin | undefined> {
  const amqplib = await importFromAdapter<{ default: { connect(url: string): Promise<AmqpConnection> } }>(
    "amqp",
    "amqplib",
  );
  if (!amqplib) return undefined;
  const plain = new URL(url);
  plain.search = ""; // the adapter's own options are not amqplib's
  const connection = await amqplib.default.connect(plain.toString());
  connection.on("error", () => {});
  // A passive check that fails closes its channel, so each check gets a channel of its own.
  const onChannel = async <T>(work: (channel: AmqpChannel) => Promise<T>): Promise<T> => {
    const channel = await connection.createChannel();
    channel.on("error", () => {});
    try {
      return await work(channel);
    } finally {
      await channel.close().catch(() => {});
    }
  };
  const check = (entity: TopologyEntity) =>
    onChannel((channel) =>
      entity.kind === "topic"
        ? channel.checkExchange(entity.name)
        : channel.checkQueue(
            entity.kind === "subscription" ? subscriptionNames(entity.topic, entity.name).base : entity.name,
          ),
    ).then(
      () => true,
      () => false,
    );
  return {
    exists: (entities) => Promise.all(entities.map(check)),
    close: () => connection.close(),
  };
}
