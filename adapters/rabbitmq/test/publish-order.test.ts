import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import type { Destination, WireMessage } from "@switchyard/core";
import amqp from "amqplib";
import { expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const url = new URL(brokerEndpoint("rabbitmq").url);

describeWithBroker("rabbitmq", "rabbitmq adapter: publish order", () => {
  it("concurrent publishes reach the queue in call order, even while the first waits for the channel to drain", async () => {
    const transport = createTransport(url);
    const queue: Destination = { kind: "queue", name: `sy-rmq-order-${randomUUID().slice(0, 8)}` };
    const raw = await amqp.connect(url.toString());
    const channel = await raw.createChannel();
    try {
      await transport.connect?.();
      await transport.provision?.([queue]);
      const wire = (id: string, bytes: number): WireMessage => ({
        id,
        headers: {},
        body: new Uint8Array(bytes),
      });
      // amqplib's channel buffers ~2,000 messages before it asks for 'drain': the first batch waits
      // for it many times over, while the second is already asking to be written.
      const first = Array.from({ length: 6000 }, (_, i) => wire(`a-${i}`, 1024));
      const second = Array.from({ length: 5 }, (_, i) => wire(`b-${i}`, 1));
      await Promise.all([transport.publish(queue, first), transport.publish(queue, second)]);

      const ids: string[] = [];
      for (;;) {
        const got = await channel.get(queue.name, { noAck: true });
        if (got === false) break;
        ids.push(String(got.properties.messageId));
      }
      expect(ids).toEqual([...first, ...second].map((m) => m.id));
    } finally {
      await channel.deleteQueue(queue.name).catch(() => {});
      await raw.close();
      await transport.close();
    }
  });
});
