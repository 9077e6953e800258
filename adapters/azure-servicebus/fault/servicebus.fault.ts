// Fault test (issue 22): every AMQP connection between the buses and a Service Bus emulator is cut
// through a loopback TCP proxy mid-stream, new ones refused for ~2 s, then let through again; the
// emulator keeps running. Producer and consumer recover on their own (no new bus), every message is
// handled at least once, and the duplicates are counted and reported. Runs only in the fault phase.
import { randomUUID } from "node:crypto";
import { closeWithin, Handled, runConnectionCut, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { type ServiceBusEmulator, startEmulator } from "@switchyard/servicebus-emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const { Ping } = messages;
const TOTAL = Number(process.env.FAULT_TOTAL ?? 10_000);

// The emulator runs in this process (as in the conformance suite), so the shared one is untouched.
let emulator: ServiceBusEmulator;
beforeAll(async () => {
  emulator = await startEmulator({ port: 0, adminPort: 0 });
});
afterAll(async () => {
  await emulator?.stop();
});

describe("azure-servicebus fault: connections cut through a proxy mid-stream", () => {
  it("10,000 messages: both sides reconnect on their own and every message is handled", async () => {
    const started = Date.now();
    const proxy = await TcpProxy.start({ host: "127.0.0.1", port: emulator.port });
    const queue = `sy-fault-sb-${randomUUID().slice(0, 8)}`;
    const url = new URL(`azure-servicebus://${proxy.hostPort}?emulator=true&adminUrl=${emulator.adminUrl}`);
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
        .consume(queue)
        .on(Ping, async (msg) => handled.add(msg.data.n))
        .start({ concurrency: 64, prefetch: 200 });
      const stream = await runConnectionCut({
        adapter: "adapters/azure-servicebus/fault",
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
        broker: "servicebus",
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
