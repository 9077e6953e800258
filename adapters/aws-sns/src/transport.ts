import {
  CreateTopicCommand,
  DeleteTopicCommand,
  ListSubscriptionsByTopicCommand,
  ListSubscriptionsCommand,
  ListTopicsCommand,
  PublishBatchCommand,
  type PublishBatchRequestEntry,
  SNSClient,
  SubscribeCommand,
  UnsubscribeCommand,
} from "@aws-sdk/client-sns";
import type { SQSClient } from "@aws-sdk/client-sqs";
import {
  type AwsOptions,
  awsError,
  clientConfig,
  fifoIds,
  isFifoName,
  type ResolvedAwsOptions,
  resolveAwsOptions,
  SqsBase,
  sendInBatches,
  sqsCapabilities,
} from "@switchyard/aws-sqs";
import {
  type Capabilities,
  type Delivery,
  type Destination,
  type Source,
  type SubscribeOptions,
  SwitchyardError,
  type TopologyEntity,
  type Transport,
  type WireMessage,
} from "@switchyard/core";
import { decodeSnsMessage, snsTopicName } from "./codec.js";

export interface SnsTransportOptions extends AwsOptions {
  /** SQS endpoint for the subscription queues. Default: `endpoint` (one emulator serves both). */
  sqsEndpoint?: string;
  /**
   * SNS filter policies by subscription name (`{ billing: { type: ["order.paid"] } }`), applied to
   * the message attributes. Switchyard's own attributes are `sy-headers`, `sy-id`, `sy-key`.
   */
  filterPolicies?: Record<string, unknown>;
  snsClient?: SNSClient;
  sqsClient?: SQSClient;
}

export function snsCapabilities(options: ResolvedAwsOptions): Partial<Capabilities> {
  // SNS and SQS share the 256 KiB limit (attributes included) and the encoding.
  return sqsCapabilities(options);
}

/**
 * Switchyard on SNS + SQS. A topic is an SNS topic (FIFO when its name ends in `.fifo`); each
 * subscription is an SQS queue `<topic>_s<subscription>` that the adapter creates, authorises with a
 * queue policy and subscribes with raw message delivery; it is read with the SQS adapter's consumer.
 * Queues are plain SQS queues, exactly as in `@switchyard/aws-sqs`.
 */
export class SnsTransport implements Transport {
  readonly name = "sns";
  readonly capabilities: Partial<Capabilities>;
  readonly base: SqsBase;
  readonly sns: SNSClient;
  readonly #topics = new Map<string, Promise<string>>();
  readonly #filterPolicies: Record<string, unknown>;

  constructor(options: SnsTransportOptions = {}, url?: URL) {
    const { snsClient, sqsClient, sqsEndpoint, filterPolicies, ...rest } = options;
    const resolved = resolveAwsOptions(url, rest);
    const sqsOptions = sqsEndpoint
      ? resolveAwsOptions(undefined, { ...rest, region: resolved.region, endpoint: sqsEndpoint })
      : resolved;
    this.base = new SqsBase(sqsOptions, sqsClient);
    this.sns = snsClient ?? new SNSClient(clientConfig(resolved));
    this.capabilities = snsCapabilities(resolved);
    this.#filterPolicies = filterPolicies ?? {};
  }

  get options(): ResolvedAwsOptions {
    return this.base.options;
  }

  topicName(name: string): string {
    return snsTopicName(name, { fifo: this.options.fifo });
  }

  /** The topic's ARN; creates it on first use (CreateTopic is idempotent). */
  topicArn(name: string): Promise<string> {
    let arn = this.#topics.get(name);
    if (!arn) {
      const topic = this.topicName(name);
      arn = this.sns
        .send(
          new CreateTopicCommand({
            Name: topic,
            ...(isFifoName(topic) ? { Attributes: { FifoTopic: "true" } } : {}),
          }),
        )
        .then(
          (out) => {
            if (!out.TopicArn)
              throw new SwitchyardError("TRANSPORT_ERROR", `CreateTopic ${topic} returned no ARN`);
            return out.TopicArn;
          },
          (error) => {
            throw awsError(`CreateTopic ${topic}`, error);
          },
        );
      this.#topics.set(name, arn);
      arn.catch(() => this.#topics.delete(name));
    }
    return arn;
  }

  async provision(entities: TopologyEntity[]): Promise<void> {
    for (const entity of entities) {
      if (entity.kind === "queue") await this.base.queues.url(this.base.queueName(entity.name));
      else if (entity.kind === "topic") await this.topicArn(entity.name);
      else await this.#subscribe(entity);
    }
  }

  /**
   * Deletes topology a bus used alone: a queue (the reply queue of `bus.request()`), a subscription
   * (the throwaway one of `switchyard tail`: its SNS subscription, then its SQS queue), a topic.
   * Already gone is fine; nothing is looked up through CreateTopic, which would make it again.
   */
  async unprovision(entities: TopologyEntity[]): Promise<void> {
    for (const entity of entities) {
      if (entity.kind === "subscription")
        await this.#unsubscribe(entity.topic, this.base.subscriptionQueue(entity.topic, entity.name));
      else if (entity.kind === "topic") await this.#deleteTopic(entity.name);
    }
    await this.base.deleteQueues(entities);
  }

  /** Removes the SNS subscriptions of `topic` that deliver to the SQS queue `queue`. */
  async #unsubscribe(topic: string, queue: string): Promise<void> {
    const topicSuffix = `:${this.topicName(topic)}`;
    try {
      let token: string | undefined;
      do {
        const out = await this.sns.send(new ListSubscriptionsCommand({ NextToken: token }));
        for (const { TopicArn, Endpoint, SubscriptionArn } of out.Subscriptions ?? []) {
          if (TopicArn?.endsWith(topicSuffix) && Endpoint?.endsWith(`:${queue}`) && SubscriptionArn)
            await this.sns.send(new UnsubscribeCommand({ SubscriptionArn }));
        }
        token = out.NextToken;
      } while (token);
    } catch (error) {
      throw awsError("Unsubscribe", error);
    }
  }

