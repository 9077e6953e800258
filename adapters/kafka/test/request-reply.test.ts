import { describeWithBroker } from "@switchyard/broker-stack/available";
import { checkReplyQueueLifecycle } from "@switchyard/conformance";
import { type Admin, Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, it } from "vitest";
import { brokers, kafkaTransport } from "./helpers.js";

describeWithBroker("kafka", "kafka adapter: request-reply", () => {
  let admin: Admin;
  beforeAll(async () => {
    admin = new Kafka({ brokers: [brokers], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
  });
  afterAll(async () => {
    await admin.disconnect();
  });

  /** The reply queue is a topic with its retry topic beside it; both must come and go. */
  async function exists(queue: string): Promise<boolean> {
    const topics = new Set(await admin.listTopics());
    const retry = topics.has(`${queue}.retry`);
    if (topics.has(queue) !== retry) throw new Error(`${queue} and ${queue}.retry disagree`);
    return retry;
  }

  for (const driver of ["platformatic", "kafkajs"] as const) {
    it(`${driver}: the first request creates the bus's reply topic and close() deletes it`, async () => {
      await checkReplyQueueLifecycle({ transport: () => kafkaTransport(driver), exists, timeoutMs: 20_000 });
    });
  }
});
