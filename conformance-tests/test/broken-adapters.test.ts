// The suite must be able to fail: each adapter here is broken on purpose in one way, and the
// suite has to catch it. If one of these starts passing, the suite has lost its teeth.
import type { Delivery, Destination, Transport, WireMessage } from "@switchyard/core";
import { MemoryBroker, MemoryTransport } from "@switchyard/core/memory";
import { describe, expect, it } from "vitest";
import { type ConformanceTarget, conformanceCases, runCase } from "../src/index.js";

type Breakage = {
  capabilities?: Transport["capabilities"];
  publish?: (inner: Transport, destination: Destination, messages: WireMessage[]) => Promise<void>;
  delivery?: (delivery: Delivery) => Delivery;
};

function brokenTarget(name: string, breakage: Breakage): ConformanceTarget {
  const broker = new MemoryBroker();
  return {
    name,
    createTransport(): Transport {
      const inner = new MemoryTransport({ broker });
      return {
        name,
        capabilities: breakage.capabilities ?? inner.capabilities,
        provision: (entities) => inner.provision(entities),
        publish: (destination, messages) =>
          breakage.publish
            ? breakage.publish(inner, destination, messages)
            : inner.publish(destination, messages),
        subscribe: (source, options, deliver) =>
          inner.subscribe(source, options, (d) => deliver(breakage.delivery ? breakage.delivery(d) : d)),
        close: () => inner.close(),
      };
    },
  };
}

let published = 0;
const broken: Array<{ target: ConformanceTarget; caughtBy: string }> = [
  {
    caughtBy: "a burst of 1,000 messages arrives complete",
    target: brokenTarget("drops every tenth message", {
      publish: (inner, destination, messages) =>
        inner.publish(
          destination,
          messages.filter(() => ++published % 10 !== 0),
        ),
    }),
  },
  {
    caughtBy: "nack redelivers, and the handler sees the attempt count",
    target: brokenTarget("never redelivers", {
      // By delegation, not by spreading `d`: a delivery may be a class instance whose methods and
      // fields live on its prototype (the memory and Kafka adapters' are).
      delivery: (d) => ({
        message: d.message,
        attempt: d.attempt,
        ack: () => d.ack(),
        nack: () => d.ack(),
        ...(d.deadLetter ? { deadLetter: (fault) => d.deadLetter!(fault) } : {}),
      }),
    }),
  },
  {
    caughtBy: "every envelope field and 50 user headers round-trip exactly",
    target: brokenTarget("loses headers", {
      publish: (inner, destination, messages) =>
        inner.publish(
          destination,
          messages.map((m) => ({
            ...m,
            headers: Object.fromEntries(Object.entries(m.headers).filter(([name]) => name.startsWith("ce_"))),
          })),
        ),
    }),
  },
  {
    caughtBy: "the adapter's claimed capabilities match what it implements",
    target: brokenTarget("claims a native DLQ it does not have", {
      capabilities: { ...new MemoryTransport().capabilities, nativeDeadLetter: true },
      delivery: (d) => ({
        message: d.message,
        attempt: d.attempt,
        ack: () => d.ack(),
        nack: (options) => d.nack(options),
      }),
    }),
  },
];

describe.concurrent("the conformance suite catches broken adapters", () => {
  for (const { target, caughtBy } of broken) {
    it(`catches an adapter that ${target.name}`, async () => {
      const testCase = conformanceCases.find((c) => c.name === caughtBy);
      expect(testCase, `case "${caughtBy}"`).toBeDefined();
      // Shorter waits: the broken behaviour shows at once, no need for the full timeouts.
      const quick: ConformanceTarget = { ...target, timeScale: 0.3 };
      await expect(runCase(quick, testCase!)).rejects.toThrow();
    });
  }

  it("the same cases pass on the unbroken memory adapter", async () => {
    const healthy = brokenTarget("is healthy", {});
    for (const { caughtBy } of broken) {
      await runCase(healthy, conformanceCases.find((c) => c.name === caughtBy)!);
    }
  });
});
