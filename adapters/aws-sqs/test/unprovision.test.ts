// unprovision removes what a bus used alone (switchyard tail's throwaway subscription: its SQS queue
// and dead-letter queue); ElasticMQ itself is asked what exists. A topic has no queue of its own.
import { GetQueueUrlCommand, SQSClient } from "@aws-sdk/client-sqs";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { checkSubscriptionRemoval } from "@switchyard/conformance";
import type { TopologyEntity } from "@switchyard/core";
import { it } from "vitest";
import { SqsTransport, sqsQueueName, subscriptionQueueName } from "../src/index.js";

describeWithBroker("elasticmq", "aws-sqs on ElasticMQ: unprovision", () => {
  const endpoint = brokerEndpoint("elasticmq").url;
  const raw = new SQSClient({ endpoint, ...localAws });
  const queueExists = (name: string) =>
    raw.send(new GetQueueUrlCommand({ QueueName: name })).then(
      () => true,
      () => false,
    );
  const exists = async (entity: TopologyEntity) =>
    entity.kind === "topic"
      ? undefined
      : queueExists(
          entity.kind === "queue"
            ? sqsQueueName(entity.name)
            : subscriptionQueueName(entity.topic, entity.name),
        );

  it("a subscription's queue and its dead-letter queue are deleted", async () => {
    await checkSubscriptionRemoval({
      transport: () => new SqsTransport({ endpoint, ...localAws, waitTimeSeconds: 1 }),
      exists,
    });
  });
});
