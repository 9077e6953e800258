// Swap by configuration: the same demo code, unchanged, runs on every broker Switchyard supports.
// Only the URL differs — exactly what `SWITCHYARD_URL=… pnpm demo` does.
import { type BrokerName, brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { createBus } from "@switchyard/core";
import { expect, it } from "vitest";
import { runFlow } from "../src/flow.js";

process.env.METADATA_SERVER_DETECTION = "none";
process.env.AWS_ACCESS_KEY_ID ??= "test"; // the emulators take any credentials
process.env.AWS_SECRET_ACCESS_KEY ??= "test";

const pg = brokerEndpoint("postgres").url;
const rabbitStomp = new URL(brokerEndpoint("rabbitmq-stomp").url);
const brokers: Array<[BrokerName, string]> = [
  ["kafka", `kafka://${brokerEndpoint("kafka").url}`],
  ["kafka", `kafka://${brokerEndpoint("kafka").url}?driver=kafkajs`],
  ["rabbitmq", brokerEndpoint("rabbitmq").url],
  ["elasticmq", `sqs://${new URL(brokerEndpoint("elasticmq").url).host}?region=us-east-1`],
  ["moto", `sns://${new URL(brokerEndpoint("moto").url).host}?region=us-east-1`],
  ["pubsub", `pubsub://switchyard-demo?emulator=${brokerEndpoint("pubsub").url}`],
  ["activemq", `stomp+activemq://${new URL(brokerEndpoint("activemq").url).host}`],
  ["rabbitmq-stomp", `stomp+rabbitmq://${rabbitStomp.username}:${rabbitStomp.password}@${rabbitStomp.host}`],
  ["postgres", `http-feed://127.0.0.1:0/feeds?serve=true&store=${encodeURIComponent(pg)}`],
  [
    "servicebus",
    `servicebus://127.0.0.1:${brokerEndpoint("servicebus").port}?emulator=true&adminUrl=http://127.0.0.1:${brokerEndpoint("servicebus").port + 1}`,
  ],
];

for (const [broker, url] of brokers) {
  const scheme = url.slice(0, url.indexOf(":"));
  describeWithBroker(broker, `the demo on ${scheme}${url.includes("kafkajs") ? " (kafkajs)" : ""}`, () => {
    it("runs the whole approval flow unchanged", { timeout: 90_000 }, async () => {
      const blogBus = createBus({ url, source: "blog-service" });
      // http-feed with a random port: both services share the first one's feed server.
      const approvalBus = scheme === "http-feed" ? blogBus : createBus({ url, source: "approval-service" });
      try {
        const lines: string[] = [];
        const posts = await runFlow(blogBus, approvalBus, (line) => lines.push(line));
        expect(posts.map((p) => p.published)).toEqual([true, false]);
        // Brokers that replay from the start also hand this run old runs' posts: count ours only.
        const ours = lines.filter((l) => l.includes("Done") && posts.some((p) => l.includes(p.blogId)));
        expect(ours).toHaveLength(2);
      } finally {
        await Promise.all([blogBus.close(), approvalBus.close()]);
      }
    });
  });
}
