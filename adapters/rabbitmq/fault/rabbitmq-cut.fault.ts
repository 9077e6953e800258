// Fault test (issue 22): every AMQP connection between the buses and RabbitMQ is cut through a
// loopback TCP proxy mid-stream, new ones refused for ~2 s, then let through again; RabbitMQ keeps
// running. Producer and consumer reconnect on their own (no new bus), every message is handled at
// least once, and the duplicates are counted and reported. Runs only in the fault phase.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { closeWithin, Handled, runConnectionCut, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { expect, it } from "vitest";
import { createTransport, type RabbitTransport } from "../src/index.js";

const { Ping } = messages;
const TOTAL = 10_000;

describeWithBroker("rabbitmq", "rabbitmq fault: connections cut through a proxy mid-stream", () => {
  it("10,000 messages: both sides reconnect on their own and every message is handled", async () => {
    const started = Date.now();
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
    try {
      await consumer
        .consume(queue)
        .on(Ping, async (msg) => handled.add(msg.data.n))
        .start({ concurrency: 32 });
      const stream = await runConnectionCut({
        adapter: "adapters/rabbitmq/fault",
        proxy,
        handled,
        total: TOTAL,
        send: (numbers) =>
          producer
            .sendBatch(
              queue,
              Ping,
              numbers.map((n) => ({ data: { n }, options: { id: `${queue}-${n}` } })),
            )
            .then(() => {}),
        maxRetries: 20,
      });
      const figures = {
        broker: "rabbitmq",
        fault: "connection-cut",
        messages: TOTAL,
        handled: handled.calls,
        distinct: handled.ids.size,
        lost: TOTAL - handled.ids.size,
        duplicates: handled.calls - handled.ids.size,
        outageMs: stream.outage.to && stream.outage.to - stream.outage.from,
        recoveryMs: stream.recoveryMs,
        publishFailures: stream.publishFailures,
        producerReconnects: producerTransport.reconnects,
        consumerReconnects: consumerTransport.reconnects,
        proxyResets: proxy.resets,
        handlerErrors: errors.length,
        runtimeMs: Date.now() - started,
      };
      console.log(`FAULT ${JSON.stringify(figures)}`);
      expect(stream.outage.to).toBeDefined();
      expect(proxy.resets).toBeGreaterThan(0);
      expect(handled.ids.size).toBe(TOTAL);
      await closeWithin(60_000, [producer, consumer]);
      // Both sides lost their connection and came back over a new one of their own.
      expect(producerTransport.reconnects).toBeGreaterThanOrEqual(1);
      expect(consumerTransport.reconnects).toBeGreaterThanOrEqual(1);
    } finally {
      await closeWithin(60_000, [producer, consumer]).catch(() => {});
      await proxy.close();
    }
  });
});
