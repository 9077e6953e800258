// Fault test (issue 22): a producer process is SIGKILLed with a batch in flight and a new one sends
// again from the first unacknowledged message (processKillCase, @switchyard/broker-stack/fault); the
// emulator keeps running. Ordering keys are on (the default), so per-key order is checked. The consumer
// kill is in pubsub-kill-consumer.fault.ts.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { processKillCase } from "@switchyard/broker-stack/fault";
import { expect, it } from "vitest";

const url = `pubsub://switchyard-fault?emulator=${brokerEndpoint("pubsub").url}&ackDeadlineSeconds=10`;
// The children inherit it: no probe of the cloud metadata server.
process.env.METADATA_SERVER_DETECTION = "none";

describeWithBroker("pubsub", "gcp-pubsub fault (emulator): the producer process SIGKILLed mid-batch", () => {
  it("10,000 messages: every acknowledged message delivered in key order, nothing torn", async () => {
    const figures = await processKillCase({
      broker: "pubsub",
      adapter: "adapters/gcp-pubsub/fault",
      kill: "producer",
      url,
      target: {
        kind: "topic",
        name: `sy-fault-pubsub-kill-${randomUUID().slice(0, 8)}`,
        subscription: "fault",
      },
    });
    expect(figures.ordering).toBe("key");
  });
});
