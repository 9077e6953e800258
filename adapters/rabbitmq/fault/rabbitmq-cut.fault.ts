// Fault test (issue 22): every AMQP connection between the buses and RabbitMQ is cut through a
// loopback TCP proxy mid-stream, new ones refused for ~2 s, then let through again; RabbitMQ keeps
// running. Producer and consumer reconnect on their own (no new bus), every message is handled at
// least once, and the duplicates are counted and reported. Runs only in the fault phase.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { connectionCutCase, Handled, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { expect, it } from "vitest";
import { createTransport, type RabbitTransport } from "../src/index.js";

const { Ping } = messages;
const TOTAL = 10_000;

describeWithBroker("rabbitmq", "rabbitmq fault: connections cut through a proxy mid-stream", () => {
  it("10,000 messages: both sides reconnect on their own and every message is handled", async () => {
    const url = new URL(brokerEndpoint("rabbitmq").url);
    const proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 5672) });
    url.host = proxy.hostPort;
    const queue = `sy-fault-rmq-cut-${randomUUID().slice(0, 8)}`;
    const producerTransport = createTransport(url) as RabbitTransport;
    const consumerTransport = createTransport(url) as RabbitTransport;
    const producer = createBus({ transport: producerTransport, source: "fault-producer" });
    const errors: string[] = [];
    const consumer = createBus({
      transport: consumerTransport,
      source: "fault-consumer",
      hooks: { onError: (event) => errors.push(String(event.error)) },
    });
    const handled = new Handled();
    await consumer
      .consume(queue)
      .on(Ping, async (msg) => handled.add(msg.data.n))
      .start({ concurrency: 32 });
    await connectionCutCase({
      broker: "rabbitmq",
      adapter: "adapters/rabbitmq/fault",
      proxy,
      total: TOTAL,
      handled,
      errors,
      producer,
      consumer,
      send: (numbers) =>
        producer
          .sendBatch(
            queue,
            Ping,
            numbers.map((n) => ({ data: { n }, options: { id: `${queue}-${n}` } })),
          )
          .then(() => {}),
      figures: () => ({
        producerReconnects: producerTransport.reconnects,
        consumerReconnects: consumerTransport.reconnects,
      }),
    });
    // Both sides lost their connection and came back over a new one of their own.
    expect(producerTransport.reconnects).toBeGreaterThanOrEqual(1);
    expect(consumerTransport.reconnects).toBeGreaterThanOrEqual(1);
  });
});
