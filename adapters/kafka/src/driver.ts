// The seam between the adapter and a Kafka client library. Everything Switchyard-specific
// (mapping, offsets, retries, backpressure) lives above it, once; a driver only moves records.
// Two drivers implement it: @platformatic/kafka (default) and kafkajs.
import type { ConnectionOptions as TlsOptions } from "node:tls";

export type DriverName = "platformatic" | "kafkajs";
export type Compression = "none" | "gzip" | "snappy" | "lz4" | "zstd";

export interface SaslOptions {
  mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
  username: string;
  password: string;
}

/** What every driver is built from (already parsed and validated). */
export interface DriverConfig {
  clientId: string;
  brokers: string[];
  ssl?: boolean | TlsOptions;
  sasl?: SaslOptions;
  compression: Compression;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
}

/** A record to produce: key and value as bytes (a null value is a tombstone), headers as name/bytes pairs. */
export interface OutgoingRecord {
  topic: string;
  key?: Buffer;
  value: Buffer | null;
  headers: Array<[string, Buffer]>;
}

/**
 * A record as fetched. Shaped so that a client's own message object can be handed over as it is
 * (@platformatic/kafka's is): no copy per record on the consume path.
 */
export interface IncomingRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly key: Buffer | null | undefined;
  readonly value: Buffer | null | undefined;
  /** Header names as the client gives them (bytes or text), values as bytes. */
  readonly headerEntries: ReadonlyArray<readonly [Buffer | string, Buffer | null | undefined]>;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** Where a partition's log starts and ends, and where a group is in it. */
export interface PartitionOffsets extends TopicPartition {
  /** The first offset still in the log. */
  earliest: bigint;
  /** The next offset to be written (the high watermark). */
  latest: bigint;
  /** The group's committed offset (the next one it reads); undefined when it never committed. */
  committed?: bigint;
}

export interface TopicSpec {
  topic: string;
  partitions: number;
  /** -1: the broker's default. */
  replicationFactor: number;
  configs: Record<string, string>;
}

export interface GroupOptions {
  groupId: string;
  topics: string[];
  /** Where a group without committed offsets starts. */
  fromBeginning: boolean;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  /** Longest a fetch waits for data; bounds how late a member notices a rebalance. */
  maxWaitMs: number;
  /** Most bytes a fetch returns per partition: bounds how many records are alive at once. */
  maxBytesPerPartition: number;
}

export interface GroupHandlers {
  /**
   * Records in offset order per partition, one call per record, as the client yields them (a fetch
   * arrives in one turn of the event loop). May repeat records already seen after a rejoin.
   */
  record(record: IncomingRecord): void;
  /** The complete assignment after each (re)join; partitions not listed are no longer ours. */
  assigned(partitions: TopicPartition[]): void;
  /** A rebalance started: a good moment to commit what is done. */
  rebalancing(): void;
  /** The consumer failed and will not recover by itself. */
  failed(error: unknown): void;
  /** A transport error the client survives (a lost connection, a failed heartbeat, a stream re-opened). */
  recovered(error: unknown): void;
}

export interface GroupConsumer {
  /** Flow control for all partitions of this member. */
  pause(): void;
  resume(): void;
  /** Commits `offset` (the next one to read) per partition; rejects on a rebalance. */
  commit(offsets: Array<TopicPartition & { offset: bigint }>): Promise<void>;
  /** Leaves the group and releases the connections. */
  close(): Promise<void>;
}

export interface KafkaDriver {
  readonly name: DriverName;
  /** Reaches the cluster (metadata), or rejects. */
  connect(): Promise<void>;
  /** Creates the topics; ones that exist already are not an error. */
  createTopics(topics: TopicSpec[]): Promise<void>;
  /** Deletes those of the topics that exist (optional so a test double need not have it). */
  deleteTopics?(topics: string[]): Promise<void>;
  /** Produces with acks=all on the idempotent producer; resolves once Kafka acknowledged all. */
  send(records: OutgoingRecord[]): Promise<void>;
  /** Joins `groupId`; resolves once the member has its first assignment. */
  consume(options: GroupOptions, handlers: GroupHandlers): Promise<GroupConsumer>;
  close(): Promise<void>;
  /**
   * The offsets of every partition of those `topics` that exist, with `groupId`'s commits (for
   * `backlog()`; optional so a test double need not have it).
   */
  groupOffsets?(groupId: string, topics: string[]): Promise<PartitionOffsets[]>;
}
