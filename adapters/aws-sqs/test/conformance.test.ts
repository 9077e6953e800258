import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { deleteSqsQueuesNamed } from "@switchyard/broker-stack/cleanup";
import { defineConformanceSuite } from "@switchyard/conformance";
import { SqsTransport } from "../src/index.js";

describeWithBroker("elasticmq", "aws-sqs on ElasticMQ", () => {
  const endpoint = brokerEndpoint("elasticmq").url;
  defineConformanceSuite({
    teardown: ({ names }) => deleteSqsQueuesNamed(endpoint, names),
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
