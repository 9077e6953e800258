import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import { expect, it } from "vitest";
import { brokerEndpoint, describeWithBroker } from "../src/available.ts";

describeWithBroker("rabbitmq", "rabbitmq smoke (amqplib)", () => {
  it("sends one message and receives it", async () => {
    const conn = await amqp.connect(brokerEndpoint("rabbitmq").url);
    try {
      const ch = await conn.createConfirmChannel();
      const queue = `smoke-${randomUUID()}`;
      await ch.assertQueue(queue, { durable: false, autoDelete: false });
      const payload = JSON.stringify({ id: randomUUID(), text: "hello amqp" });
      ch.sendToQueue(queue, Buffer.from(payload), {
        contentType: "application/json",
        headers: { "x-t": "1" },
      });
      await ch.waitForConfirms();
      const received = await new Promise<amqp.ConsumeMessage>((resolve) => {
        ch.consume(queue, (m) => {
          if (m) {
            ch.ack(m);
            resolve(m);
          }
        });
      });
      expect(received.content.toString()).toBe(payload);
      expect(received.properties.headers?.["x-t"]).toBe("1");
      await ch.deleteQueue(queue);
      await ch.close();
    } finally {
      await conn.close();
    }
  });
});

describeWithBroker("rabbitmq-management", "rabbitmq management API", () => {
  it("answers with the stomp and management plugins enabled", async () => {
    const u = new URL(brokerEndpoint("rabbitmq-management").url);
    const auth = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString(
      "base64",
    );
    const res = await fetch(`${u.protocol}//${u.host}/api/overview`, {
      headers: { authorization: `Basic ${auth}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { listeners: { protocol: string }[] };
    expect(body.listeners.map((l) => l.protocol)).toEqual(expect.arrayContaining(["amqp", "stomp", "http"]));
  });
});
