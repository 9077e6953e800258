// Fault test (issue 22): a consumer process is SIGKILLed while it holds messages and a new one takes
// over (processKillCase, @switchyard/broker-stack/fault); the emulator keeps running. Subscriptions get
// the shortest ack deadline (10 s), so what the killed consumer leased comes back soon.
//
// The emulator keeps delivering to the killed process's stream until the StreamingPull call's
// deadline; before the adapter shortened it (and stopped pausing the stream) the new consumer never
// handled part of the backlog: with ordering keys it stopped at 6,074 of 10,000 (keys stalled on the
// dead stream, then the ordered-subscription wedge), with `ordering=false` the emulator dead-lettered
// whole batches (700) that no consumer had received (adapters/gcp-pubsub/README.md, "Dead streams").
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { processKillCase } from "@switchyard/broker-stack/fault";
import { expect, it } from "vitest";

const url = `pubsub://switchyard-fault?emulator=${brokerEndpoint("pubsub").url}&ackDeadlineSeconds=10`;
// The children inherit it: no probe of the cloud metadata server.
process.env.METADATA_SERVER_DETECTION = "none";

describeWithBroker("pubsub", "gcp-pubsub fault (emulator): the consumer process SIGKILLed mid-stream", () => {
  it("10,000 messages: a new consumer handles every message in key order", async () => {
    const figures = await processKillCase({
      broker: "pubsub",
      adapter: "adapters/gcp-pubsub/fault",
      kill: "consumer",
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
