import { describeWithBroker } from "@switchyard/broker-stack/available";
import { defineConformanceSuite } from "@switchyard/conformance";
import { deleteTopicsNamed, kafkaTransport } from "./helpers.js";

describeWithBroker("kafka", "kafka adapter (platformatic driver): conformance", () => {
  defineConformanceSuite({
    name: "kafka (platformatic)",
    createTransport: () => kafkaTransport("platformatic"),
    teardown: deleteTopicsNamed,
  });
});
