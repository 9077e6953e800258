// Fault test (issue 11): `rabbitmqctl stop_app` then `start_app` on the shared RabbitMQ during a stream
// of 10,000 messages. Producer and consumer recover on their own (no new bus, no restart), every
// message is handled at least once, and the duplicates are counted and reported.
// Runs only in the fault phase (vitest.fault.config.ts), alone: it stops the broker's application.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { brokers, closeWithin, Handled, runOutageStream } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { afterAll, expect, it } from "vitest";
import { createTransport, type RabbitTransport } from "../src/index.js";

const { Ping } = messages;
const url = new URL(brokerEndpoint("rabbitmq").url);
/** runOutageStream's default: 10,000 messages at ~1,000/s, the outage at message 3,000. */
const TOTAL = 10_000;
const DOWN_MS = 3_000;

describeWithBroker("rabbitmq", "rabbitmq fault: stop_app / start_app mid-stream", () => {
  let stopped = false;
  afterAll(async () => {
    // Whatever happened, the shared broker is left running and healthy.
    if (stopped) await brokers(["ctl", "rabbitmq", "start_app"], 60_000).catch(() => {});
    await brokers(["up", "rabbitmq"]);
  });

  it("10,000 messages: both sides reconnect on their own and every message is handled", async () => {
    const started = Date.now();
    const queue = `sy-fault-rmq-${randomUUID().slice(0, 8)}`;
    const producerTransport = createTransport(url, {
      connectionName: `${queue}-producer`,
    }) as RabbitTransport;
    const consumerTransport = createTransport(url, {
      connectionName: `${queue}-consumer`,
    }) as RabbitTransport;
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
      const stream = await runOutageStream({
        handled,
        send: (numbers) =>
          producer
            .sendBatch(
              queue,
              Ping,
              numbers.map((n) => ({ data: { n }, options: { id: `${queue}-${n}` } })),
            )
            .then(() => {}),
        outage: {
          announce:
            "(adapters/rabbitmq/fault) stopping the shared RabbitMQ application (rabbitmqctl stop_app) " +
            `for ~${DOWN_MS / 1000} s to prove recovery; start_app follows.`,
          stop: async () => {
            stopped = true;
            await brokers(["ctl", "rabbitmq", "stop_app"], 60_000);
          },
          start: async () => {
            await brokers(["ctl", "rabbitmq", "start_app"], 60_000);
            stopped = false;
          },
        },
        downMs: DOWN_MS,
        // A batch the adapter gave up on (publishTimeoutMs) is sent again, as an application would.
        maxRetries: 5,
      });
      const { outage } = stream;
      const figures = {
        broker: "rabbitmq",
        messages: TOTAL,
        handled: handled.calls,
        distinct: handled.ids.size,
        duplicates: handled.calls - handled.ids.size,
        outageMs: outage.to && outage.to - outage.from,
        publishFailures: stream.publishFailures,
        producerReconnects: producerTransport.reconnects,
        consumerReconnects: consumerTransport.reconnects,
        handlerErrors: errors.length,
        runtimeMs: Date.now() - started,
      };
      console.log(`FAULT ${JSON.stringify(figures)}`);
      expect(outage.to).toBeDefined();
      expect(handled.ids.size).toBe(TOTAL);
      // …and both buses close in bounded time after the outage.
      await closeWithin(60_000, [producer, consumer]);
      // Both sides saw the outage and came back over a new connection of their own.
      expect(producerTransport.reconnects).toBeGreaterThanOrEqual(1);
      expect(consumerTransport.reconnects).toBeGreaterThanOrEqual(1);
    } finally {
      await closeWithin(60_000, [producer, consumer]).catch(() => {});
    }
  });
});
