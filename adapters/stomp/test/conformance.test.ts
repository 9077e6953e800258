import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { deleteRabbitMqEntitiesNamed } from "@switchyard/broker-stack/cleanup";
import { defineConformanceSuite } from "@switchyard/conformance";
import { createTransport } from "../src/index.js";

function url(broker: "activemq" | "rabbitmq-stomp", dialect: string): URL {
  const endpoint = new URL(brokerEndpoint(broker).url);
  endpoint.protocol = `stomp+${dialect}:`;
  return endpoint;
}

// No teardown on ActiveMQ: STOMP cannot delete a destination, and the broker here runs without JMX
// or the web console (scripts/brokers/conf/activemq); only OpenWire's DestinationInfo could. Each
// run leaves its queues (`sy-…`, `Consumer.<subscription>.VirtualTopic.sy-…`, `DLQ.…`) behind.
describeWithBroker("activemq", "stomp adapter on ActiveMQ Classic", () => {
  defineConformanceSuite({
    name: "stomp+activemq",
    createTransport: () => createTransport(url("activemq", "activemq")),
  });
});

describeWithBroker("rabbitmq-stomp", "stomp adapter on RabbitMQ's STOMP plugin", () => {
  defineConformanceSuite({
    name: "stomp+rabbitmq",
    createTransport: () => createTransport(url("rabbitmq-stomp", "rabbitmq")),
    // The plugin's queues are RabbitMQ queues: deleted through its management API like the AMQP ones.
    teardown: ({ names }) => deleteRabbitMqEntitiesNamed(names),
  });
});
