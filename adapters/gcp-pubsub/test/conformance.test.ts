import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { deletePubSubEntitiesNamed } from "@switchyard/broker-stack/cleanup";
import { defineConformanceSuite } from "@switchyard/conformance";
import { createTransport } from "../src/index.js";

const emulator = brokerEndpoint("pubsub").url;
process.env.PUBSUB_EMULATOR_HOST = emulator;
process.env.METADATA_SERVER_DETECTION = "none";

describeWithBroker("pubsub", "gcp-pubsub adapter: conformance (official emulator)", () => {
  defineConformanceSuite({
    name: "pubsub (emulator)",
    createTransport: () => createTransport(new URL(`pubsub://switchyard-test?emulator=${emulator}`)),
    teardown: ({ names }) => deletePubSubEntitiesNamed("switchyard-test", names),
  });
});
