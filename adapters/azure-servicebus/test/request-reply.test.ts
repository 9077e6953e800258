// The reply queue of bus.request() on the shared Service Bus emulator: the first request creates
// it, and close() deletes it (Transport.unprovision).
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { expect, it } from "vitest";
import { createTransport } from "../src/index.js";

describeWithBroker("servicebus", "azure-servicebus adapter: request-reply", () => {
  const endpoint = brokerEndpoint("servicebus");
  const adminUrl = `http://${endpoint.host}:${endpoint.port + 1}`;
  const make = () =>
    createTransport(
      new URL(`servicebus://${endpoint.host}:${endpoint.port}?emulator=true&adminUrl=${adminUrl}`),
    );
  const exists = async (queue: string) => (await fetch(`${adminUrl}/queues/${queue}`)).ok;

  it("the first request creates the bus's reply queue and close() deletes it", async () => {
    const id = randomUUID().slice(0, 8);
    const queue = `sy-rr-${id}`;
    const replyQueue = `sy-replies-${id}`;
    const requester = createBus({ transport: make(), replyQueue });
    const responder = createBus({ transport: make() });
    try {
      await responder
        .consume(queue)
        .on(messages.Ping, (msg, ctx) => ctx.reply(messages.Ping, { n: msg.data.n + 100 }))
        .start();
      expect(await exists(replyQueue)).toBe(false);
      const reply = await requester.request(
        queue,
        messages.Ping,
        { n: 1 },
        {
          timeoutMs: 15_000,
          replyType: messages.Ping,
        },
      );
      expect(reply.data.n).toBe(101);
      expect(await exists(replyQueue)).toBe(true);
      await requester.close();
      expect(await exists(replyQueue)).toBe(false);
    } finally {
      await Promise.all([requester.close(), responder.close()]);
    }
  });
});
