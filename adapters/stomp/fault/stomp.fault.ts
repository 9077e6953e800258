// Fault test (issue 14): ActiveMQ is stopped and started again (`brokers.sh down activemq`, then `up`)
// during a stream of 10,000 messages through STOMP. Producer and consumer recover on their own (no new
// bus), every message is handled at least once, and the duplicates are counted and reported.
// Runs only in the fault phase (vitest.fault.config.ts), alone: it restarts the shared broker.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { brokerPid, brokers, closeWithin, Handled, runOutageStream } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { afterAll, expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const { Ping } = messages;
const url = new URL(brokerEndpoint("activemq").url);
url.protocol = "stomp+activemq:";
/** runOutageStream's default: 10,000 messages at ~1,000/s, ActiveMQ stopped for ~2 s at message 3,000. */
const TOTAL = 10_000;

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
            "(adapters/stomp/fault) stopping the shared ActiveMQ (brokers.sh down activemq) for ~2 s " +
            "plus its start-up, to prove recovery; brokers.sh up activemq follows.",
          stop: async () => {
            pids.before = brokerPid("activemq");
            await brokers(["down", "activemq"], 60_000);
          },
          start: async () => {
            await brokers(["up", "activemq"]);
            pids.after = brokerPid("activemq");
          },
        },
        // A batch the adapter gave up on (publishTimeoutMs) is sent again, as an application would.
        maxRetries: 5,
      });
      const { outage, firstAfterRestart } = stream;
      const figures = {
        broker: "activemq (stomp)",
        messages: TOTAL,
        handled: handled.calls,
        distinct: handled.ids.size,
        duplicates: handled.calls - handled.ids.size,
        outageMs: outage.to && outage.to - outage.from,
        brokerPid: `${pids.before} -> ${pids.after}`,
        firstPublishedAfterRestart: firstAfterRestart,
        publishFailures: stream.publishFailures,
        handlerErrors: errors.length,
        runtimeMs: Date.now() - started,
      };
      console.log(`FAULT ${JSON.stringify(figures)}`);
      // The broker really restarted in the middle of the stream…
      expect(outage.to).toBeDefined();
      expect(pids.after).toBeDefined();
      expect(pids.after).not.toBe(pids.before);
      expect(firstAfterRestart).toBeLessThan(TOTAL);
      // …and every message was handled, those sent after the restart through the consumer's new connection.
      expect(handled.ids.size).toBe(TOTAL);
      // …and both buses close in bounded time after the outage.
      await closeWithin(60_000, [producer, consumer]);
    } finally {
      await closeWithin(60_000, [producer, consumer]).catch(() => {});
    }
  });
});
