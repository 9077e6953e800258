// Fault test (issue 10): Kafka is stopped and started again (`brokers.sh down kafka`, then `up`) during
// a stream of 10,000 messages, once per driver. Producer and consumer recover on their own (no new bus),
// every message is handled at least once, and the duplicates are counted and reported.
// Runs only in the fault phase (vitest.fault.config.ts), alone: it restarts the shared broker.
import { randomUUID } from "node:crypto";
import { describeWithBroker } from "@switchyard/broker-stack/available";
import { brokerPid, brokers, closeWithin, Handled, sleep } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { afterAll, describe, expect, it } from "vitest";
import type { DriverName } from "../src/driver.js";
import { kafkaTransport } from "../test/helpers.js";

const { Ping } = messages;
const TOTAL = 10_000;
const BATCH = 100;
/** The stream is paced (~1,000 messages/s) so the outage falls in its middle. */
const PACE_MS = 100;
const OUTAGE_AT = 3_000;
const DOWN_MS = 2_000;

const DRIVERS: DriverName[] = ["platformatic", "kafkajs"];

describeWithBroker("kafka", "kafka fault: Kafka restarted mid-stream", () => {
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
      let publishFailures = 0;
      let lastPublishError = "";
      let outage:
        | { from: number; stopped?: number; to?: number; pidBefore?: string; pidAfter?: string }
        | undefined;
      let outageDone: Promise<void> | undefined;
      /** First message published once the old broker process was gone: only the restarted Kafka has it. */
      let firstAfter: number | undefined;
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
                  `\n!!! FAULT TEST (adapters/kafka/fault, ${driver}): stopping the shared Kafka (brokers.sh down kafka) ` +
                    `for ~${DOWN_MS / 1000} s plus its start-up, to prove recovery; brokers.sh up kafka follows.\n`,
                );
                outage = { from: Date.now(), pidBefore: brokerPid("kafka") };
                await brokers(["down", "kafka"], 60_000);
                outage.stopped = Date.now();
                await sleep(DOWN_MS);
                await brokers(["up", "kafka"]);
                outage.to = Date.now();
                outage.pidAfter = brokerPid("kafka");
                console.warn(`!!! FAULT TEST: Kafka is up again\n`);
              })();
            }
            if (outage?.stopped !== undefined && firstAfter === undefined) firstAfter = from;
            const items = Array.from({ length: BATCH }, (_, i) => ({
              data: { n: from + i },
              options: { id: `${queue}-${from + i}` },
            }));
            // A batch the client gave up on while Kafka was down is sent again, as an application
            // would (bounded: 90 s of retries).
            const deadline = Date.now() + 90_000;
            for (;;) {
              try {
                await producer.sendBatch(queue, Ping, items);
                break;
              } catch (error) {
                publishFailures++;
                lastPublishError = String(error);
                if (Date.now() > deadline) throw error;
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
        const figures = {
          broker: `kafka (${driver})`,
          messages: TOTAL,
          handled: handled.calls,
          distinct: handled.ids.size,
          duplicates: handled.calls - handled.ids.size,
          stopMs: outage?.stopped && outage.stopped - outage.from,
          outageMs: outage?.to && outage.to - outage.from,
          brokerPid: `${outage?.pidBefore} -> ${outage?.pidAfter}`,
          firstPublishedAfterStop: firstAfter,
          publishFailures,
          lastPublishError: lastPublishError.slice(0, 200),
          handlerErrors: errors.length,
          runtimeMs: Date.now() - started,
        };
        console.log(`FAULT ${JSON.stringify(figures)}`);
        // The broker really restarted in the middle of the stream…
        expect(outage?.to).toBeDefined();
        expect(outage?.pidAfter).toBeDefined();
        expect(outage?.pidAfter).not.toBe(outage?.pidBefore);
        expect(firstAfter).toBeLessThan(TOTAL);
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
