// Fault test (issue 22): a consumer process is SIGKILLed while it holds messages and a new one takes
// over; a producer process is SIGKILLed with a batch in flight and a new one sends again from the first
// unacknowledged message (processKillCase, @switchyard/broker-stack/fault). ActiveMQ keeps running.
// Keys are message groups there (ordering "group"), so per-key order is checked across both kills.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { processKillCase } from "@switchyard/broker-stack/fault";
import { expect, it } from "vitest";

const url = new URL(brokerEndpoint("activemq").url);
url.protocol = "stomp+activemq:";
const prefix = `sy-fault-stomp-kill-${randomUUID().slice(0, 8)}`;

describeWithBroker("activemq", "stomp fault (ActiveMQ): a process SIGKILLed mid-stream", () => {
  it("10,000 messages: the consumer killed holding messages, a new one handles every message in key order", async () => {
    const figures = await processKillCase({
      broker: "activemq (stomp)",
      adapter: "adapters/stomp/fault",
      kill: "consumer",
      url: url.href,
      target: { kind: "queue", name: `${prefix}-consumer` },
    });
    expect(figures.ordering).toBe("group");
  });

  it("10,000 messages: the producer killed mid-batch, every acknowledged message delivered, nothing torn", async () => {
    const figures = await processKillCase({
      broker: "activemq (stomp)",
      adapter: "adapters/stomp/fault",
      kill: "producer",
      url: url.href,
      target: { kind: "topic", name: `${prefix}-producer`, subscription: "fault" },
    });
    expect(figures.ordering).toBe("group");
  });
});
