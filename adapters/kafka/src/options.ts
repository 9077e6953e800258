import type { ConnectionOptions as TlsOptions } from "node:tls";
import { type ContentMode, redactUrl, SwitchyardError, type WireMessage } from "@switchyard/core";
import type { Compression, DriverConfig, DriverName, SaslOptions } from "./driver.js";
import { assertTopicName } from "./mapping.js";

/** Settings of one topic the adapter creates (`options.topics[name]`). */
export interface KafkaTopicOptions {
  /**
   * `cleanup.policy=compact`: Kafka keeps at least the latest record of each key (the envelope's
   * `key`), and a tombstone (`publish(topic, Type, null, { key, tombstone: true })`) deletes the
   * key. Every message published to it needs a key.
   */
  compacted?: boolean;
  /** Topic configs for this topic only, over `topicConfig`, e.g. `{ "min.cleanable.dirty.ratio": "0.1" }`. */
  configs?: Record<string, string>;
}

/** Options of `createTransport(url, options)`; each wins over the same URL parameter. */
export interface KafkaOptions {
  /** `platformatic` (default, @platformatic/kafka) or `kafkajs`. URL: `?driver=`. */
  driver?: DriverName;
  /** Bootstrap brokers, `host:port`. URL: the authority, `kafka://h1:9092,h2:9092`. */
  brokers?: string[];
  /** URL: `?clientId=`. Default `switchyard`. */
  clientId?: string;
  /** Partitions of the topics the adapter creates. URL: `?partitions=`. Default 3. */
  partitions?: number;
  /** Replication factor of created topics; -1 takes the broker's default. URL: `?replicationFactor=`. */
  replicationFactor?: number;
  /** Extra configs for created topics, e.g. `{ "retention.ms": "604800000" }`. */
  topicConfig?: Record<string, string>;
  /** Per-topic settings by topic name, e.g. `{ "user-profiles": { compacted: true } }`. */
  topics?: Record<string, KafkaTopicOptions>;
  /** Producer compression. URL: `?compression=`. Default `none` (kafkajs has only gzip built in). */
  compression?: Compression;
  /** TLS: `true` or Node TLS options. URL: `?ssl=true`. */
  ssl?: boolean | TlsOptions;
  /** SASL. URL: `?sasl=plain|scram-sha-256|scram-sha-512` with the credentials as URL user info. */
  sasl?: SaslOptions;
  /** Largest message (body plus headers) accepted for sending. URL: `?maxMessageBytes=`. Default 1,000,000. */
  maxMessageBytes?: number;
  /** Where a new group (subscription) starts: `earliest` (default, replays the topic) or `latest`. */
  startFrom?: "earliest" | "latest";
  /** Prepended to every consumer group id. URL: `?groupPrefix=`. */
  groupPrefix?: string;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  rebalanceTimeoutMs?: number;
  /** Longest a fetch waits for data (bounds how late a member notices a rebalance). Default 500. */
  maxWaitMs?: number;
  /** How long acknowledged offsets may wait before they are committed. Default 100 ms. */
  commitIntervalMs?: number;
  /**
   * Most bytes one fetch returns per partition. Default 1 MiB, the Java consumer's
   * `max.partition.fetch.bytes`. Every record of a fetch stays alive until a handler takes it, so a
   * larger fetch (@platformatic/kafka's own default is 50 MB) makes GC, not the handlers, the cost.
   * URL: `?maxBytesPerPartition=`.
   */
  maxBytesPerPartition?: number;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /**
   * CloudEvents content mode of what the adapter writes: `structured` (default: the event as one
   * JSON value with a `content-type: application/cloudevents+json` header, several times cheaper
   * for the clients than a header per attribute) or `binary` (`ce_*` headers, the data as the
   * value). Either is read. URL: `?contentMode=`.
   */
  contentMode?: ContentMode;
}

export interface KafkaConfig extends DriverConfig {
  driver: DriverName;
  partitions: number;
  replicationFactor: number;
  topicConfig: Record<string, string>;
  topics: Record<string, KafkaTopicOptions>;
  maxMessageBytes: number;
  startFrom: "earliest" | "latest";
  groupPrefix: string;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  maxWaitMs: number;
  commitIntervalMs: number;
  maxBytesPerPartition: number;
  contentMode: ContentMode;
}

