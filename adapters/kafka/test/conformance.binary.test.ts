import { describeWithBroker } from "@switchyard/broker-stack/available";
import { defineConformanceSuite } from "@switchyard/conformance";
import { deleteTopicsNamed, kafkaTransport } from "./helpers.js";

// The default content mode is structured; binary mode (a `ce_*` header per attribute, what other
// CloudEvents producers often write) must keep the same contract.
describeWithBroker("kafka", "kafka adapter (platformatic driver, binary content mode): conformance", () => {
  defineConformanceSuite({
    name: "kafka (platformatic, contentMode=binary)",
    createTransport: () => kafkaTransport("platformatic", { contentMode: "binary" }),
    teardown: deleteTopicsNamed,
  });
});
