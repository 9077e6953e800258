import { randomUUID } from "node:crypto";
import {
  CreateTopicCommand,
  DeleteTopicCommand,
  PublishCommand,
  SNSClient,
  SubscribeCommand,
} from "@aws-sdk/client-sns";
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { expect, it } from "vitest";
import { brokerEndpoint, describeWithBroker, localAws } from "../src/available.ts";

describeWithBroker("moto", "sns smoke (@aws-sdk/client-sns + client-sqs on moto)", () => {
  it("publishes one message to a topic and receives it raw on a subscribed queue", async () => {
    const endpoint = brokerEndpoint("moto").url;
    const sns = new SNSClient({ ...localAws, endpoint });
    const sqs = new SQSClient({ ...localAws, endpoint });
    const name = `smoke-${randomUUID()}`;
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: name }));
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
    try {
      const { Attributes } = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] }),
      );
      await sns.send(
        new SubscribeCommand({
          TopicArn,
          Protocol: "sqs",
          Endpoint: Attributes!.QueueArn,
          Attributes: { RawMessageDelivery: "true" },
        }),
      );
      const payload = JSON.stringify({ id: randomUUID(), text: "hello sns" });
      await sns.send(
        new PublishCommand({
          TopicArn,
          Message: payload,
          MessageAttributes: { kind: { DataType: "String", StringValue: "smoke" } },
        }),
      );
      const r = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 5, MessageAttributeNames: ["All"] }),
      );
      expect(r.Messages).toHaveLength(1);
      expect(r.Messages![0]!.Body).toBe(payload); // raw delivery: no SNS JSON envelope
      expect(r.Messages![0]!.MessageAttributes?.kind?.StringValue).toBe("smoke");
    } finally {
      await sqs.send(new DeleteQueueCommand({ QueueUrl }));
      await sns.send(new DeleteTopicCommand({ TopicArn }));
    }
  });
});
