// unprovision removes what a bus used alone (switchyard tail's throwaway subscription, and its
// dead-letter queue's topic and subscription), and a topic when asked; the emulator is asked what exists.
import { PubSub } from "@google-cloud/pubsub";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { checkSubscriptionRemoval } from "@switchyard/conformance";
import type { TopologyEntity } from "@switchyard/core";
import { afterAll, it } from "vitest";
import { createTransport, Names } from "../src/index.js";

const emulator = brokerEndpoint("pubsub").url;
process.env.PUBSUB_EMULATOR_HOST = emulator;
process.env.METADATA_SERVER_DETECTION = "none";
const PROJECT = "switchyard-unprovision-test";
const raw = new PubSub({ projectId: PROJECT, apiEndpoint: emulator });
const names = new Names("sy");

afterAll(async () => {
  await raw.close();
});

async function exists(entity: TopologyEntity): Promise<boolean> {
  if (entity.kind === "topic") return (await raw.topic(names.topic(entity.name)).exists())[0];
  if (entity.kind === "subscription")
    return (await raw.subscription(names.subscription(entity.topic, entity.name)).exists())[0];
  const [[topic], [subscription]] = await Promise.all([
    raw.topic(names.queueTopic(entity.name)).exists(),
    raw.subscription(names.queueSubscription(entity.name)).exists(),
  ]);
  return topic || subscription;
}

describeWithBroker("pubsub", "gcp-pubsub adapter: unprovision", () => {
  it("a subscription and its dead-letter queue, then its topic, are deleted", async () => {
    await checkSubscriptionRemoval({
      transport: () => createTransport(new URL(`pubsub://${PROJECT}?emulator=${emulator}`)),
      exists,
    });
  });
});
