// Fault test (issue 22): every connection between the buses and the Pub/Sub emulator is cut through a
// loopback TCP proxy mid-stream, new ones refused for ~2 s, then let through again; the emulator keeps
// running. Producer and consumer recover on their own (no new bus), every message is handled at least
// once, and the duplicates are counted and reported. Runs only in the fault phase (vitest.fault.config.ts).
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { closeWithin, Handled, runConnectionCut, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const { Ping } = messages;
const TOTAL = Number(process.env.FAULT_TOTAL ?? 10_000);

describeWithBroker("pubsub", "gcp-pubsub fault: connections cut through a proxy mid-stream", () => {
  it("10,000 messages: both sides reconnect on their own and every message is handled", async () => {
    const started = Date.now();
    const [host = "127.0.0.1", port = "8085"] = brokerEndpoint("pubsub").url.split(":");
    const proxy = await TcpProxy.start({ host, port: Number(port) });
    const topic = `sy-fault-pubsub-${randomUUID().slice(0, 8)}`;
    const url = new URL(`pubsub://switchyard-fault?emulator=${proxy.hostPort}`);
    process.env.METADATA_SERVER_DETECTION = "none";
    const producer = createBus({ transport: createTransport(url), source: "fault-producer" });
    const errors: string[] = [];
    const consumer = createBus({
      transport: createTransport(url),
      source: "fault-consumer",
      hooks: { onError: (event) => errors.push(String(event.error)) },
    });
    const handled = new Handled();
    try {
      await consumer
        .subscribe(topic, "fault")
        .on(Ping, async (msg) => handled.add(msg.data.n))
        .start({ concurrency: 64, prefetch: 200 });
      const stream = await runConnectionCut({
        adapter: "adapters/gcp-pubsub/fault",
        proxy,
        handled,
        total: TOTAL,
        send: (numbers) =>
          producer
            .publishBatch(
              topic,
              Ping,
              numbers.map((n) => ({ data: { n }, options: { id: `${topic}-${n}` } })),
            )
            .then(() => {}),
        maxRetries: 20,
      });
      const figures = {
        broker: "pubsub",
        fault: "connection-cut",
        messages: TOTAL,
        handled: handled.calls,
        distinct: handled.ids.size,
        lost: TOTAL - handled.ids.size,
        duplicates: handled.calls - handled.ids.size,
        outageMs: stream.outage.to && stream.outage.to - stream.outage.from,
        recoveryMs: stream.recoveryMs,
        publishFailures: stream.publishFailures,
        proxyResets: proxy.resets,
        proxyConnections: proxy.connections,
        handlerErrors: errors.length,
        runtimeMs: Date.now() - started,
      };
      console.log(`FAULT ${JSON.stringify(figures)}`);
      expect(stream.outage.to).toBeDefined();
      expect(proxy.resets).toBeGreaterThan(0); // the cut really broke live connections
      expect(proxy.connections).toBeGreaterThan(1); // …and the clients came back over new ones
      expect(handled.ids.size).toBe(TOTAL);
      await closeWithin(60_000, [producer, consumer]);
    } finally {
      await closeWithin(60_000, [producer, consumer]).catch(() => {});
      await proxy.close();
    }
  });
});