const DRIVERS: readonly DriverName[] = ["platformatic", "kafkajs"];
const COMPRESSIONS: readonly Compression[] = ["none", "gzip", "snappy", "lz4", "zstd"];
const MECHANISMS: readonly SaslOptions["mechanism"][] = ["plain", "scram-sha-256", "scram-sha-512"];
const INTEGER_PARAMS = [
  "partitions",
  "replicationFactor",
  "maxMessageBytes",
  "sessionTimeoutMs",
  "heartbeatIntervalMs",
  "rebalanceTimeoutMs",
  "maxWaitMs",
  "commitIntervalMs",
  "maxBytesPerPartition",
  "connectTimeoutMs",
  "requestTimeoutMs",
] as const;
const URL_PARAMS = new Set<string>([
  "driver",
  "contentMode",
  "clientId",
  "compression",
  "ssl",
  "sasl",
  "startFrom",
  "groupPrefix",
  "hosts", // set by the core for multi-host authorities (kafka://h1:9092,h2:9092)
  ...INTEGER_PARAMS,
]);

/** Broker's default `message.max.bytes` is 1,048,588: this leaves room for the record framing. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_000_000;
const FRAMING_MARGIN = 48_588;

function invalid(message: string, url?: URL): SwitchyardError {
  return new SwitchyardError(
    "CONFIG_INVALID",
    `kafka: ${message}${url ? ` (in ${redactUrl(url.toString())})` : ""}`,
  );
}

function oneOf<T extends string>(what: string, value: string, allowed: readonly T[], url?: URL): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw invalid(`${what} must be one of ${allowed.join(", ")}, got "${value}"`, url);
  }
  return value as T;
}

function brokerList(raw: string, url?: URL): string[] {
  const brokers = raw
    .split(",")
    .map((b) => b.trim())
    .filter(Boolean);
  if (brokers.length === 0) throw invalid("no broker given; expected kafka://host:9092[,host:9092]", url);
  for (const broker of brokers) {
    const match = /^(\[[0-9a-f:.]+\]|[^:\s[\]]+)(?::(\d{1,5}))?$/i.exec(broker);
    if (!match) throw invalid(`"${broker}" is not host:port`, url);
  }
  return brokers.map((b) => (/:\d+$/.test(b) && !b.endsWith("]") ? b : `${b}:9092`));
}

/** Reads `kafka://…` plus options into a validated config. Never echoes credentials. */
export function parseKafkaConfig(url: URL | undefined, options: KafkaOptions = {}): KafkaConfig {
  const params = url?.searchParams ?? new URLSearchParams();
  for (const name of params.keys()) {
    if (!URL_PARAMS.has(name)) {
      throw invalid(`unknown URL parameter "${name}"; accepted: ${[...URL_PARAMS].join(", ")}`, url);
    }
  }
  const param = (name: string) => params.get(name) ?? undefined;

  let brokers = options.brokers;
  if (!brokers) {
    const hosts = param("hosts") ?? (url?.host ? url.host : undefined);
    if (!hosts) throw invalid("no broker given; expected kafka://host:9092[,host:9092]", url);
    brokers = brokerList(hosts, url);
  } else {
    brokers = brokerList(brokers.join(","));
  }

  const integer = (name: (typeof INTEGER_PARAMS)[number], fallback: number, min: number): number => {
    const given = options[name];
    const raw = given ?? (param(name) === undefined ? undefined : Number(param(name)));
    const value = raw ?? fallback;
    if (!Number.isInteger(value) || value < min) {
      throw invalid(`${name} must be an integer ≥ ${min}, got ${String(given ?? param(name))}`, url);
    }
    return value;
  };

  const driver = oneOf("driver", options.driver ?? param("driver") ?? "platformatic", DRIVERS, url);
  const compression = oneOf(
    "compression",
    options.compression ?? param("compression") ?? "none",
    COMPRESSIONS,
    url,
  );
  if (driver === "kafkajs" && compression !== "none" && compression !== "gzip") {
    throw invalid(`the kafkajs driver has only gzip built in, not ${compression}`, url);
  }
  const startFrom = oneOf(
    "startFrom",
    options.startFrom ?? param("startFrom") ?? "earliest",
    ["earliest", "latest"] as const,
    url,
  );

  const contentMode = oneOf(
    "contentMode",
    options.contentMode ?? param("contentMode") ?? "structured",
    ["structured", "binary"] as const,
    url,
  );

  let ssl: boolean | TlsOptions | undefined = options.ssl;
  if (ssl === undefined && param("ssl") !== undefined) {
    ssl = oneOf("ssl", param("ssl")!, ["true", "false"] as const, url) === "true";
  }

  let sasl = options.sasl;
  if (!sasl && param("sasl") !== undefined) {
    const mechanism = oneOf("sasl", param("sasl")!.toLowerCase(), MECHANISMS, url);
    if (!url?.username)
      throw invalid("sasl needs credentials as URL user info (kafka://user:pass@host)", url);
    sasl = {
      mechanism,
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    };
  }
  if (sasl) oneOf("sasl.mechanism", sasl.mechanism, MECHANISMS);

  const config: KafkaConfig = {
    driver,
    brokers,
    clientId: options.clientId ?? param("clientId") ?? "switchyard",
    compression,
    partitions: integer("partitions", 3, 1),
    replicationFactor: integer("replicationFactor", -1, -1),
    topicConfig: { ...(options.topicConfig ?? {}) },
    topics: topicOptions(options.topics),
    maxMessageBytes: integer("maxMessageBytes", DEFAULT_MAX_MESSAGE_BYTES, 1024),
    startFrom,
    groupPrefix: options.groupPrefix ?? param("groupPrefix") ?? "",
    sessionTimeoutMs: integer("sessionTimeoutMs", 30_000, 1),
    heartbeatIntervalMs: integer("heartbeatIntervalMs", 1_000, 1),
    rebalanceTimeoutMs: integer("rebalanceTimeoutMs", 60_000, 1),
    maxWaitMs: integer("maxWaitMs", 500, 0),
    commitIntervalMs: integer("commitIntervalMs", 100, 0),
    maxBytesPerPartition: integer("maxBytesPerPartition", 1_048_576, 1024),
    connectTimeoutMs: integer("connectTimeoutMs", 10_000, 1),
    requestTimeoutMs: integer("requestTimeoutMs", 30_000, 1),
    contentMode,
  };
  if (config.replicationFactor === 0) throw invalid("replicationFactor must be -1 or ≥ 1", url);
  if (config.heartbeatIntervalMs >= config.sessionTimeoutMs) {
    throw invalid("heartbeatIntervalMs must be below sessionTimeoutMs", url);
  }
  if (config.rebalanceTimeoutMs < config.sessionTimeoutMs) {
    throw invalid("rebalanceTimeoutMs must be at least sessionTimeoutMs", url);
  }
  if (ssl !== undefined) config.ssl = ssl;
  if (sasl) config.sasl = sasl;
  return config;
}

