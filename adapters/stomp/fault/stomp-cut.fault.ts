// Fault test (issue 22): every STOMP connection between the buses and ActiveMQ is cut through a
// loopback TCP proxy mid-stream, new ones refused for ~2 s, then let through again; ActiveMQ keeps
// running. Producer and consumer reconnect on their own (no new bus), every message is handled at
// least once, and the duplicates are counted and reported. Runs only in the fault phase.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { connectionCutCase, Handled, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const { Ping } = messages;
const TOTAL = 10_000;

describeWithBroker("activemq", "stomp fault (ActiveMQ): connections cut through a proxy mid-stream", () => {
  it("10,000 messages: both sides reconnect on their own and every message is handled", async () => {
    const url = new URL(brokerEndpoint("activemq").url);
    url.protocol = "stomp+activemq:";
    const proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 61613) });
    url.host = proxy.hostPort;
    const queue = `sy-fault-stomp-cut-${randomUUID().slice(0, 8)}`;
    const producer = createBus({ transport: createTransport(url), source: "fault-producer" });
    const errors: string[] = [];
    const consumer = createBus({
      transport: createTransport(url),
      source: "fault-consumer",
      hooks: { onError: (event) => errors.push(String(event.error)) },
    });
    const handled = new Handled();
    await consumer
      .consume(queue)
      .on(Ping, async (msg) => handled.add(msg.data.n))
      .start({ concurrency: 32 });
    await connectionCutCase({
      broker: "activemq (stomp)",
      adapter: "adapters/stomp/fault",
      proxy,
      total: TOTAL,
      handled,
      errors,
      producer,
      consumer,
      send: (numbers) =>
        producer
          .sendBatch(
            queue,
            Ping,
            numbers.map((n) => ({ data: { n }, options: { id: `${queue}-${n}` } })),
          )
          .then(() => {}),
    });
    expect(proxy.connections).toBeGreaterThan(2); // both clients came back over new connections
  });
});