  async #deleteTopic(name: string): Promise<void> {
    const suffix = `:${this.topicName(name)}`;
    this.#topics.delete(name);
    try {
      let token: string | undefined;
      do {
        const out = await this.sns.send(new ListTopicsCommand({ NextToken: token }));
        for (const { TopicArn } of out.Topics ?? [])
          if (TopicArn?.endsWith(suffix)) await this.sns.send(new DeleteTopicCommand({ TopicArn }));
        token = out.NextToken;
      } while (token);
    } catch (error) {
      throw awsError("DeleteTopic", error);
    }
  }

  async #subscribe(entity: Extract<TopologyEntity, { kind: "subscription" }>): Promise<void> {
    const [topicArn, queue] = await Promise.all([
      this.topicArn(entity.topic),
      this.base.provisionSubscriptionQueue(entity),
    ]);
    const queueArn = await this.base.queues.arn(queue);
    // The queue accepts SendMessage from this topic only.
    await this.base.queues.setAttributes(queue, {
      Policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "switchyard-sns",
            Effect: "Allow",
            Principal: { Service: "sns.amazonaws.com" },
            Action: "sqs:SendMessage",
            Resource: queueArn,
            Condition: { ArnEquals: { "aws:SourceArn": topicArn } },
          },
        ],
      }),
    });
    // Subscribe is idempotent on AWS; look first anyway, so an emulator never gets a second copy.
    try {
      let token: string | undefined;
      do {
        const out = await this.sns.send(
          new ListSubscriptionsByTopicCommand({ TopicArn: topicArn, NextToken: token }),
        );
        if ((out.Subscriptions ?? []).some((s) => s.Protocol === "sqs" && s.Endpoint === queueArn)) return;
        token = out.NextToken;
      } while (token);
    } catch (error) {
      throw awsError("ListSubscriptionsByTopic", error);
    }
    const filter = this.#filterPolicies[entity.name];
    try {
      await this.sns.send(
        new SubscribeCommand({
          TopicArn: topicArn,
          Protocol: "sqs",
          Endpoint: queueArn,
          ReturnSubscriptionArn: true,
          Attributes: {
            RawMessageDelivery: "true",
            ...(filter !== undefined ? { FilterPolicy: JSON.stringify(filter) } : {}),
          },
        }),
      );
    } catch (error) {
      throw awsError("Subscribe", error);
    }
  }

  async publish(destination: Destination, messages: WireMessage[]): Promise<void> {
    this.base.assertOpen();
    if (destination.kind === "queue") {
      await this.base.queues.send(this.base.queueName(destination.name), messages);
      return;
    }
    // Encode everything first: an oversize message refuses the call before anything is sent.
    const encoded = this.base.queues.encode(messages, `topic ${destination.name}`);
    const topicArn = await this.topicArn(destination.name);
    const fifo = isFifoName(this.topicName(destination.name));
    await sendInBatches<PublishBatchRequestEntry>({
      messages,
      encoded,
      entry: (message, { body, attributes }, id) => ({
        Id: id,
        Message: body,
        MessageAttributes: attributes,
        ...(fifo ? fifoIds(message, this.options.fifoDeduplicateById) : {}),
      }),
      call: async (batch) => {
        try {
          return await this.sns.send(
            new PublishBatchCommand({ TopicArn: topicArn, PublishBatchRequestEntries: batch }),
          );
        } catch (error) {
          throw awsError(`PublishBatch to ${destination.name}`, error);
        }
      },
      maxBytes: this.options.maxMessageBytes,
      ordered: fifo,
      describe: `SNS PublishBatch to ${destination.name}`,
    });
  }

  subscribe(source: Source, options: SubscribeOptions, deliver: (delivery: Delivery) => void) {
    return this.base.consume(this.base.sourceQueue(source), source, options, deliver, {
      decode: decodeSnsMessage,
    });
  }

  /** The backlog of the SQS queue a source reads (its subscription queue on a topic). */
  backlog(source: Source): Promise<number | undefined> {
    return this.base.backlog(source);
  }

  async close(): Promise<void> {
    await this.base.close();
    this.sns.destroy();
  }
}
