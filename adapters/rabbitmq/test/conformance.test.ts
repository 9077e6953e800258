import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { defineConformanceSuite } from "@switchyard/conformance";
import { createTransport } from "../src/index.js";

const url = new URL(brokerEndpoint("rabbitmq").url);

describeWithBroker("rabbitmq", "rabbitmq adapter: conformance (quorum queues)", () => {
  defineConformanceSuite({ name: "rabbitmq", createTransport: () => createTransport(url) });
});
