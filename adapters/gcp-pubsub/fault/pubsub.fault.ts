// Fault test (issue 22): every connection between the buses and the Pub/Sub emulator is cut through a
// loopback TCP proxy mid-stream, new ones refused for ~2 s, then let through again; the emulator keeps
// running. Producer and consumer recover on their own (no new bus), every message is handled at least
// once, and the duplicates are counted and reported. The streaming pulls the cut ended reach the
// consumer's onError hook as recovered errors (attempt 0, willRetry). Runs only in the fault phase
// (vitest.fault.config.ts).
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { connectionCutCase, Handled, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { type BusHooks, createBus, isSwitchyardError } from "@switchyard/core";
import { expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const { Ping } = messages;
const TOTAL = Number(process.env.FAULT_TOTAL ?? 10_000);
type ErrorEvent = Parameters<NonNullable<BusHooks["onError"]>>[0];

describeWithBroker("pubsub", "gcp-pubsub fault: connections cut through a proxy mid-stream", () => {
  it("10,000 messages: both sides reconnect on their own and every message is handled", async () => {
    const [host = "127.0.0.1", port = "8085"] = brokerEndpoint("pubsub").url.split(":");
    const proxy = await TcpProxy.start({ host, port: Number(port) });
    const topic = `sy-fault-pubsub-${randomUUID().slice(0, 8)}`;
    const url = new URL(`pubsub://switchyard-fault?emulator=${proxy.hostPort}`);
    process.env.METADATA_SERVER_DETECTION = "none";
    const producer = createBus({ transport: createTransport(url), source: "fault-producer" });
    const errors: string[] = [];
    // The subscription's own reports (a failed ack or nack is the core's, with the message's attempt).
    const recovered: ErrorEvent[] = [];
    const consumer = createBus({
      transport: createTransport(url),
      source: "fault-consumer",
      hooks: {
        onError: (event) => {
          errors.push(String(event.error));
          if (String(event.error).includes("pubsub: subscription")) recovered.push(event);
        },
      },
    });
    const handled = new Handled();
    await consumer
      .subscribe(topic, "fault")
      .on(Ping, async (msg) => handled.add(msg.data.n))
      .start({ concurrency: 64, prefetch: 200 });
    await connectionCutCase({
      broker: "pubsub",
      adapter: "adapters/gcp-pubsub/fault",
      proxy,
      total: TOTAL,
      handled,
      errors,
      producer,
      consumer,
      send: (numbers) =>
        producer
          .publishBatch(
            topic,
            Ping,
            numbers.map((n) => ({ data: { n }, options: { id: `${topic}-${n}` } })),
          )
          .then(() => {}),
      figures: () => ({ recoveredErrors: recovered.length }),
    });
    expect(recovered.length).toBeGreaterThan(0);
    for (const event of recovered) {
      expect(event).toMatchObject({ attempt: 0, willRetry: true, source: { name: topic } });
      expect(isSwitchyardError(event.error, "TRANSPORT_ERROR")).toBe(true);
    }
  });
});
