// Fault test (issue 14): ActiveMQ is stopped and started again (`brokers.sh down activemq`, then `up`)
// during a stream of 10,000 messages through STOMP. Producer and consumer recover on their own (no new
// bus), every message is handled at least once, and the duplicates are counted and reported.
// Runs only in the fault phase (vitest.fault.config.ts), alone: it restarts the shared broker.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { brokerPid, brokers, closeWithin, Handled, sleep } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { afterAll, expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const { Ping } = messages;
const url = new URL(brokerEndpoint("activemq").url);
url.protocol = "stomp+activemq:";
const TOTAL = 10_000;
const BATCH = 100;
/** The stream is paced (~1,000 messages/s) so the outage falls in its middle. */
const PACE_MS = 100;
const OUTAGE_AT = 3_000;
const DOWN_MS = 2_000;

describeWithBroker("activemq", "stomp fault: ActiveMQ restarted mid-stream", () => {
  afterAll(async () => {
    // Whatever happened, the shared broker is left running and healthy.
    await brokers(["up", "activemq"]);
  });

  it("10,000 messages: producer and consumer reconnect on their own and every message is handled", async () => {
    const started = Date.now();
    const queue = `sy-fault-stomp-${randomUUID().slice(0, 8)}`;
    const producer = createBus({ transport: createTransport(url), source: "fault-producer" });
    const errors: string[] = [];
    const consumer = createBus({
      transport: createTransport(url),
      source: "fault-consumer",
      hooks: { onError: (event) => errors.push(String(event.error)) },
    });
    const handled = new Handled();
    let publishFailures = 0;
    let outage: { from: number; to?: number; pidBefore?: string; pidAfter?: string } | undefined;
    let outageDone: Promise<void> | undefined;
    /** First message published once the broker was back: handling it needs the consumer's new connection. */
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
                `\n!!! FAULT TEST (adapters/stomp/fault): stopping the shared ActiveMQ (brokers.sh down activemq) ` +
                  `for ~${DOWN_MS / 1000} s plus its start-up, to prove recovery; brokers.sh up activemq follows.\n`,
              );
              outage = { from: Date.now(), pidBefore: brokerPid("activemq") };
              await brokers(["down", "activemq"], 60_000);
              await sleep(DOWN_MS);
              await brokers(["up", "activemq"]);
              outage.to = Date.now();
              outage.pidAfter = brokerPid("activemq");
              console.warn(`!!! FAULT TEST: ActiveMQ is up again\n`);
            })();
          }
          if (outage?.to !== undefined && firstAfter === undefined) firstAfter = from;
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
        broker: "activemq (stomp)",
        messages: TOTAL,
        handled: handled.calls,
        distinct: handled.ids.size,
        duplicates,
        outageMs: outage?.to && outage.to - outage.from,
        brokerPid: `${outage?.pidBefore} -> ${outage?.pidAfter}`,
        firstPublishedAfterRestart: firstAfter,
        publishFailures,
        handlerErrors: errors.length,
        runtimeMs: Date.now() - started,
      };
      console.log(`FAULT ${JSON.stringify(figures)}`);
      // The broker really restarted in the middle of the stream…
      expect(outage?.to).toBeDefined();
      expect(outage?.pidAfter).toBeDefined();
      expect(outage?.pidAfter).not.toBe(outage?.pidBefore);
      expect(firstAfter).toBeLessThan(TOTAL);
      // …and every message was handled, those sent after the restart through the consumer's new connection.
      expect(handled.ids.size).toBe(TOTAL);
      // …and both buses close in bounded time after the outage.
      await closeWithin(60_000, [producer, consumer]);
    } finally {
      await closeWithin(60_000, [producer, consumer]).catch(() => {});
    }
  });
});
