import { randomUUID } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { expect, it } from "vitest";
import { brokerEndpoint, describeWithBroker } from "../src/available.ts";

process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";

describeWithBroker("kafka", "kafka smoke (kafkajs)", () => {
  it("sends one message and receives it", async () => {
    const kafka = new Kafka({
      clientId: "smoke",
      brokers: brokerEndpoint("kafka").url.split(","),
      logLevel: logLevel.ERROR,
    });
    const topic = `smoke-${randomUUID()}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic }], waitForLeaders: true });
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    expect(meta.topics[0]!.partitions).toHaveLength(3); // num.partitions=3
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    const payload = JSON.stringify({ id: randomUUID(), text: "hello kafka" });
    await producer.send({ topic, acks: -1, messages: [{ key: "k1", value: payload }] });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `smoke-${randomUUID()}` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = await new Promise<{ key: string; value: string }>((resolve) => {
      consumer.run({
        eachMessage: async ({ message }) =>
          resolve({ key: message.key!.toString(), value: message.value!.toString() }),
      });
    });
    await consumer.disconnect();
    expect(received).toEqual({ key: "k1", value: payload });
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });

  it("does not create topics automatically", async () => {
    const kafka = new Kafka({
      clientId: "smoke",
      brokers: brokerEndpoint("kafka").url.split(","),
      logLevel: logLevel.NOTHING,
    });
    const producer = kafka.producer({ allowAutoTopicCreation: true, retry: { retries: 1 } });
    await producer.connect();
    await expect(
      producer.send({ topic: `smoke-absent-${randomUUID()}`, messages: [{ value: "x" }] }),
    ).rejects.toThrow();
    await producer.disconnect();
  });
});
