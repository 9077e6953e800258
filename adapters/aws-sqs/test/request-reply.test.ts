// The reply queue of bus.request() on ElasticMQ: created by the first request, deleted when the
// requesting bus closes (Transport.unprovision). The SNS adapter shares this code (SqsBase).
import { GetQueueUrlCommand, SQSClient } from "@aws-sdk/client-sqs";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { expect, it } from "vitest";
import { SqsTransport } from "../src/index.js";

const { Ping } = messages;

describeWithBroker("elasticmq", "aws-sqs on ElasticMQ: request-reply", () => {
  const endpoint = brokerEndpoint("elasticmq").url;
  const make = () => new SqsTransport({ endpoint, ...localAws, waitTimeSeconds: 1 });
  const raw = new SQSClient({ endpoint, ...localAws });
  const exists = (name: string) =>
    raw.send(new GetQueueUrlCommand({ QueueName: name })).then(
      () => true,
      () => false,
    );

  it("the first request creates the bus's reply queue and close() deletes it", async () => {
    const run = Math.random().toString(36).slice(2, 10);
    const queue = `sy-rr-${run}`;
    const replyQueue = `sy-replies-${run}`;
    const requester = createBus({ transport: make(), replyQueue });
    const responder = createBus({ transport: make() });
    try {
      await responder
        .consume(queue)
        .on(Ping, (msg, ctx) => ctx.reply(Ping, { n: msg.data.n + 1 }))
        .start();
      expect(await exists(replyQueue)).toBe(false);
      const reply = await requester.request(queue, Ping, { n: 1 }, { timeoutMs: 15_000, replyType: Ping });
      expect(reply.data.n).toBe(2);
      expect(await exists(replyQueue)).toBe(true);
      await requester.close();
      expect(await exists(replyQueue)).toBe(false);
    } finally {
      await Promise.all([requester.close(), responder.close()]);
    }
  });
});
