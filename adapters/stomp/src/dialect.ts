import { type Capabilities, type Destination, type Source, SwitchyardError } from "@switchyard/core";

/**
 * What differs between STOMP brokers, as data plus a few functions: where a destination lives,
 * how a subscription becomes a durable shared queue, the prefetch header, how a retry copy is
 * delayed, and which capabilities hold. Everything else (frames, receipts, acks) is plain STOMP.
 */
export interface Dialect {
  readonly name: "activemq" | "rabbitmq";
  readonly defaultPort: number;
  readonly capabilities: Partial<Capabilities>;
  /** Longest header line (name + value, UTF-8 bytes) the broker takes. */
  readonly maxHeaderBytes: number;
  /** Where `publish` sends. */
  publishDestination(destination: Destination): string;
  /** The SUBSCRIBE destination and headers of a source. */
  subscribeFrame(source: Source, prefetch: number): { destination: string; headers: Record<string, string> };
  /** Where a retry copy of a delivery goes: the source's own queue, never the whole topic. */
  retryDestination(source: Source): string;
  /** Extra SEND headers for a message with a key (message groups). */
  keyHeaders(key: string): Record<string, string>;
  /** How a retry copy is delayed by `delayMs` (> 0): extra headers and possibly another destination. */
  delay(source: Source, delayMs: number): { destination?: string; headers: Record<string, string> };
  /** Headers the broker adds to a MESSAGE frame (or reacts to on SEND): never user headers. */
  isBrokerHeader(name: string): boolean;
}

/** STOMP's own frame headers, reserved on every broker. */
const STOMP_HEADERS = new Set([
  "destination",
  "content-length",
  "content-type",
  "receipt",
  "receipt-id",
  "transaction",
  "message-id",
  "subscription",
  "ack",
  "id",
  "persistent",
  "priority",
  "expires",
  "expiration",
  "timestamp",
  "redelivered",
  "reply-to",
  "correlation-id",
  "type",
  "selector",
  "host",
  "login",
  "passcode",
  "heart-beat",
  "accept-version",
  "version",
  "session",
  "server",
  "durable",
  "auto-delete",
  "exclusive",
  "prefetch-count",
]);

/** Names must be plain: no STOMP/JMS wildcards or path separators, which each broker reads specially. */
const SAFE_NAME = /^[A-Za-z0-9_.~-]+$/;

export function checkName(kind: string, name: string, extra?: RegExp): void {
  if (!SAFE_NAME.test(name) || extra?.test(name)) {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `${kind} name "${name}" cannot be carried over STOMP: use letters, digits, "_", "-", "." and "~"`,
    );
  }
}

const MINUTE = 60_000;

/**
 * ActiveMQ Classic 5.x. Topics are virtual topics: publish to `VirtualTopic.<topic>`, each
 * subscription reads the durable queue `Consumer.<subscription>.VirtualTopic.<topic>`. Keys become
 * message groups (`JMSXGroupID`), so one consumer owns a key at a time. Retry copies are delayed by
 * the broker's scheduler (`AMQ_SCHEDULED_DELAY`, needs `schedulerSupport="true"`).
 */
