import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { deleteSqsQueuesNamed } from "@switchyard/broker-stack/cleanup";
import { defineConformanceSuite } from "@switchyard/conformance";
import { SqsTransport } from "../src/index.js";

// Every queue FIFO (ordering "group", so the per-key order case runs). Deduplication by envelope id
// is off here: SQS would drop a DLQ redrive and the idempotency case's deliberate duplicates within
// its 5-minute window (the default, by id, is covered in elasticmq.test.ts).
describeWithBroker("elasticmq", "aws-sqs FIFO on ElasticMQ", () => {
  const endpoint = brokerEndpoint("elasticmq").url;
  defineConformanceSuite({
    teardown: ({ names }) => deleteSqsQueuesNamed(endpoint, names),
    name: "aws-sqs fifo (elasticmq)",
    createTransport: () =>
      new SqsTransport({ endpoint, ...localAws, waitTimeSeconds: 1, fifo: true, fifoDeduplicateById: false }),
  });
});
