import { DeleteTopicCommand, ListTopicsCommand, SNSClient } from "@aws-sdk/client-sns";
import { localAws } from "@switchyard/broker-stack/available";
import { deleteSqsQueuesNamed, madeFrom } from "@switchyard/broker-stack/cleanup";

/**
 * The SNS conformance suite's teardown: the topics of the names the cases made, then their queues
 * (subscription queues and DLQs, as on SQS). moto is slower with every topic and queue it keeps.
 */
export async function deleteTopicsAndQueuesNamed(endpoint: string, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const sns = new SNSClient({ endpoint, region: localAws.region, credentials: localAws.credentials });
  try {
    const ours = madeFrom(names);
    const topics: string[] = [];
    let next: string | undefined;
    do {
      const page = await sns.send(new ListTopicsCommand(next ? { NextToken: next } : {}));
      for (const { TopicArn } of page.Topics ?? [])
        if (TopicArn && ours(TopicArn.slice(TopicArn.lastIndexOf(":") + 1))) topics.push(TopicArn);
      next = page.NextToken;
    } while (next);
    for (const TopicArn of topics) await sns.send(new DeleteTopicCommand({ TopicArn })).catch(() => {});
  } finally {
    sns.destroy();
  }
  await deleteSqsQueuesNamed(endpoint, names);
}
