// Fault test (issue 22): a consumer process is SIGKILLed while it holds messages and a new one takes
// over; a producer process is SIGKILLed with a batch in flight and a new one sends again from the first
// unacknowledged message (processKillCase, @switchyard/broker-stack/fault). Kafka keeps running. The
// children run the platformatic driver with a 6 s session timeout, so the killed member leaves the
// group soon and the new one gets its partitions. The topics are deleted at the end.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { processKillCase } from "@switchyard/broker-stack/fault";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, expect, it } from "vitest";
import { fastGroups } from "../test/helpers.js";

const brokers = brokerEndpoint("kafka").url;
const url = `kafka://${brokers}?driver=platformatic`;
const prefix = `sy-fault-kafka-kill-${randomUUID().slice(0, 8)}`;

describeWithBroker("kafka", "kafka fault (platformatic): a process SIGKILLed mid-stream", () => {
  afterAll(async () => {
    const admin = new Kafka({ brokers: brokers.split(","), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(prefix));
      if (topics.length > 0) await admin.deleteTopics({ topics });
    } finally {
      await admin.disconnect();
    }
  });

  it("10,000 messages: the consumer killed holding messages, a new one handles every message in key order", async () => {
    const figures = await processKillCase({
      broker: "kafka (platformatic)",
      adapter: "adapters/kafka/fault",
      kill: "consumer",
      url,
      adapterOptions: fastGroups,
      target: { kind: "queue", name: `${prefix}-consumer` },
    });
    expect(figures.ordering).toBe("partition");
  });

  it("10,000 messages: the producer killed mid-batch, every acknowledged message delivered, nothing torn", async () => {
    const figures = await processKillCase({
      broker: "kafka (platformatic)",
      adapter: "adapters/kafka/fault",
      kill: "producer",
      url,
      adapterOptions: fastGroups,
      target: { kind: "topic", name: `${prefix}-producer`, subscription: "fault" },
    });
    expect(figures.ordering).toBe("partition");
  });
});
