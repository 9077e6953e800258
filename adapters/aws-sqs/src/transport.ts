import { SQSClient } from "@aws-sdk/client-sqs";
import {
  type Capabilities,
  type Delivery,
  type Destination,
  deadLetterQueueName,
  type Source,
  type SubscribeOptions,
  SwitchyardError,
  type TopologyEntity,
  type Transport,
  type TransportSubscription,
  type WireMessage,
} from "@switchyard/core";
import { envelopeLimit } from "./codec.js";
import { type AwsOptions, clientConfig, type ResolvedAwsOptions, resolveAwsOptions } from "./config.js";
import { SqsConsumer } from "./consumer.js";
import { isFifoName, sqsQueueName, subscriptionPrefix, subscriptionQueueName } from "./names.js";
import { MAX_VISIBILITY_SECONDS, SqsQueues } from "./queues.js";

/** Capabilities of SQS for a given SQS size limit (the envelope must fit after encoding). */
export function sqsCapabilities(options: ResolvedAwsOptions): Partial<Capabilities> {
  return {
    nativeDeadLetter: true,
    nativeDelay: true,
    ordering: options.fifo ? "group" : "none",
    consumerGroups: true,
    replayFromStart: false,
    persistent: true,
    maxMessageBytes: envelopeLimit(options.maxMessageBytes),
    // Headers are packed into one attribute: their number is bounded only by the size limit.
    maxHeaders: 1000,
    redeliveryCount: true,
    balancedConsumers: true,
    // Visibility may not be extended past 12 h after the receive; keep an hour for the handler.
    maxDelayMs: (MAX_VISIBILITY_SECONDS - 3600) * 1000,
  };
}

/**
 * The parts both AWS transports share: the SQS client, queue operations and consumers. Queues
 * (and, for SNS, subscription queues) are read through `consume()`.
 */
export class SqsBase {
  readonly options: ResolvedAwsOptions;
  readonly client: SQSClient;
  readonly queues: SqsQueues;
  readonly #consumers = new Set<SqsConsumer>();
  closed = false;

  constructor(options: ResolvedAwsOptions, client?: SQSClient) {
    this.options = options;
    this.client = client ?? new SQSClient(clientConfig(options));
    this.queues = new SqsQueues(this.client, options);
  }

  /** Deletes the SQS queues of the `queue` and `subscription` entities (a topic has none). */
  async deleteQueues(entities: TopologyEntity[]): Promise<void> {
    for (const entity of entities) {
      if (entity.kind === "queue") await this.queues.delete(this.queueName(entity.name));
      else if (entity.kind === "subscription")
        await this.queues.delete(this.subscriptionQueue(entity.topic, entity.name));
    }
  }

  queueName(name: string): string {
    return sqsQueueName(name, { fifo: this.options.fifo });
  }

  subscriptionQueue(topic: string, subscription: string): string {
    return subscriptionQueueName(topic, subscription, { fifo: this.options.fifo });
  }

  /** The SQS queue a source reads. */
  sourceQueue(source: Source): string {
    return source.kind === "queue"
      ? this.queueName(source.name)
      : this.subscriptionQueue(source.name, source.subscription);
  }

  /**
   * A subscription queue with a native RedrivePolicy as a backstop to the core's dead-lettering:
   * the broker moves a message once it was received maxAttempts + margin times.
   */
  async provisionSubscriptionQueue(
    entity: Extract<TopologyEntity, { kind: "subscription" }>,
  ): Promise<string> {
    const queue = this.subscriptionQueue(entity.topic, entity.name);
    await this.queues.url(queue);
    const dlq = this.queueName(entity.deadLetterQueue);
    if (this.options.redriveMargin !== false && isFifoName(dlq) === isFifoName(queue)) {
      const arn = await this.queues.arn(dlq);
      await this.queues.setAttributes(queue, {
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: arn,
          maxReceiveCount: entity.maxAttempts + this.options.redriveMargin,
        }),
      });
    }
    return queue;
  }

  async consume(
    queue: string,
    source: Source,
    options: SubscribeOptions,
    deliver: (delivery: Delivery) => void,
    extra: Partial<ConstructorParameters<typeof SqsConsumer>[1]> = {},
  ): Promise<TransportSubscription> {
    this.assertOpen();
    const dlq = this.queueName(deadLetterQueueName(source));
    const consumer = new SqsConsumer(this.queues, {
      queue,
      prefetch: options.prefetch,
      deliver,
      deadLetter: (message) => this.queues.send(dlq, [message]),
      onError: options.onError,
      ...extra,
    });
    this.#consumers.add(consumer);
    await consumer.start();
    return {
      stop: () => consumer.stop(),
      close: async () => {
        this.#consumers.delete(consumer);
        await consumer.close();
      },
    };
  }

  /** The backlog of the queue a source reads (see `SqsQueues.backlog`). */
  backlog(source: Source): Promise<number | undefined> {
    this.assertOpen();
    return this.queues.backlog(this.sourceQueue(source));
  }

  assertOpen(): void {
    if (this.closed) throw new SwitchyardError("CLOSED", "the transport is closed");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.#consumers].map((c) => c.close()));
    this.#consumers.clear();
    this.client.destroy();
  }
}

