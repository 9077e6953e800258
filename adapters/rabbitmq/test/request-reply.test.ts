// The reply queue of bus.request() on a real RabbitMQ: declared by the first request, deleted when
// the requesting bus closes (Transport.unprovision).
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import amqp from "amqplib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const { Ping } = messages;
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
    const id = randomUUID().slice(0, 8);
    const queue = `sy-rmq-rr-${id}`;
    const replyQueue = `sy-rmq-replies-${id}`;
    const requester = createBus({ transport: createTransport(url), replyQueue });
    const responder = createBus({ transport: createTransport(url) });
    try {
      await responder
        .consume(queue)
        .on(Ping, (msg, ctx) => ctx.reply(Ping, { n: msg.data.n + 1 }))
        .start();
      expect(await exists(replyQueue)).toBe(false);
      const reply = await requester.request(queue, Ping, { n: 41 }, { timeoutMs: 10_000, replyType: Ping });
      expect(reply.data.n).toBe(42);
      expect(await exists(replyQueue)).toBe(true);
      await requester.close();
      expect(await exists(replyQueue)).toBe(false);
    } finally {
      await Promise.all([requester.close(), responder.close()]);
    }
  });
});
