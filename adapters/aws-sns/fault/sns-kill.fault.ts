// Fault test (issue 22): a consumer process is SIGKILLed while it holds messages and a new one takes
// over; a producer process is SIGKILLed with a batch in flight and a new one sends again from the first
// unacknowledged message (processKillCase, @switchyard/broker-stack/fault). moto keeps running. The
// consumer reads the topic's subscription queue; a 10 s visibility timeout brings back what the killed
// consumer held soon. 300 messages in batches of 50, not 10,000: moto took 7–25 messages/s here on a
// loaded machine (500 per case made the file run 6 min), and messages waiting longer than the
// visibility timeout come back as duplicates.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { processKillCase } from "@switchyard/broker-stack/fault";
import { expect, it } from "vitest";

const TOTAL = Number(process.env.FAULT_TOTAL ?? 300);
const endpoint = new URL(brokerEndpoint("moto").url);
const url = `sns://${endpoint.host}?region=${localAws.region}`;
const adapterOptions = {
  credentials: localAws.credentials,
  waitTimeSeconds: 1,
  visibilityTimeoutSeconds: 10,
};
const prefix = `sy-fault-sns-kill-${randomUUID().slice(0, 8)}`;

describeWithBroker("moto", "aws-sns fault (moto): a process SIGKILLed mid-stream", () => {
  it("the consumer killed holding messages, a new one handles every message", async () => {
    const figures = await processKillCase({
      broker: "moto (sns)",
      adapter: "adapters/aws-sns/fault",
      kill: "consumer",
      url,
      adapterOptions,
      target: { kind: "topic", name: `${prefix}-consumer`, subscription: "fault" },
      total: TOTAL,
      killAt: Math.round(TOTAL * 0.3),
      batch: 50,
      timeoutMs: 180_000,
    });
    expect(figures.ordering).toBe("none");
  });

  it("the producer killed mid-batch, every acknowledged message delivered, nothing torn", async () => {
    const figures = await processKillCase({
      broker: "moto (sns)",
      adapter: "adapters/aws-sns/fault",
      kill: "producer",
      url,
      adapterOptions,
      target: { kind: "topic", name: `${prefix}-producer`, subscription: "fault" },
      total: TOTAL,
      killAt: Math.round(TOTAL * 0.3),
      batch: 50,
      timeoutMs: 180_000,
    });
    expect(figures.ordering).toBe("none");
  });
});
