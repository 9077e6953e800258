// kafkajs 2.2.4 never recovers its idempotent producer once the broker refuses its sequence numbers
// (OUT_OF_ORDER_SEQUENCE_NUMBER after a broker restart, as CI's fault run saw: every later send
// failed the same way for 90 s). The driver replaces the producer and sends the refused batch again.
// Here the first producer's first send is refused with the broker's own error (built by kafkajs
// from the protocol code, as a produce response would): the record must still reach Kafka.
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { describeWithBroker } from "@switchyard/broker-stack/available";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { afterEach, expect, it } from "vitest";
import { hasLostProducerState, KafkajsDriver } from "../src/drivers/kafkajs.js";
import { brokers } from "./helpers.js";

const require = createRequire(import.meta.url);
const { createErrorFromCode } = require("kafkajs/src/protocol/error.js");
const OUT_OF_ORDER_SEQUENCE_NUMBER = 45;

const realProducer = Kafka.prototype.producer;
afterEach(() => {
  Kafka.prototype.producer = realProducer;
});

it("recognises the errors that leave the producer's id or sequence unusable, also when wrapped", () => {
  const refused = createErrorFromCode(OUT_OF_ORDER_SEQUENCE_NUMBER);
  expect(hasLostProducerState(refused)).toBe(true);
  expect(hasLostProducerState(new Error("retries exceeded", { cause: refused }))).toBe(true);
  expect(hasLostProducerState(createErrorFromCode(59))).toBe(true); // UNKNOWN_PRODUCER_ID
  expect(hasLostProducerState(createErrorFromCode(6))).toBe(false); // NOT_LEADER_FOR_PARTITION
  expect(hasLostProducerState(new Error("connection refused"))).toBe(false);
});

describeWithBroker("kafka", "kafkajs driver: a producer whose sequence the broker refused", () => {
  it("is replaced, and the refused batch is sent again on the new one", { timeout: 60_000 }, async () => {
    const producers: Producer[] = [];
    Kafka.prototype.producer = function (this: Kafka, ...args: Parameters<Kafka["producer"]>) {
      const producer = realProducer.apply(this, args);
      producers.push(producer);
      if (producers.length === 1) {
        producer.sendBatch = async () => {
          throw createErrorFromCode(OUT_OF_ORDER_SEQUENCE_NUMBER);
        };
      }
      return producer;
    };
    const topic = `sy-kafkajs-seq-${randomUUID().slice(0, 8)}`;
    const driver = new KafkajsDriver({
      clientId: "kafkajs-producer-test",
      brokers: brokers.split(","),
      compression: "none",
      connectTimeoutMs: 5_000,
      requestTimeoutMs: 10_000,
    });
    const admin = new Kafka({ brokers: brokers.split(","), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      await driver.createTopics([{ topic, partitions: 1, replicationFactor: -1, configs: {} }]);
      await driver.send([{ topic, value: Buffer.from("after the refusal"), headers: [] }]);
      expect(producers).toHaveLength(2);
      const [partition] = await admin.fetchTopicOffsets(topic);
      expect(partition?.high).toBe("1"); // written once, by the second producer
      // The replacement keeps working for later sends.
      await driver.send([{ topic, value: Buffer.from("next"), headers: [] }]);
      expect(producers).toHaveLength(2);
      const [after] = await admin.fetchTopicOffsets(topic);
      expect(after?.high).toBe("2");
    } finally {
      await driver.close();
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    }
  });
});
