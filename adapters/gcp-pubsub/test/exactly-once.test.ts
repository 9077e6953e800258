import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { deletePubSubEntitiesNamed } from "@switchyard/broker-stack/cleanup";
import { defineConformanceSuite } from "@switchyard/conformance";
import { createTransport } from "../src/index.js";

const emulator = brokerEndpoint("pubsub").url;
process.env.PUBSUB_EMULATOR_HOST = emulator;
process.env.METADATA_SERVER_DETECTION = "none";

// Exactly-once delivery: acks, nacks and modAcks go through the *WithResponse calls. The whole suite
// runs without ordering keys: on an ordered exactly-once subscription the emulator treats keyless
// messages as one ordering key and refuses their acks out of receipt order *across* streams
// (TRANSIENT_FAILURE_UNORDERED_ACK_ID, README), so competing consumers of keyless messages stall.
describeWithBroker("pubsub", "gcp-pubsub adapter: conformance with exactly-once delivery", () => {
  defineConformanceSuite({
    name: "pubsub (emulator, exactly-once)",
    createTransport: () =>
      createTransport(
        new URL(`pubsub://switchyard-test?emulator=${emulator}&prefix=syx&exactlyOnce=true&ordering=false`),
      ),
    teardown: ({ names }) => deletePubSubEntitiesNamed("switchyard-test", names),
  });
  // With ordering keys as well: settlements go out in receipt order per key (see transport.ts).
  defineConformanceSuite(
    {
      name: "pubsub (emulator, exactly-once, ordered)",
      createTransport: () =>
        createTransport(
          new URL(`pubsub://switchyard-test?emulator=${emulator}&prefix=syxo&exactlyOnce=true`),
        ),
      teardown: ({ names }) => deletePubSubEntitiesNamed("switchyard-test", names),
    },
    { only: ["per-key order", "nack redelivers", "nack with a delay", "explicit", "payloads round-trip"] },
  );
});
