// The reply queue of bus.request() on moto: created by the first request, deleted when the
// requesting bus closes (Transport.unprovision, shared with the SQS adapter through SqsBase).
import { GetQueueUrlCommand, SQSClient } from "@aws-sdk/client-sqs";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { checkReplyQueueLifecycle } from "@switchyard/conformance";
import { it } from "vitest";
import { SnsTransport } from "../src/index.js";

describeWithBroker("moto", "aws-sns on moto: request-reply", () => {
  const endpoint = brokerEndpoint("moto").url;
  const make = () => new SnsTransport({ endpoint, ...localAws, waitTimeSeconds: 1 });
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
