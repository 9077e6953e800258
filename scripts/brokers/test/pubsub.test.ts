import { randomUUID } from "node:crypto";
import { PubSub } from "@google-cloud/pubsub";
import { expect, it } from "vitest";
import { brokerEndpoint, describeWithBroker } from "../src/available.ts";

describeWithBroker("pubsub", "pubsub smoke (@google-cloud/pubsub on the emulator)", () => {
  it("publishes one message and receives it", async () => {
    process.env.PUBSUB_EMULATOR_HOST = brokerEndpoint("pubsub").url;
    process.env.METADATA_SERVER_DETECTION = "none";
    const pubsub = new PubSub({ projectId: "switchyard-smoke" });
    const name = `smoke-${randomUUID()}`;
    const [topic] = await pubsub.createTopic(name);
    const [sub] = await topic.createSubscription(name);
    try {
      const payload = JSON.stringify({ id: randomUUID(), text: "hello pubsub" });
      const received = new Promise<{ data: string; kind?: string }>((resolve, reject) => {
        sub.on("error", reject);
        sub.on("message", (m) => {
          m.ack();
          resolve({ data: m.data.toString(), kind: m.attributes.kind });
        });
      });
      await topic.publishMessage({ data: Buffer.from(payload), attributes: { kind: "smoke" } });
      expect(await received).toEqual({ data: payload, kind: "smoke" });
    } finally {
      await sub.close();
      await sub.delete();
      await topic.delete();
      await pubsub.close();
    }
  });
});
