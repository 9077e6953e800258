import { DeleteTopicCommand, ListTopicsCommand, SNSClient } from "@aws-sdk/client-sns";
import { DeleteQueueCommand, ListQueuesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { localAws } from "@switchyard/broker-stack/available";

/**
 * The SNS conformance suite's teardown: the topics of the names the cases made, then their queues
 * (subscription queues and DLQs, as on SQS). moto is slower with every topic and queue it keeps.
 */
export async function deleteTopicsAndQueuesNamed(endpoint: string, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const sns = new SNSClient({ endpoint, region: localAws.region, credentials: localAws.credentials });
  try {
    const ours: string[] = [];
    let next: string | undefined;
    do {
      const page = await sns.send(new ListTopicsCommand(next ? { NextToken: next } : {}));
      for (const { TopicArn } of page.Topics ?? []) {
        const topic = TopicArn?.slice(TopicArn.lastIndexOf(":") + 1);
        if (TopicArn && topic && names.some((name) => topic.startsWith(name))) ours.push(TopicArn);
      }
      next = page.NextToken;
    } while (next);
    for (const TopicArn of ours) await sns.send(new DeleteTopicCommand({ TopicArn })).catch(() => {});
  } finally {
    sns.destroy();
  }
  // The queues as on SQS (adapters/aws-sqs/test/teardown.ts, which this package cannot import).
  const sqs = new SQSClient({ endpoint, region: localAws.region, credentials: localAws.credentials });
  try {
    const listed = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: "sy-", MaxResults: 1000 }));
    for (const QueueUrl of listed.QueueUrls ?? []) {
      const queue = QueueUrl.slice(QueueUrl.lastIndexOf("/") + 1);
      if (names.some((name) => queue.startsWith(name)))
        await sqs.send(new DeleteQueueCommand({ QueueUrl })).catch(() => {});
    }
  } finally {
    sqs.destroy();
  }
}
