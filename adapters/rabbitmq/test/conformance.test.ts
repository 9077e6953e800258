import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { deleteRabbitMqEntitiesNamed } from "@switchyard/broker-stack/cleanup";
import { defineConformanceSuite } from "@switchyard/conformance";
import { createTransport } from "../src/index.js";

const url = new URL(brokerEndpoint("rabbitmq").url);

describeWithBroker("rabbitmq", "rabbitmq adapter: conformance (quorum queues)", () => {
  defineConformanceSuite({
    name: "rabbitmq",
    createTransport: () => createTransport(url),
    teardown: ({ names }) => deleteRabbitMqEntitiesNamed(names),
  });
});

// Single-active-consumer: one consumer of a queue receives at a time, so per-key order holds
// (ordering "key"), at the price of load sharing (balancedConsumers false).
describeWithBroker("rabbitmq", "rabbitmq adapter: conformance (single active consumer)", () => {
  defineConformanceSuite(
    {
      name: "rabbitmq (single-active-consumer)",
      createTransport: () => createTransport(url, { singleActiveConsumer: true }),
      teardown: ({ names }) => deleteRabbitMqEntitiesNamed(names),
    },
    { only: ["per-key order", "competing consumers", "pub/sub", "closing a consumer"] },
  );
});
