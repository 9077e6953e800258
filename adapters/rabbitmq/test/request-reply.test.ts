import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { checkReplyQueueLifecycle } from "@switchyard/conformance";
import amqp from "amqplib";
import { afterAll, beforeAll, it } from "vitest";
import { createTransport } from "../src/index.js";

const url = new URL(brokerEndpoint("rabbitmq").url);

describeWithBroker("rabbitmq", "rabbitmq adapter: request-reply", () => {
  let raw: amqp.ChannelModel;
  beforeAll(async () => {
    raw = await amqp.connect(url.toString());
  });
  afterAll(async () => {
    await raw.close();
  });

  /** Whether a queue exists (a passive declare; a missing queue closes only its own channel). */
  async function exists(queue: string): Promise<boolean> {
    const channel = await raw.createChannel();
    channel.on("error", () => {});
    try {
      await channel.checkQueue(queue);
      await channel.close();
      return true;
    } catch {
      return false;
    }
  }

  it("the first request declares the bus's reply queue and close() deletes it", async () => {
    await checkReplyQueueLifecycle({ transport: () => createTransport(url), exists, timeoutMs: 10_000 });
  });
});
