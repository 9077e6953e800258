// Fault test (issue 22): a consumer process is SIGKILLed while it holds messages and a new one takes
// over; a producer process is SIGKILLed with a batch in flight and a new one sends again from the first
// unacknowledged message (processKillCase, @switchyard/broker-stack/fault). The emulator runs in this
// test's process (as in the conformance suite; the shared one is untouched) and keeps running. Entities
// get a 5 s lock, so what the killed consumer had locked comes back within seconds. The consumer is
// killed twice: on a plain queue, and with sessions (keys are session ids, ordering "group"), where
// per-key order is checked across the kill.
import { randomUUID } from "node:crypto";
import { processKillCase } from "@switchyard/broker-stack/fault";
import { type ServiceBusEmulator, startEmulator } from "@switchyard/servicebus-emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let emulator: ServiceBusEmulator;
beforeAll(async () => {
  emulator = await startEmulator({ port: 0, adminPort: 0 });
});
afterAll(async () => {
  await emulator?.stop();
});

const prefix = `sy-fault-sb-kill-${randomUUID().slice(0, 8)}`;
const adapterOptions = { lockDurationMs: 5_000 };
const url = () => `azure-servicebus://127.0.0.1:${emulator.port}?emulator=true&adminUrl=${emulator.adminUrl}`;

describe("azure-servicebus fault (emulator): a process SIGKILLed mid-stream", () => {
  it("10,000 messages: the consumer killed holding messages, a new one handles every message", async () => {
    const figures = await processKillCase({
      broker: "servicebus",
      adapter: "adapters/azure-servicebus/fault",
      kill: "consumer",
      url: url(),
      adapterOptions,
      target: { kind: "queue", name: `${prefix}-consumer` },
    });
    expect(figures.ordering).toBe("none");
  });

  // 4,000: the emulator hands out sessions slowly (10,000 took 80 s here, the plain queue 16 s).
  it("4,000 messages, sessions: the consumer killed, a new one takes the sessions and keeps per-key order", async () => {
    const figures = await processKillCase({
      broker: "servicebus (sessions)",
      adapter: "adapters/azure-servicebus/fault",
      kill: "consumer",
      url: url(),
      adapterOptions: { ...adapterOptions, sessions: true },
      target: { kind: "queue", name: `${prefix}-sessions` },
      total: 4_000,
      killAt: 1_200,
    });
    expect(figures.ordering).toBe("group");
  });

  it("10,000 messages: the producer killed mid-batch, every acknowledged message delivered, nothing torn", async () => {
    const figures = await processKillCase({
      broker: "servicebus",
      adapter: "adapters/azure-servicebus/fault",
      kill: "producer",
      url: url(),
      adapterOptions,
      target: { kind: "topic", name: `${prefix}-producer`, subscription: "fault" },
    });
    expect(figures.ordering).toBe("none");
  });
});
