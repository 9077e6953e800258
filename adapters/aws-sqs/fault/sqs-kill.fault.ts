// Fault test (issue 22): a consumer process is SIGKILLed while it holds messages and a new one takes
// over; a producer process is SIGKILLed with a batch in flight and a new one sends again from the first
// unacknowledged message (processKillCase, @switchyard/broker-stack/fault). ElasticMQ keeps running.
// A 5 s visibility timeout brings back what the killed consumer held within seconds. The producer is
// killed on a FIFO queue, where the adapter claims per-key order (message groups) and the resent
// messages' deduplication ids are the ones already sent. 5,000 messages each, not 10,000: ElasticMQ
// takes ~170 messages/s here (10,000 each made the file run 110 s; sqs.fault.ts kills a consumer at
// 10,000 already).
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { processKillCase } from "@switchyard/broker-stack/fault";
import { expect, it } from "vitest";

const endpoint = new URL(brokerEndpoint("elasticmq").url);
const url = `sqs://${endpoint.host}?region=${localAws.region}`;
const adapterOptions = { credentials: localAws.credentials, waitTimeSeconds: 1, visibilityTimeoutSeconds: 5 };
const prefix = `sy-fault-sqs-kill-${randomUUID().slice(0, 8)}`;
const stream = { total: 5_000, killAt: 1_500 };

describeWithBroker("elasticmq", "aws-sqs fault (ElasticMQ): a process SIGKILLed mid-stream", () => {
  it("5,000 messages: the consumer killed holding messages, a new one handles every message", async () => {
    const figures = await processKillCase({
      broker: "elasticmq (sqs)",
      adapter: "adapters/aws-sqs/fault",
      kill: "consumer",
      url,
      adapterOptions,
      target: { kind: "queue", name: `${prefix}-consumer` },
      ...stream,
    });
    expect(figures.ordering).toBe("none");
  });

  it("5,000 messages, FIFO: the producer killed mid-batch, every acknowledged message delivered in key order", async () => {
    const figures = await processKillCase({
      broker: "elasticmq (sqs fifo)",
      adapter: "adapters/aws-sqs/fault",
      kill: "producer",
      url,
      adapterOptions: { ...adapterOptions, fifo: true },
      target: { kind: "queue", name: `${prefix}-producer` },
      ...stream,
    });
    expect(figures.ordering).toBe("group");
  });
});
