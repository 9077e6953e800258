// The reply queue of bus.request() on ElasticMQ: created by the first request, deleted when the
// requesting bus closes (Transport.unprovision). The SNS adapter shares this code (SqsBase).
import { GetQueueUrlCommand, SQSClient } from "@aws-sdk/client-sqs";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { checkReplyQueueLifecycle } from "@switchyard/conformance";
import { it } from "vitest";
import { SqsTransport } from "../src/index.js";

describeWithBroker("elasticmq", "aws-sqs on ElasticMQ: request-reply", () => {
  const endpoint = brokerEndpoint("elasticmq").url;
  const make = () => new SqsTransport({ endpoint, ...localAws, waitTimeSeconds: 1 });
  const raw = new SQSClient({ endpoint, ...localAws });
  const exists = (name: string) =>
    raw.send(new GetQueueUrlCommand({ QueueName: name })).then(
      () => true,
      () => false,
    );

  it("the first request creates the bus's reply queue and close() deletes it", async () => {
    await checkReplyQueueLifecycle({ transport: make, exists });
  });
});
