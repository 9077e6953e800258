import { randomUUID } from "node:crypto";
import { brokerEndpoint } from "@switchyard/broker-stack/available";
import type { DriverName } from "../src/driver.js";
import type { KafkaOptions } from "../src/options.js";
import { createTransport, type KafkaTransport } from "../src/transport.js";

export const brokers = brokerEndpoint("kafka").url;

/** Group timings for tests: a join or a rebalance settles within a few hundred milliseconds. */
export const fastGroups: KafkaOptions = {
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 250,
  rebalanceTimeoutMs: 10_000,
  maxWaitMs: 200,
  commitIntervalMs: 50,
};

export function kafkaTransport(driver: DriverName, options: KafkaOptions = {}): KafkaTransport {
  return createTransport(new URL(`kafka://${brokers}?driver=${driver}`), { ...fastGroups, ...options });
}

/**
 * The conformance suites' teardown: deletes the topics their cases made (a case's names, and the
 * `.retry`/`.dlq` topics derived from them). Kafka keeps every topic until deleted, and thousands
 * left by earlier runs made the broker slow to restart and short of heap.
 */
export async function deleteTopicsNamed({ names }: { names: string[] }): Promise<void> {
  if (names.length === 0) return;
  const { Kafka, logLevel } = await import("kafkajs");
  const admin = new Kafka({ brokers: [brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const prefixes = names.map((name) => [name, `${name}.`]);
    const ours = (await admin.listTopics()).filter((topic) =>
      prefixes.some(([name, dotted]) => topic === name || topic.startsWith(dotted!)),
    );
    if (ours.length > 0) await admin.deleteTopics({ topics: ours, timeout: 30_000 });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Unique topic names that remember themselves, so a test file can delete what it made when done
 * (`afterAll(() => deleteTopicsNamed(made))`), passed or failed.
 */
export function topicNames(): { names: string[]; unique(prefix: string): string } {
  const names: string[] = [];
  return {
    names,
    unique(prefix) {
      const name = `${prefix}-${randomUUID().slice(0, 8)}`;
      names.push(name);
      return name;
    },
  };
}
