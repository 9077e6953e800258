import {
  GetSubscriptionAttributesCommand,
  ListSubscriptionsByTopicCommand,
  SNSClient,
} from "@aws-sdk/client-sns";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { awsError } from "@switchyard/aws-sqs";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { afterAll, expect, it } from "vitest";
import { decodeSnsMessage, SnsTransport, type SnsTransportOptions, snsTopicName } from "../src/index.js";
import { deleteTopicsAndQueuesNamed } from "./teardown.js";

const { Ping, Ordered } = messages;

it("unwraps an SNS notification that was not raw-delivered, attributes included", () => {
  const wire = decodeSnsMessage({
    MessageId: "sqs-1",
    Body: JSON.stringify({
      Type: "Notification",
      MessageId: "sns-1",
      TopicArn: "arn:aws:sns:us-east-1:000000000000:t",
      Message: "aGk=",
      MessageAttributes: {
        "sy-headers": { Type: "String", Value: '{"ce_id":"x","h":"v"}' },
        "sy-id": { Type: "String", Value: "x" },
        "sy-encoding": { Type: "String", Value: "base64" },
      },
    }),
  });
  expect(wire).toEqual({ id: "x", headers: { ce_id: "x", h: "v" }, body: new TextEncoder().encode("hi") });
  // Not a notification at all: delivered as a foreign message for the core to dead-letter.
  expect(decodeSnsMessage({ MessageId: "m", Body: "plain" })).toEqual({
    id: "m",
    headers: {},
    body: new TextEncoder().encode("plain"),
  });
  expect(snsTopicName("orders.eu")).toBe("orders_deu");
  expect(snsTopicName("orders.fifo")).toBe("orders.fifo");
});

describeWithBroker("moto", "aws-sns on moto: native mapping", () => {
  const endpoint = brokerEndpoint("moto").url;
  const run = Math.random().toString(36).slice(2, 8);
  const make = (extra: SnsTransportOptions = {}) =>
    new SnsTransport({ endpoint, ...localAws, waitTimeSeconds: 1, ...extra });
  const sns = new SNSClient({ endpoint, ...localAws });
  // Every topic and queue here is named `sy-<label>-<run>…` (subscription queues and DLQs
  // included): delete them all when done, passed or failed; moto is shared and slows with each.
  afterAll(() => deleteTopicsAndQueuesNamed(endpoint, [`-${run}`]), 60_000);

  it("a subscription is an SQS queue subscribed with raw delivery, a queue policy and a redrive backstop; provisioning twice subscribes once", async () => {
    const topic = `sy-sub-${run}`;
    for (let i = 0; i < 2; i++) {
      const bus = createBus({ transport: make() });
      await bus
        .subscribe(topic, "audit")
        .on(Ping, async () => {})
        .start({ retry: { maxAttempts: 3 } });
      await bus.close();
    }
    const transport = make();
    const topicArn = await transport.topicArn(topic);
    const subs = await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topicArn }));
    expect(subs.Subscriptions).toHaveLength(1);
    expect(subs.Subscriptions![0]!.Endpoint).toMatch(/:sy-sub-.*_saudit$/);
    const attrs = await sns.send(
      new GetSubscriptionAttributesCommand({ SubscriptionArn: subs.Subscriptions![0]!.SubscriptionArn! }),
    );
    expect(attrs.Attributes?.RawMessageDelivery).toBe("true");
    const url = await transport.base.queues.url(`sy-sub-${run}_saudit`);
    const q = await transport.base.client.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["Policy", "RedrivePolicy"] }),
    );
    expect(JSON.parse(q.Attributes!.Policy!).Statement[0].Condition.ArnEquals["aws:SourceArn"]).toBe(
      topicArn,
    );
    expect(JSON.parse(q.Attributes!.RedrivePolicy!).maxReceiveCount).toBe(3 + 5);
    await transport.close();
  });

  it("a filter policy keeps other messages out of a subscription", async () => {
    const topic = `sy-filter-${run}`;
    const got: string[] = [];
    const bus = createBus({
      transport: make({ filterPolicies: { keyed: { "sy-key": ["wanted"] } } }),
    });
    await bus
      .subscribe(topic, "keyed")
      .on(Ordered, async (m) => void got.push(m.data.key))
      .start();
    await bus.publish(topic, Ordered, { key: "other", seq: 1 }, { key: "other" });
    await bus.publish(topic, Ordered, { key: "wanted", seq: 2 }, { key: "wanted" });
    const deadline = Date.now() + 20_000;
    while (got.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1500));
    expect(got).toEqual(["wanted"]);
    await bus.close();
  }, 40_000);

  it("a FIFO topic (.fifo) delivers each key in order to its FIFO subscription queue", async () => {
    const topic = `sy-fifo-${run}.fifo`;
    const seen: { key: string; seq: number }[] = [];
    const bus = createBus({ transport: make() });
    await bus
      .subscribe(topic, "ordered")
      .on(Ordered, async (msg) => void seen.push(msg.data))
      .start({ concurrency: 4 });
    for (let seq = 0; seq < 5; seq++) {
      await Promise.all(["a", "b"].map((key) => bus.publish(topic, Ordered, { key, seq }, { key })));
    }
    const deadline = Date.now() + 30_000;
    while (seen.length < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const key of ["a", "b"]) {
      expect(seen.filter((s) => s.key === key).map((s) => s.seq)).toEqual([0, 1, 2, 3, 4]);
    }
    await bus.close();
  }, 60_000);

  it("an operation moto does not implement (StartMessageMoveTask) becomes a typed error, not a SyntaxError", async () => {
    const { StartMessageMoveTaskCommand } = await import("@aws-sdk/client-sqs");
    const transport = make();
    const arn = await transport.base.queues.arn(`sy-move-${run}`);
    const error = await transport.base.client.send(new StartMessageMoveTaskCommand({ SourceArn: arn })).then(
      () => undefined,
      (e: unknown) => awsError("StartMessageMoveTask", e),
    );
    expect(error?.code).toBe("TRANSPORT_ERROR");
    expect(error?.name).toBe("SwitchyardError");
    await transport.close();
  });
});
