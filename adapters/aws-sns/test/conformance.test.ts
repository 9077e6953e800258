import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { defineConformanceSuite } from "@switchyard/conformance";
import { SnsTransport } from "../src/index.js";
import { deleteTopicsAndQueuesNamed } from "./teardown.js";

describeWithBroker("moto", "aws-sns on moto", () => {
  const endpoint = brokerEndpoint("moto").url;
  defineConformanceSuite({
    name: "aws-sns (moto)",
    // moto scans every queued message on each call: it is slow, and slower the deeper a queue is.
    timeScale: 4,
    teardown: ({ names }) => deleteTopicsAndQueuesNamed(endpoint, names),
    createTransport: () =>
      new SnsTransport({
        endpoint,
        region: localAws.region,
        credentials: localAws.credentials,
        waitTimeSeconds: 1,
      }),
  });
});
