// unprovision removes what a bus used alone (switchyard tail's throwaway subscription: the SNS
// subscription, its SQS queue and dead-letter queue), and a topic when asked; moto is asked what exists.
import { ListSubscriptionsByTopicCommand, ListTopicsCommand, SNSClient } from "@aws-sdk/client-sns";
import { GetQueueUrlCommand, SQSClient } from "@aws-sdk/client-sqs";
import { sqsQueueName, subscriptionQueueName } from "@switchyard/aws-sqs";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { checkSubscriptionRemoval } from "@switchyard/conformance";
import type { TopologyEntity } from "@switchyard/core";
import { afterAll, it } from "vitest";
import { SnsTransport, snsTopicName } from "../src/index.js";

describeWithBroker("moto", "aws-sns on moto: unprovision", () => {
  const endpoint = brokerEndpoint("moto").url;
  const sqs = new SQSClient({ endpoint, ...localAws });
  const sns = new SNSClient({ endpoint, ...localAws });
  afterAll(() => {
    sqs.destroy();
    sns.destroy();
  });
  const queueExists = (name: string) =>
    sqs.send(new GetQueueUrlCommand({ QueueName: name })).then(
      () => true,
      () => false,
    );
  async function topicArn(topic: string): Promise<string | undefined> {
    let token: string | undefined;
    do {
      const page = await sns.send(new ListTopicsCommand({ NextToken: token }));
      const found = page.Topics?.find(({ TopicArn }) => TopicArn?.endsWith(`:${snsTopicName(topic)}`));
      if (found) return found.TopicArn;
      token = page.NextToken;
    } while (token);
    return undefined;
  }

  async function exists(entity: TopologyEntity): Promise<boolean> {
    if (entity.kind === "queue") return queueExists(sqsQueueName(entity.name));
    const arn = await topicArn(entity.kind === "topic" ? entity.name : entity.topic);
    if (entity.kind === "topic") return arn !== undefined;
    // A subscription is both the SNS subscription and its SQS queue: one without the other is a leak.
    const queue = subscriptionQueueName(entity.topic, entity.name);
    const subscribed =
      arn !== undefined &&
      ((await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: arn }))).Subscriptions ?? []).some(
        ({ Endpoint }) => Endpoint?.endsWith(`:${queue}`),
      );
    const queued = await queueExists(queue);
    if (subscribed !== queued) throw new Error(`SNS subscription ${subscribed}, SQS queue ${queued}`);
    return queued;
  }

  it("a subscription (SNS subscription and SQS queue) and its dead-letter queue, then its topic, are deleted", async () => {
    await checkSubscriptionRemoval({
      transport: () => new SnsTransport({ endpoint, ...localAws, waitTimeSeconds: 1 }),
      exists,
    });
  });
});
