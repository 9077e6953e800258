// Fault test (issue 22): a consumer process is SIGKILLed while it holds messages and a new one takes
// over (processKillCase, @switchyard/broker-stack/fault); the emulator keeps running. Subscriptions get
// the shortest ack deadline (10 s), so what the killed consumer leased comes back soon.
//
// KNOWN BUG, kept out of CI (vitest.fault.config.ts): the new consumer never handles part of the
// backlog. With ordering keys (the default) it stopped at 6,074 of 10,000 and the subscription's
// streams end with an error (the emulator's ordered-subscription wedge, adapters/gcp-pubsub/README.md);
// with `ordering=false` it missed 700 (whole publish batches, 3,700… to 9,100…) that the emulator had
// moved to the dead-letter topic after 5 delivery attempts without the client ever emitting them: the
// loss of the connection-cut runs, here on every run.
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
