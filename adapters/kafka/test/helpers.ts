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
