import { describeWithBroker } from "@switchyard/broker-stack/available";
import { defineConformanceSuite } from "@switchyard/conformance";
import { deleteTopicsNamed, kafkaTransport } from "./helpers.js";

describeWithBroker("kafka", "kafka adapter (kafkajs driver): conformance", () => {
  defineConformanceSuite({
    name: "kafka (kafkajs)",
    createTransport: () => kafkaTransport("kafkajs"),
    teardown: deleteTopicsNamed,
  });
});
