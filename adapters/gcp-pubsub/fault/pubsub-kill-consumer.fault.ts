// Fault test (issue 22): a consumer process is SIGKILLed while it holds messages and a new one takes
// over (processKillCase, @switchyard/broker-stack/fault); the emulator keeps running. Subscriptions get
// the shortest ack deadline (10 s), so what the killed consumer leased comes back soon.
//
// The emulator keeps delivering to the killed process's stream until the StreamingPull call's
// deadline; before the adapter shortened it (and stopped pausing the stream) the new consumer never
// handled part of the backlog: with ordering keys it stopped at 6,074 of 10,000 (keys stalled on the
// dead stream, then the ordered-subscription wedge), with `ordering=false` the emulator dead-lettered
// whole batches (700) that no consumer had received (adapters/gcp-pubsub/README.md, "Dead streams").
//
// Key order: the emulator itself hands later messages of a key to the new consumer's stream while
// earlier ones are still out on the dead one; those come back later, delivered more times than the
// successors that overtook them. The raw client sees the same (`node fault/emulator-dead-stream.mjs
// order`: README, "Key order after a consumer kill"), so such breaks are counted in the FAULT line
// (`brokerOrderBreaks`); any other break fails the test: a message overtaken by one of its key
// delivered as many times or more (a first delivery, attempt 1, by anything).
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { processKillCase } from "@switchyard/broker-stack/fault";
import { expect, it } from "vitest";

const url = `pubsub://switchyard-fault?emulator=${brokerEndpoint("pubsub").url}&ackDeadlineSeconds=10`;
// The children inherit it: no probe of the cloud metadata server.
process.env.METADATA_SERVER_DETECTION = "none";

describeWithBroker("pubsub", "gcp-pubsub fault (emulator): the consumer process SIGKILLed mid-stream", () => {
  it("10,000 messages: a new consumer handles every message, in key order but for the emulator's redeliveries", async () => {
    const figures = await processKillCase({
      broker: "pubsub",
      adapter: "adapters/gcp-pubsub/fault",
      kill: "consumer",
      url,
      brokerOrderBreaks:
        "emulator: later messages of a key reach the live stream while earlier ones are still out on the dead stream (fault/emulator-dead-stream.mjs order)",
      target: {
        kind: "topic",
        name: `sy-fault-pubsub-kill-${randomUUID().slice(0, 8)}`,
        subscription: "fault",
      },
    });
    expect(figures.ordering).toBe("key");
  });
});