export const activemq: Dialect = {
  name: "activemq",
  defaultPort: 61613,
  capabilities: {
    nativeDeadLetter: false,
    nativeDelay: true,
    ordering: "group",
    consumerGroups: true,
    replayFromStart: false,
    persistent: true,
    maxMessageBytes: 4 * 1024 * 1024,
    maxHeaders: 200,
    redeliveryCount: false,
    balancedConsumers: true,
    maxDelayMs: 7 * 24 * 60 * MINUTE,
  },
  maxHeaderBytes: 10_000,
  publishDestination: (d) => (d.kind === "queue" ? `/queue/${d.name}` : `/topic/VirtualTopic.${d.name}`),
  subscribeFrame: (source, prefetch) => ({
    destination: activemq.retryDestination(source),
    headers: { "activemq.prefetchSize": String(prefetch) },
  }),
  retryDestination: (s) =>
    s.kind === "queue" ? `/queue/${s.name}` : `/queue/Consumer.${s.subscription}.VirtualTopic.${s.name}`,
  keyHeaders: (key) => ({ JMSXGroupID: key }),
  delay: (_source, delayMs) => ({ headers: { AMQ_SCHEDULED_DELAY: String(Math.ceil(delayMs)) } }),
  isBrokerHeader: (name) =>
    STOMP_HEADERS.has(name.toLowerCase()) ||
    name.startsWith("JMS") ||
    name.startsWith("AMQ_") ||
    name.startsWith("activemq.") ||
    name === "scheduledJobId" ||
    name === "original-destination",
};

/** Queue that holds one subscription of a topic on RabbitMQ. */
export function rabbitSubscriptionQueue(topic: string, subscription: string): string {
  return `Consumer.${subscription}.${topic}`;
}

function rabbitQueueOf(source: Source): string {
  return source.kind === "queue" ? source.name : rabbitSubscriptionQueue(source.name, source.subscription);
}

/**
 * RabbitMQ's STOMP plugin. Queues are `/queue/<name>` (durable, declared on first use). Topics
 * publish to `amq.topic` (`/topic/<topic>`); each subscription is a durable queue
 * `Consumer.<subscription>.<topic>` bound there, declared by a durable SUBSCRIBE with
 * `x-queue-name`, and consumers of one subscription compete on it. A delayed retry copy waits in a
 * per-queue delay queue (`sy.delay.<queue>`) with a per-message TTL whose dead-letter route is the
 * original queue: durable, but a long delay at the head holds back shorter ones behind it.
 */
export const rabbitmq: Dialect = {
  name: "rabbitmq",
  defaultPort: 61613,
  capabilities: {
    nativeDeadLetter: false,
    nativeDelay: true,
    ordering: "none",
    consumerGroups: true,
    replayFromStart: false,
    persistent: true,
    maxMessageBytes: 4 * 1024 * 1024,
    maxHeaders: 200,
    redeliveryCount: false,
    balancedConsumers: true,
    maxDelayMs: 7 * 24 * 60 * MINUTE,
  },
  maxHeaderBytes: 60_000,
  publishDestination: (d) => (d.kind === "queue" ? `/queue/${d.name}` : `/topic/${d.name}`),
  subscribeFrame: (source, prefetch): { destination: string; headers: Record<string, string> } =>
    source.kind === "queue"
      ? { destination: `/queue/${source.name}`, headers: { "prefetch-count": String(prefetch) } }
      : {
          destination: `/topic/${source.name}`,
          headers: {
            "prefetch-count": String(prefetch),
            durable: "true",
            "auto-delete": "false",
            "x-queue-name": rabbitQueueOf(source),
          },
        },
  retryDestination: (s) => (s.kind === "queue" ? `/queue/${s.name}` : `/amq/queue/${rabbitQueueOf(s)}`),
  keyHeaders: () => ({}),
  delay: (source, delayMs) => ({
    destination: `/queue/sy.delay.${rabbitQueueOf(source)}`,
    headers: {
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": rabbitQueueOf(source),
      expiration: String(Math.ceil(delayMs)),
    },
  }),
  isBrokerHeader: (name) =>
    STOMP_HEADERS.has(name.toLowerCase()) ||
    name.startsWith("amqp-") ||
    name.startsWith("x-dead-letter-") ||
    name === "x-death" ||
    name.startsWith("x-first-death-") ||
    name.startsWith("x-last-death-") ||
    name === "x-delivery-count" ||
    name === "x-queue-name" ||
    name === "x-message-ttl" ||
    name === "x-queue-type" ||
    name === "x-received-from",
};

export const dialects = { activemq, rabbitmq } as const;
export type DialectName = keyof typeof dialects;
