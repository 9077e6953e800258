import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { defineConformanceSuite } from "@switchyard/conformance";
import { createTransport } from "../src/index.js";

const emulator = brokerEndpoint("pubsub").url;
process.env.PUBSUB_EMULATOR_HOST = emulator;
process.env.METADATA_SERVER_DETECTION = "none";

// Exactly-once delivery: acks, nacks and modAcks go through the *WithResponse calls.
describeWithBroker("pubsub", "gcp-pubsub adapter: conformance with exactly-once delivery", () => {
  defineConformanceSuite(
    {
      name: "pubsub (emulator, exactly-once)",
      createTransport: () =>
        createTransport(new URL(`pubsub://switchyard-test?emulator=${emulator}&prefix=syx&exactlyOnce=true`)),
    },
    // "closing a consumer during in-flight work" hangs with exactly-once on the emulator (README).
    { only: ["nack redelivers", "nack with a delay", "explicit", "burst"] },
  );
});
