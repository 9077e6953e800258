// Fault test (issue 11): `rabbitmqctl stop_app` then `start_app` on the shared RabbitMQ during a stream
// of 10,000 messages. Producer and consumer recover on their own (no new bus, no restart), every
// message is handled at least once, and the duplicates are counted and reported.
// Runs only in the fault phase (vitest.fault.config.ts), alone: it stops the broker's application.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { brokers, closeWithin, Handled, sleep } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { afterAll, expect, it } from "vitest";
import { createTransport, type RabbitTransport } from "../src/index.js";

const { Ping } = messages;
const url = new URL(brokerEndpoint("rabbitmq").url);
const TOTAL = 10_000;
const BATCH = 100;
/** The stream is paced (~1,000 messages/s) so the outage falls in its middle. */
const PACE_MS = 100;
const OUTAGE_AT = 3_000;
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
    let publishFailures = 0;
    let outage: { from: number; to?: number } | undefined;
    let outageDone: Promise<void> | undefined;
    try {
      await consumer
        .consume(queue)
        .on(Ping, async (msg) => handled.add(msg.data.n))
        .start({ concurrency: 32 });

      const publishing = (async () => {
        for (let from = 0; from < TOTAL; from += BATCH) {
          if (from === OUTAGE_AT) {
            outageDone = (async () => {
              console.warn(
                `\n!!! FAULT TEST (adapters/rabbitmq/fault): stopping the shared RabbitMQ application ` +
                  `(rabbitmqctl stop_app) for ~${DOWN_MS / 1000} s to prove recovery; start_app follows.\n`,
              );
              stopped = true;
              outage = { from: Date.now() };
              await brokers(["ctl", "rabbitmq", "stop_app"], 60_000);
              await sleep(DOWN_MS);
              await brokers(["ctl", "rabbitmq", "start_app"], 60_000);
              stopped = false;
              outage.to = Date.now();
              console.warn(`!!! FAULT TEST: RabbitMQ application started again\n`);
            })();
          }
          const items = Array.from({ length: BATCH }, (_, i) => ({
            data: { n: from + i },
            options: { id: `${queue}-${from + i}` },
          }));
          // A batch the adapter gave up on (publishTimeoutMs) is sent again, as an application would.
          for (let tries = 0; ; tries++) {
            try {
              await producer.sendBatch(queue, Ping, items);
              break;
            } catch (error) {
              publishFailures++;
              if (tries >= 5) throw error;
              await sleep(500);
            }
          }
          await sleep(PACE_MS);
        }
      })();
      await publishing;
      await outageDone;
      await handled.reach(TOTAL, 90_000, `all ${TOTAL} messages handled`);
      await sleep(1_000); // late redeliveries still count as duplicates
      const duplicates = handled.calls - handled.ids.size;
      const figures = {
        broker: "rabbitmq",
        messages: TOTAL,
        handled: handled.calls,
        distinct: handled.ids.size,
        duplicates,
        outageMs: outage?.to && outage.to - outage.from,
        publishFailures,
        producerReconnects: producerTransport.reconnects,
        consumerReconnects: consumerTransport.reconnects,
        handlerErrors: errors.length,
        runtimeMs: Date.now() - started,
      };
      console.log(`FAULT ${JSON.stringify(figures)}`);
      expect(outage?.to).toBeDefined();
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
