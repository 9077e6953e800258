import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { defineConformanceSuite } from "@switchyard/conformance";
import { SqsTransport } from "../src/index.js";
import { deleteQueuesNamed } from "./teardown.js";

describeWithBroker("elasticmq", "aws-sqs on ElasticMQ", () => {
  const endpoint = brokerEndpoint("elasticmq").url;
  defineConformanceSuite({
    teardown: ({ names }) => deleteQueuesNamed(endpoint, names),
    name: "aws-sqs (elasticmq)",
    // A short long-poll, so closing a consumer (which waits for its receive) is quick in tests.
    createTransport: () =>
      new SqsTransport({
        endpoint,
        region: localAws.region,
        credentials: localAws.credentials,
        waitTimeSeconds: 1,
      }),
  });
});
