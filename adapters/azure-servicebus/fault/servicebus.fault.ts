// Fault test (issue 22): every AMQP connection between the buses and a Service Bus emulator is cut
// through a loopback TCP proxy mid-stream, new ones refused for ~2 s, then let through again; the
// emulator keeps running. Producer and consumer recover on their own (no new bus), every message is
// handled at least once, and the duplicates are counted and reported. What the receiver's
// subscribe() recovers from reaches the consumer's onError hook (attempt 0, willRetry). Runs only in
// the fault phase.
import { randomUUID } from "node:crypto";
import { connectionCutCase, Handled, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { type BusHooks, createBus, isSwitchyardError } from "@switchyard/core";
import { type ServiceBusEmulator, startEmulator } from "@switchyard/servicebus-emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const { Ping } = messages;
const TOTAL = Number(process.env.FAULT_TOTAL ?? 10_000);
type ErrorEvent = Parameters<NonNullable<BusHooks["onError"]>>[0];

// The emulator runs in this process (as in the conformance suite), so the shared one is untouched.
let emulator: ServiceBusEmulator;
beforeAll(async () => {
  emulator = await startEmulator({ port: 0, adminPort: 0 });
});
afterAll(async () => {
  await emulator?.stop();
});

// Sessions: 4,000, as in the kill test (the emulator hands out sessions slowly); keyed, 16 sessions.
describe.each([
  { mode: "plain queue", sessions: false, total: TOTAL, prefetch: 200 },
  { mode: "sessions", sessions: true, total: Math.min(TOTAL, 4_000), prefetch: 16 },
])(
  "azure-servicebus fault ($mode): connections cut through a proxy mid-stream",
  ({ sessions, total, prefetch }) => {
    it(`${total} messages: both sides reconnect on their own and every message is handled`, async () => {
      const proxy = await TcpProxy.start({ host: "127.0.0.1", port: emulator.port });
      const queue = `sy-fault-sb-${randomUUID().slice(0, 8)}`;
      const url = new URL(
        `azure-servicebus://${proxy.hostPort}?emulator=true&adminUrl=${emulator.adminUrl}${sessions ? "&sessions=true" : ""}`,
      );
      const producer = createBus({ transport: createTransport(url), source: "fault-producer" });
      const errors: string[] = [];
      // The receiver's own reports (a failed settlement is the core's, with the message's attempt).
      const recovered: ErrorEvent[] = [];
      const consumer = createBus({
        transport: createTransport(url),
        source: "fault-consumer",
        hooks: {
          onError: (event) => {
            errors.push(String(event.error));
            if (/cannot (receive from|accept a session of) "/.test(String(event.error)))
              recovered.push(event);
          },
        },
      });
      const handled = new Handled();
      await consumer
        .consume(queue)
        .on(Ping, async (msg) => handled.add(msg.data.n))
        .start({ concurrency: 64, prefetch });
      await connectionCutCase({
        broker: sessions ? "servicebus (sessions)" : "servicebus",
        adapter: "adapters/azure-servicebus/fault",
        proxy,
        total,
        handled,
        errors,
        producer,
        consumer,
        send: (numbers) =>
          producer
            .sendBatch(
              queue,
              Ping,
              numbers.map((n) => ({
                data: { n },
                options: { id: `${queue}-${n}`, ...(sessions ? { key: `k${n % 16}` } : {}) },
              })),
            )
            .then(() => {}),
        figures: () => ({ recoveredErrors: recovered.length }),
      });
      expect(recovered.length).toBeGreaterThan(0);
      for (const event of recovered) {
        expect(event).toMatchObject({ attempt: 0, willRetry: true, source: { name: queue } });
        expect(isSwitchyardError(event.error, "TRANSPORT_ERROR")).toBe(true);
        expect(String(event.error)).not.toContain("SharedAccessKey");
      }
    });
  },
);
