// Fault test (issue 10): Kafka is stopped and started again (`brokers.sh down kafka`, then `up`) during
// a stream of 10,000 messages, once per driver. Producer and consumer recover on their own (no new bus),
// every message is handled at least once, and the duplicates are counted and reported.
// Runs only in the fault phase (vitest.fault.config.ts), alone: it restarts the shared broker.
import { randomUUID } from "node:crypto";
import { describeWithBroker } from "@switchyard/broker-stack/available";
import { brokerPid, brokers, closeWithin, Handled, runOutageStream } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DriverName } from "../src/driver.js";
import { kafkaTransport } from "../test/helpers.js";

const { Ping } = messages;
/** runOutageStream's default: 10,000 messages at ~1,000/s, Kafka stopped for ~2 s at message 3,000. */
const TOTAL = 10_000;

const DRIVERS: DriverName[] = ["platformatic", "kafkajs"];

describeWithBroker("kafka", "kafka fault: Kafka restarted mid-stream", () => {
  beforeAll(async () => {
    // The suites before this phase leave thousands of topics (a partition each costs the broker's
    // start-up: with ~15,000 partitions it took 30 s to stop and 70–100 s to start, beyond what a
    // client's retries are meant to ride out). The fault phase runs alone, after every other suite:
    // Kafka is emptied first, so the restart measured here is the broker's, not its backlog's.
    console.error(
      "\n!!! FAULT TEST: (adapters/kafka/fault) emptying the shared Kafka (brokers.sh reset kafka) first.\n",
    );
    await brokers(["reset", "kafka"], 120_000);
    await brokers(["up", "kafka"]);
  }, 240_000);

  afterAll(async () => {
    // Whatever happened, the shared broker is left running and healthy.
    await brokers(["up", "kafka"]);
  });

  describe.each(DRIVERS)("driver %s", (driver) => {
    it("10,000 messages: producer and consumer recover on their own and every message is handled", async () => {
      const started = Date.now();
      const queue = `sy-fault-kafka-${driver}-${randomUUID().slice(0, 8)}`;
      const producer = createBus({ transport: kafkaTransport(driver), source: "fault-producer" });
      const errors: string[] = [];
      const consumer = createBus({
        transport: kafkaTransport(driver),
        source: "fault-consumer",
        hooks: { onError: (event) => errors.push(String(event.error)) },
      });
      const handled = new Handled();
      const pids: { before?: string; after?: string } = {};
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
              `(adapters/kafka/fault, ${driver}) stopping the shared Kafka (brokers.sh down kafka) for ~2 s ` +
              "plus its start-up, to prove recovery; brokers.sh up kafka follows.",
            stop: async () => {
              pids.before = brokerPid("kafka");
              await brokers(["down", "kafka"], 60_000);
            },
            start: async () => {
              await brokers(["up", "kafka"]);
              pids.after = brokerPid("kafka");
            },
          },
          // A batch the client gave up on while Kafka was down is sent again, as an application would.
          retryForMs: 90_000,
        });
        const { outage, firstAfterStop } = stream;
        const figures = {
          broker: `kafka (${driver})`,
          messages: TOTAL,
          handled: handled.calls,
          distinct: handled.ids.size,
          duplicates: handled.calls - handled.ids.size,
          stopMs: outage.stopped && outage.stopped - outage.from,
          outageMs: outage.to && outage.to - outage.from,
          brokerPid: `${pids.before} -> ${pids.after}`,
          firstPublishedAfterStop: firstAfterStop,
          publishFailures: stream.publishFailures,
          lastPublishError: stream.lastPublishError,
          handlerErrors: errors.length,
          runtimeMs: Date.now() - started,
        };
        console.log(`FAULT ${JSON.stringify(figures)}`);
        // The broker really restarted in the middle of the stream…
        expect(outage.to).toBeDefined();
        expect(pids.after).toBeDefined();
        expect(pids.after).not.toBe(pids.before);
        expect(firstAfterStop).toBeLessThan(TOTAL);
        // …and every message was handled, those sent after the restart by the recovered consumer.
        expect(handled.ids.size).toBe(TOTAL);
        // …and both buses close in bounded time after the outage.
        await closeWithin(60_000, [producer, consumer]);
      } finally {
        await closeWithin(60_000, [producer, consumer]).catch(() => {});
      }
    });
  });
});
