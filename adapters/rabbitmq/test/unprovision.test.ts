// unprovision removes what a bus used alone (switchyard tail's throwaway subscription: its queue and
// dead-letter queue), and a topic's exchange when asked; RabbitMQ itself is asked what exists.
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { checkSubscriptionRemoval } from "@switchyard/conformance";
import type { TopologyEntity } from "@switchyard/core";
import amqp from "amqplib";
import { afterAll, beforeAll, it } from "vitest";
import { createTransport, queueOf } from "../src/index.js";

const url = new URL(brokerEndpoint("rabbitmq").url);

describeWithBroker("rabbitmq", "rabbitmq adapter: unprovision", () => {
  let raw: amqp.ChannelModel;
  beforeAll(async () => {
    raw = await amqp.connect(url.toString());
  });
  afterAll(async () => {
    await raw.close();
  });

  /** A passive declare on a channel of its own (a missing entity closes only that channel). */
  async function exists(entity: TopologyEntity): Promise<boolean> {
    const channel = await raw.createChannel();
    channel.on("error", () => {});
    try {
      if (entity.kind === "topic") await channel.checkExchange(entity.name);
      else if (entity.kind === "queue") await channel.checkQueue(entity.name);
      else
        await channel.checkQueue(queueOf({ kind: "topic", name: entity.topic, subscription: entity.name }));
      await channel.close();
      return true;
    } catch {
      return false;
    }
  }

  it("a subscription's queue and dead-letter queue, then its topic's exchange, are deleted", async () => {
    await checkSubscriptionRemoval({ transport: () => createTransport(url), exists });
  });
});
