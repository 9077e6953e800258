// Fault test (issue 22): a consumer process is SIGKILLed while it holds messages and a new one takes
// over; a producer process is SIGKILLed with a batch in flight and a new one sends again from the first
// unacknowledged message (processKillCase, @switchyard/broker-stack/fault). RabbitMQ keeps running.
// The consumer is killed twice: on a plain queue, and on a single-active-consumer queue, where the
// adapter claims per-key order, so the case checks it across the kill.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { processKillCase } from "@switchyard/broker-stack/fault";
import { expect, it } from "vitest";

const url = brokerEndpoint("rabbitmq").url;
const prefix = `sy-fault-rmq-kill-${randomUUID().slice(0, 8)}`;

describeWithBroker("rabbitmq", "rabbitmq fault: a process SIGKILLed mid-stream", () => {
  it("10,000 messages: the consumer killed holding messages, a new one handles every message", async () => {
    const figures = await processKillCase({
      broker: "rabbitmq",
      adapter: "adapters/rabbitmq/fault",
      kill: "consumer",
      url,
      target: { kind: "queue", name: `${prefix}-consumer` },
    });
    expect(figures.ordering).toBe("none");
  });

  it("10,000 messages, single active consumer: the consumer killed, a new one keeps per-key order", async () => {
    const figures = await processKillCase({
      broker: "rabbitmq (single active consumer)",
      adapter: "adapters/rabbitmq/fault",
      kill: "consumer",
      url: `${url}?singleActiveConsumer=true`,
      target: { kind: "queue", name: `${prefix}-sac` },
    });
    expect(figures.ordering).toBe("key");
  });

  it("10,000 messages: the producer killed mid-batch, every acknowledged message delivered, nothing torn", async () => {
    const figures = await processKillCase({
      broker: "rabbitmq",
      adapter: "adapters/rabbitmq/fault",
      kill: "producer",
      url,
      target: { kind: "topic", name: `${prefix}-producer`, subscription: "fault" },
    });
    expect(figures.ordering).toBe("none");
  });
});