/** Checks `options.topics`: valid names, a boolean `compacted`, string configs. */
function topicOptions(given: unknown): Record<string, KafkaTopicOptions> {
  if (given === undefined) return {};
  if (given === null || typeof given !== "object" || Array.isArray(given)) {
    throw invalid("topics must be an object of per-topic settings by topic name");
  }
  const topics: Record<string, KafkaTopicOptions> = {};
  for (const [name, settings] of Object.entries(given)) {
    assertTopicName(name);
    if (settings === null || typeof settings !== "object" || Array.isArray(settings)) {
      throw invalid(`topics["${name}"] must be an object like { compacted: true }`);
    }
    const { compacted, configs, ...unknown } = settings as KafkaTopicOptions;
    const extra = Object.keys(unknown);
    if (extra.length > 0) throw invalid(`topics["${name}"] has unknown settings: ${extra.join(", ")}`);
    if (compacted !== undefined && typeof compacted !== "boolean") {
      throw invalid(`topics["${name}"].compacted must be true or false, got ${String(compacted)}`);
    }
    for (const [config, value] of Object.entries(configs ?? {})) {
      if (typeof value !== "string") throw invalid(`topics["${name}"].configs["${config}"] must be a string`);
    }
    topics[name] = { ...(compacted ? { compacted } : {}), ...(configs ? { configs: { ...configs } } : {}) };
  }
  return topics;
}

/**
 * The configs a created topic gets: the size limit, then `topicConfig`, then the topic's own
 * settings (a compacted topic's `cleanup.policy` wins over a global one).
 */
export function topicConfigs(config: KafkaConfig, topic: string): Record<string, string> {
  const own = config.topics[topic];
  return {
    "max.message.bytes": String(topicMaxMessageBytes(config)),
    ...config.topicConfig,
    ...(own?.compacted ? { "cleanup.policy": "compact" } : {}),
    ...own?.configs,
  };
}

/**
 * Kafka refuses a record without a key on a compacted topic (it could never be compacted away):
 * refuse it here, before the batch goes out, with a typed error that says why.
 */
export function assertKeyedForCompaction(config: KafkaConfig, topic: string, messages: WireMessage[]): void {
  if (!config.topics[topic]?.compacted) return;
  if (messages.some((message) => message.key === undefined || message.key === "")) {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `kafka: topic "${topic}" is compacted, so every message published to it needs a key`,
    );
  }
}

/** `max.message.bytes` of the topics the adapter creates: what we accept plus the record framing. */
export function topicMaxMessageBytes(config: KafkaConfig): number {
  return config.maxMessageBytes + FRAMING_MARGIN;
}
