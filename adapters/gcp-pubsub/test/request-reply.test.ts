// The reply queue of bus.request() on the Pub/Sub emulator: the first request creates its topic
// and subscription, and close() deletes them with its dead-letter topic (Transport.unprovision).
import { randomUUID } from "node:crypto";
import { PubSub } from "@google-cloud/pubsub";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { messages } from "@switchyard/conformance";
import { type Consumer, createBus } from "@switchyard/core";
import { afterAll, expect, it } from "vitest";
import * as adapter from "../src/index.js";

const emulator = brokerEndpoint("pubsub").url;
process.env.PUBSUB_EMULATOR_HOST = emulator;
process.env.METADATA_SERVER_DETECTION = "none";
const PROJECT = "switchyard-request-reply-test";
const raw = new PubSub({ projectId: PROJECT, apiEndpoint: emulator });
const names = new adapter.Names("sy");

afterAll(async () => {
  await raw.close();
});

describeWithBroker("pubsub", "gcp-pubsub adapter: request-reply", () => {
  it("the first request creates the reply queue's topic and subscription; close() deletes them", async () => {
    const id = randomUUID().slice(0, 8);
    const queue = `sy-rr-${id}`;
    const replyQueue = `sy-replies-${id}`;
    const url = `pubsub://${PROJECT}?emulator=${emulator}`;
    const requester = createBus({ url, adapter, replyQueue });
    const responder = createBus({ url, adapter });
    const exists = async () => {
      const [[topic], [subscription], [deadLetters]] = await Promise.all([
        raw.topic(names.queueTopic(replyQueue)).exists(),
        raw.subscription(names.queueSubscription(replyQueue)).exists(),
        raw.topic(names.queueTopic(`${replyQueue}.dlq`)).exists(),
      ]);
      return { topic, subscription, deadLetters };
    };
    let consumer: Consumer | undefined;
    try {
      consumer = await responder
        .consume(queue)
        .on(messages.Ping, (msg, ctx) => ctx.reply(messages.Ping, { n: msg.data.n * 2 }))
        .start();
      expect(await exists()).toEqual({ topic: false, subscription: false, deadLetters: false });
      const reply = await requester.request(
        queue,
        messages.Ping,
        { n: 21 },
        {
          timeoutMs: 15_000,
          replyType: messages.Ping,
        },
      );
      expect(reply.data.n).toBe(42);
      expect(await exists()).toEqual({ topic: true, subscription: true, deadLetters: true });
      await requester.close();
      expect(await exists()).toEqual({ topic: false, subscription: false, deadLetters: false });
    } finally {
      await requester.close();
      // The request queue and its dead-letter queue too: the emulator keeps them until it restarts.
      await consumer?.stop();
      await (await responder.transport())
        .unprovision?.([
          { kind: "queue", name: queue },
          { kind: "queue", name: `${queue}.dlq` },
        ])
        .catch(() => {});
      await responder.close();
    }
  });
});
