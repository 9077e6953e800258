import { randomUUID } from "node:crypto";
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { expect, it } from "vitest";
import { brokerEndpoint, describeWithBroker, localAws } from "../src/available.ts";

describeWithBroker("elasticmq", "sqs smoke (@aws-sdk/client-sqs on ElasticMQ)", () => {
  it("sends one message and receives it", async () => {
    const sqs = new SQSClient({ ...localAws, endpoint: brokerEndpoint("elasticmq").url });
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `smoke-${randomUUID()}` }));
    try {
      const { Attributes } = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] }),
      );
      expect(Attributes?.QueueArn).toMatch(/^arn:aws:sqs:us-east-1:000000000000:smoke-/);
      const payload = JSON.stringify({ id: randomUUID(), text: "hello sqs" });
      await sqs.send(
        new SendMessageCommand({
          QueueUrl,
          MessageBody: payload,
          MessageAttributes: { kind: { DataType: "String", StringValue: "smoke" } },
        }),
      );
      const r = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl,
          WaitTimeSeconds: 5,
          MaxNumberOfMessages: 1,
          MessageAttributeNames: ["All"],
        }),
      );
      expect(r.Messages).toHaveLength(1);
      expect(r.Messages![0]!.Body).toBe(payload);
      expect(r.Messages![0]!.MessageAttributes?.kind?.StringValue).toBe("smoke");
      await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: r.Messages![0]!.ReceiptHandle }));
    } finally {
      await sqs.send(new DeleteQueueCommand({ QueueUrl }));
    }
  });
});