export interface SqsTransportOptions extends AwsOptions {
  /** A ready SQS client (tests, custom middleware); the transport then does not own its config. */
  client?: SQSClient;
}

/**
 * Switchyard on SQS alone. Queues are SQS queues. Topics are emulated without SNS: each
 * subscription is the SQS queue `<topic>_s<subscription>`, and a publish to a topic sends a copy to
 * every queue with that prefix (listed with ListQueues, cached for `topicCacheMs`). Use the SNS
 * adapter for real fan-out.
 */
export class SqsTransport implements Transport {
  readonly name: string = "sqs";
  readonly capabilities: Partial<Capabilities>;
  readonly base: SqsBase;
  readonly #topics = new Map<string, { at: number; queues: Promise<string[]> }>();

  constructor(options: SqsTransportOptions = {}, url?: URL) {
    const { client, ...rest } = options;
    this.base = new SqsBase(resolveAwsOptions(url, rest), client);
    this.capabilities = sqsCapabilities(this.base.options);
  }

  get options(): ResolvedAwsOptions {
    return this.base.options;
  }

  async provision(entities: TopologyEntity[]): Promise<void> {
    for (const entity of entities) {
      if (entity.kind === "queue") await this.base.queues.url(this.base.queueName(entity.name));
      else if (entity.kind === "subscription") {
        await this.base.provisionSubscriptionQueue(entity);
        this.#topics.delete(entity.topic);
      }
      // A topic alone needs nothing: it is the set of its subscription queues.
    }
  }

  /**
   * Deletes the queues of topology a bus used alone: a queue (the reply queue of `bus.request()`),
   * a subscription's queue (the throwaway subscription of `switchyard tail`). A topic is only the
   * set of its subscription queues: nothing of its own to delete.
   */
  async unprovision(entities: TopologyEntity[]): Promise<void> {
    await this.base.deleteQueues(entities);
    for (const entity of entities) if (entity.kind === "subscription") this.#topics.delete(entity.topic);
  }

  async publish(destination: Destination, messages: WireMessage[]): Promise<void> {
    this.base.assertOpen();
    if (destination.kind === "queue") {
      const queue = this.base.queueName(destination.name);
      await this.base.queues.send(queue, messages);
      return;
    }
    const encoded = this.base.queues.encode(messages, `topic ${destination.name}`);
    const queues = await this.#subscriptionQueues(destination.name);
    await Promise.all(queues.map((queue) => this.base.queues.send(queue, messages, encoded)));
  }

  #subscriptionQueues(topic: string): Promise<string[]> {
    const cached = this.#topics.get(topic);
    if (cached && Date.now() - cached.at <= this.options.topicCacheMs) return cached.queues;
    const prefix = subscriptionPrefix(topic);
    const fifo = this.options.fifo || isFifoName(topic);
    const queues = this.base.queues.list(prefix).then((names) => names.filter((n) => isFifoName(n) === fifo));
    this.#topics.set(topic, { at: Date.now(), queues });
    queues.catch(() => this.#topics.delete(topic));
    return queues;
  }

  subscribe(source: Source, options: SubscribeOptions, deliver: (delivery: Delivery) => void) {
    return this.base.consume(this.base.sourceQueue(source), source, options, deliver);
  }

  backlog(source: Source): Promise<number | undefined> {
    return this.base.backlog(source);
  }

  close(): Promise<void> {
    return this.base.close();
  }
}
