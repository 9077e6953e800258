import { once } from "node:events";
import {
  type Capabilities,
  type Delivery,
  type Destination,
  type Source,
  type SubscribeOptions,
  SwitchyardError,
  type TopologyEntity,
  type Transport,
  type TransportSubscription,
  type WireMessage,
} from "@switchyard/core";
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from "amqplib";
import { AckBatcher } from "./acks.js";
import { ATTEMPT_HEADER, fromAmqp, headersFit, toAmqp } from "./mapping.js";
import { type RabbitOptions, type ResolvedOptions, resolveOptions } from "./options.js";

/** Room for the AMQP frame envelope around the header table (frame_max is 128 KiB by default). */
const FRAME_HEADROOM = 4096;
/** What a delivery's ack returns: the ack frame goes out with the turn's others. */
const ackQueued: Promise<void> = Promise.resolve();

/** The queue a source reads: the queue itself, or `<topic>.<subscription>` bound to the topic's exchange. */
export function queueOf(source: Source): string {
  return source.kind === "queue" ? source.name : `${source.name}.${source.subscription}`;
}

/**
 * Delays are rounded up to two significant digits (1,234 ms → 1,300 ms), so backoff jitter does not
 * create a queue per millisecond while no message comes back early.
 */
export function delayBucket(delayMs: number): number {
  if (delayMs < 100) return Math.max(1, Math.ceil(delayMs));
  const step = 10 ** (Math.floor(Math.log10(delayMs)) - 1);
  return Math.ceil(delayMs / step) * step;
}

interface Subscription {
  source: Source;
  prefetch: number;
  deliver: (delivery: Delivery) => void;
  channel: Channel | undefined;
  /** The current channel's ack coalescing (multiple acks). */
  acks: AckBatcher | undefined;
  tag: string | undefined;
  /** A consume in progress, so a reconnect and a retry never open two consumers for one subscription. */
  starting: Promise<void> | undefined;
  closed: boolean;
  /** Where it reports a transport error it recovers from (the core's `onError`). */
  onError: ((error: unknown) => void) | undefined;
}

export class RabbitTransport implements Transport {
  readonly name = "rabbitmq";
  readonly capabilities: Partial<Capabilities>;
  /**
   * Each message is its own basic.publish with its own confirm, so a batch buys nothing at the wire
   * and a large one stalls the publishers waiting on it until its slowest confirm (see
   * Transport.publishBatchSize): 1,000-message batches published at about 0.6 of the rate of
   * 50–200-message ones with 500 publishes in flight (docs/benchmarks.md).
   */
  readonly publishBatchSize = 100;
  readonly options: ResolvedOptions;
  #model: ChannelModel | undefined;
  #connecting: Promise<ChannelModel> | undefined;
  #publisher: Promise<ConfirmChannel> | undefined;
  #openPublisher: ConfirmChannel | undefined;
  /** Message ids the broker returned as unroutable, until their confirm arrives. */
  readonly #returned = new Map<string, number>();
  readonly #subscriptions = new Set<Subscription>();
  /** Topology declared so far, re-declared after a reconnect. */
  readonly #declared = new Map<string, TopologyEntity>();
  readonly #delayQueues = new Map<string, number>();
  #pending = 0;
  /** Settles when the batch writing now (waiting for the channel to drain) is written. */
  #writing: Promise<void> | undefined;
  #closed = false;
  #reconnects = 0;
  #reconnecting: Promise<void> | undefined;

  constructor(options: ResolvedOptions) {
    this.options = options;
    const quorum = options.queueType === "quorum";
    this.capabilities = {
      // Dead letters go through the core (publish to `<source>.dlq` with fault headers, then ack):
      // a reject through a DLX would drop Switchyard's fault headers.
      nativeDeadLetter: false,
      // Delays are per-delay TTL queues that dead-letter back to the source queue.
      nativeDelay: true,
      // A queue keeps order for one consumer; competing consumers break per-key order unless only
      // one of them is active (single-active-consumer).
      ordering: options.singleActiveConsumer ? "key" : "none",
      consumerGroups: true,
      replayFromStart: false,
      persistent: true,
      maxMessageBytes: options.maxMessageBytes,
      maxHeaders: 512,
      // Quorum queues count returns in `x-delivery-count`; classic queues only flag a redelivery.
      redeliveryCount: quorum,
      balancedConsumers: !options.singleActiveConsumer,
      maxDelayMs: 7 * 24 * 60 * 60 * 1000,
    };
  }

  // ---- connection ----

  /** Reconnections after a lost connection so far (for tests and monitoring). */
  get reconnects(): number {
    return this.#reconnects;
  }

  async connect(): Promise<void> {
    await this.#connection();
  }

  #connection(): Promise<ChannelModel> {
    if (this.#closed)
      return Promise.reject(new SwitchyardError("CLOSED", "the rabbitmq transport is closed"));
    if (this.#model) return Promise.resolve(this.#model);
    this.#connecting ??= (async () => {
      try {
        const model = await amqp.connect(this.options.connect, this.options.socketOptions);
        model.on("error", () => {}); // a 'close' follows; handled there
        model.on("close", (error?: unknown) => this.#lost(model, error));
        this.#model = model;
        return model;
      } catch (cause) {
        throw new SwitchyardError(
          "TRANSPORT_ERROR",
          `cannot connect to RabbitMQ at ${this.options.display}: ${errorText(cause)}`,
          { cause: sanitize(cause) },
        );
      } finally {
        this.#connecting = undefined;
      }
    })();
    return this.#connecting;
  }

  /** The connection dropped: forget its channels and come back with backoff, consumers included. */
  #lost(model: ChannelModel, error: unknown): void {
    if (this.#model !== model) return;
    this.#model = undefined;
    this.#publisher = undefined;
    this.#openPublisher = undefined;
    for (const subscription of this.#subscriptions) {
      subscription.channel = undefined;
      subscription.tag = undefined;
    }
    if (this.#closed) return;
    // amqplib gives every close it did not make an error; none is a half-open connection we dropped.
    if (error !== undefined) {
      for (const subscription of this.#subscriptions) {
        this.#recovered(subscription, "connection lost; reconnecting", error);
      }
    }
    this.#reconnecting ??= this.#reconnect().finally(() => {
      this.#reconnecting = undefined;
    });
  }

  async #reconnect(): Promise<void> {
    let delay = this.options.reconnectInitialDelayMs;
    while (!this.#closed) {
      await sleep(delay);
      if (this.#closed) return;
      try {
        await this.#connection();
        for (const entity of this.#declared.values()) await this.#declare(entity);
        for (const subscription of this.#subscriptions) {
          // One queue failing (e.g. deleted) must not hold back the others: it retries on its own.
          await this.#resume(subscription).catch((error: unknown) => {
            this.#recovered(subscription, "consuming again after a reconnect; trying again", error);
            this.#retryConsume(subscription, this.options.reconnectInitialDelayMs);
          });
        }
        this.#reconnects++;
        return;
      } catch (error) {
        delay = Math.min(this.options.reconnectMaxDelayMs, delay * 2);
        for (const subscription of this.#subscriptions) {
          this.#recovered(subscription, "reconnecting failed; trying again", error);
        }
        // A half-recovered connection is dropped so the next round starts clean.
        const model = this.#model;
        if (model) {
          this.#lost(model, undefined);
          await model.close().catch(() => {});
        }
      }
    }
  }

  /** Waits (bounded) for a usable connection: right away when connected, else up to publishTimeoutMs. */
  async #connected(deadline: number): Promise<ChannelModel> {
    for (;;) {
      try {
        return await this.#connection();
      } catch (error) {
        if (this.#closed || Date.now() >= deadline) throw error;
        await sleep(Math.min(250, Math.max(1, deadline - Date.now())));
      }
    }
  }

  // ---- topology ----

  async provision(entities: TopologyEntity[]): Promise<void> {
    for (const entity of entities) {
      await this.#declare(entity);
      this.#declared.set(JSON.stringify(entity), entity);
    }
  }

  /**
   * Deletes what `provision` made for topology a bus used alone: a queue, a subscription's queue
   * (the reply queue of `bus.request()`, the throwaway subscription of `switchyard tail`), a
   * topic's exchange. They are no longer declared again after a reconnect. Already gone is fine.
   */
  async unprovision(entities: TopologyEntity[]): Promise<void> {
    for (const entity of entities) {
      for (const [id, declared] of this.#declared)
        if (sameEntity(declared, entity)) this.#declared.delete(id);
      const model = await this.#connection();
      const channel = await model.createChannel();
      channel.on("error", () => {});
      const queue =
        entity.kind === "queue"
          ? entity.name
          : entity.kind === "subscription"
            ? queueOf({ kind: "topic", name: entity.topic, subscription: entity.name })
            : undefined;
      const what = queue === undefined ? `exchange "${entity.name}"` : `queue "${queue}"`;
      try {
        if (queue === undefined) await channel.deleteExchange(entity.name);
        else await channel.deleteQueue(queue);
      } catch (cause) {
        throw topologyError(what, cause);
      } finally {
        await channel.close().catch(() => {});
      }
    }
  }

  #queueArguments(): Record<string, unknown> {
    const args: Record<string, unknown> = { "x-queue-type": this.options.queueType };
    if (this.options.singleActiveConsumer) args["x-single-active-consumer"] = true;
    return args;
  }

  /** Declares on a channel of its own, so a PRECONDITION_FAILED closes nothing but that channel. */
  async #declare(entity: TopologyEntity): Promise<void> {
    const model = await this.#connection();
    const channel = await model.createChannel();
    channel.on("error", () => {});
    let what = "";
    try {
      if (entity.kind === "queue") {
        what = `queue "${entity.name}"`;
        await channel.assertQueue(entity.name, { durable: true, arguments: this.#queueArguments() });
      } else if (entity.kind === "topic") {
        what = `exchange "${entity.name}"`;
        await channel.assertExchange(entity.name, "topic", { durable: true });
      } else {
        what = `exchange "${entity.topic}"`;
        await channel.assertExchange(entity.topic, "topic", { durable: true });
        const queue = queueOf({ kind: "topic", name: entity.topic, subscription: entity.name });
        what = `queue "${queue}"`;
        await channel.assertQueue(queue, { durable: true, arguments: this.#queueArguments() });
        await channel.bindQueue(queue, entity.topic, "#");
      }
    } catch (cause) {
      throw topologyError(what, cause);
    } finally {
      await channel.close().catch(() => {});
    }
  }

  async #declareDelayQueue(queue: string, delayMs: number): Promise<string> {
    const name = `${queue}.delay.${delayMs}`;
    const declaredAt = this.#delayQueues.get(name);
    // The queue expires `delayMs + 10 min` after its last declaration; re-declaring every 5 min
    // keeps it alive longer than any message published into it.
    if (declaredAt !== undefined && Date.now() - declaredAt < 5 * 60_000) return name;
    const model = await this.#connection();
    const channel = await model.createChannel();
    channel.on("error", () => {});
    try {
      await channel.assertQueue(name, {
        durable: true,
        arguments: {
          "x-queue-type": "classic",
          "x-message-ttl": delayMs,
          "x-expires": delayMs + 10 * 60_000,
          "x-dead-letter-exchange": "",
          "x-dead-letter-routing-key": queue,
        },
      });
    } catch (cause) {
      throw topologyError(`queue "${name}"`, cause);
    } finally {
      await channel.close().catch(() => {});
    }
    this.#delayQueues.set(name, Date.now());
    return name;
  }

  // ---- publishing ----

  #publisherChannel(): Promise<ConfirmChannel> {
    this.#publisher ??= (async () => {
      const model = await this.#connection();
      const channel = await model.createConfirmChannel();
      channel.on("error", () => {});
      channel.on("close", () => {
        this.#publisher = undefined;
        if (this.#openPublisher === channel) this.#openPublisher = undefined;
      });
      channel.on("return", (message: ConsumeMessage) => {
        const id = message.properties.messageId as string | undefined;
        if (id !== undefined) this.#returned.set(id, (this.#returned.get(id) ?? 0) + 1);
      });
      this.#openPublisher = channel;
      return channel;
    })().catch((error) => {
      this.#publisher = undefined;
      throw error;
    });
    return this.#publisher;
  }

  async publish(destination: Destination, messages: WireMessage[]): Promise<void> {
    if (destination.kind === "queue") await this.#send("", destination.name, messages, true, destination);
    else await this.#send(destination.name, undefined, messages, false, destination);
  }

  /**
   * Publishes on the confirm channel and resolves when the broker confirmed every message. When the
   * connection drops mid-way the batch is sent again after the reconnect (at-least-once), within
   * `publishTimeoutMs`; after that, or past `maxPendingMessages`, it fails with TRANSPORT_ERROR.
   */
  async #send(
    exchange: string,
    routingKey: string | undefined,
    messages: WireMessage[],
    mandatory: boolean,
    destination: Destination,
    extra?: Record<string, string>,
  ): Promise<void> {
    if (this.#closed) throw new SwitchyardError("CLOSED", "the rabbitmq transport is closed");
    const prepared = messages.map((message) => {
      const properties = toAmqp(message, extra);
      if (!headersFit(properties, (this.options.connect.frameMax ?? 131_072) - FRAME_HEADROOM)) {
        throw new SwitchyardError(
          "MESSAGE_TOO_LARGE",
          `the headers of message ${message.id} do not fit in one AMQP frame`,
        );
      }
      properties.mandatory = mandatory;
      const body = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
      return { message, properties, body };
    });
    const deadline = Date.now() + this.options.publishTimeoutMs;
    const waiting = !this.#model;
    if (waiting && this.#pending + messages.length > this.options.maxPendingMessages) {
      throw new SwitchyardError(
        "TRANSPORT_ERROR",
        `RabbitMQ at ${this.options.display} is unreachable and ${this.#pending} messages are already waiting`,
      );
    }
    this.#pending += messages.length;
    try {
      for (;;) {
        try {
          // Batches are written one after another: one that waits for the channel to drain holds
          // later ones back, so messages reach the queue in publish order (per-key order holds with
          // single-active-consumer). Nothing to wait for on the fast path.
          while (this.#writing) await this.#writing;
          // Fast path: an open confirm channel is used without awaiting anything.
          let channel = this.#model ? this.#openPublisher : undefined;
          if (!channel) {
            await this.#connected(deadline);
            channel = await this.#publisherChannel();
            // Another batch waited for the channel too, and is writing already: after it.
            if (this.#writing) continue;
          }
          const confirms: Promise<void>[] = [];
          // Set while this batch waits for 'drain' mid-way (see below); released once it is written.
          let written: (() => void) | undefined;
          try {
            for (const { message, properties, body } of prepared) {
              const key = routingKey ?? routingKeyOf(message);
              let ok = true;
              confirms.push(
                new Promise<void>((resolve, reject) => {
                  ok = channel.publish(exchange, key, body, properties, (error) => {
                    if (error) return reject(new Retryable(error));
                    const returned = this.#returned.get(message.id);
                    if (returned) {
                      if (returned === 1) this.#returned.delete(message.id);
                      else this.#returned.set(message.id, returned - 1);
                      return reject(
                        new SwitchyardError(
                          "TRANSPORT_ERROR",
                          `message ${message.id} was unroutable: ${destination.kind} "${destination.name}" does not exist`,
                        ),
                      );
                    }
                    resolve();
                  });
                }),
              );
              // Flow control: when the channel's buffer is full, wait for 'drain' before writing more.
              if (!ok) {
                if (!written) {
                  this.#writing = new Promise<void>((resolve) => {
                    written = resolve;
                  });
                }
                await Promise.race([once(channel, "drain"), once(channel, "close")]);
              }
            }
          } finally {
            this.#release(written);
          }
          await Promise.all(confirms);
          return;
        } catch (error) {
          if (this.#closed) throw new SwitchyardError("CLOSED", "the rabbitmq transport was closed");
          const retry = error instanceof Retryable || !this.#model;
          if (!retry || Date.now() >= deadline) {
            throw error instanceof SwitchyardError
              ? error
              : new SwitchyardError(
                  "TRANSPORT_ERROR",
                  `publish to ${destination.kind} "${destination.name}" failed: ${errorText(error)}`,
                  { cause: sanitize(error) },
                );
          }
          await sleep(50);
        }
      }
    } finally {
      this.#pending -= messages.length;
    }
  }

  /** Lets the next batch write (see #send). */
  #release(written: (() => void) | undefined): void {
    if (!written) return;
    this.#writing = undefined;
    written();
  }

  // ---- consuming ----

  async subscribe(
    source: Source,
    options: SubscribeOptions,
    deliver: (delivery: Delivery) => void,
  ): Promise<TransportSubscription> {
    if (this.#closed) throw new SwitchyardError("CLOSED", "the rabbitmq transport is closed");
    const subscription: Subscription = {
      source,
      prefetch: options.prefetch,
      deliver,
      channel: undefined,
      acks: undefined,
      tag: undefined,
      starting: undefined,
      closed: false,
      onError: options.onError,
    };
    await this.#resume(subscription);
    this.#subscriptions.add(subscription);
    return {
      // basic.cancel: no new deliveries, while the ones held stay settleable on the open channel.
      stop: async () => {
        subscription.closed = true;
        const { channel, tag } = subscription;
        subscription.tag = undefined;
        if (channel && tag) await channel.cancel(tag).catch(() => {});
      },
      close: async () => {
        subscription.closed = true;
        this.#subscriptions.delete(subscription);
        const { channel, tag } = subscription;
        subscription.acks?.flush(); // acks the core made this turn go out before the channel closes
        subscription.channel = undefined;
        if (channel) {
          if (tag) await channel.cancel(tag).catch(() => {});
          await channel.close().catch(() => {});
        }
      },
    };
  }

  #resume(subscription: Subscription): Promise<void> {
    if (subscription.closed || subscription.channel) return Promise.resolve();
    subscription.starting ??= this.#consume(subscription).finally(() => {
      subscription.starting = undefined;
    });
    return subscription.starting;
  }

  #retryConsume(subscription: Subscription, delayMs: number): void {
    setTimeout(() => {
      if (subscription.closed || this.#closed || subscription.channel) return;
      if (!this.#subscriptions.has(subscription)) return; // its first subscribe() failed: nothing to keep
      if (!this.#model) return; // the reconnect loop resumes every subscription
      this.#resume(subscription).catch((error: unknown) => {
        this.#recovered(subscription, "consuming again; trying again", error);
        this.#retryConsume(subscription, Math.min(this.options.reconnectMaxDelayMs, delayMs * 2));
      });
    }, delayMs).unref();
  }

  /** Reports an error the subscription recovers from by itself, as a TRANSPORT_ERROR without credentials. */
  #recovered(subscription: Subscription, doing: string, cause: unknown): void {
    if (subscription.closed || this.#closed || !subscription.onError) return;
    const queue = queueOf(subscription.source);
    subscription.onError(
      new SwitchyardError("TRANSPORT_ERROR", `rabbitmq: queue "${queue}", ${doing}: ${errorText(cause)}`, {
        cause: sanitize(cause),
      }),
    );
  }

  /** A channel of its own per subscription: prefetch is per consumer, and a channel error stays local. */
  async #consume(subscription: Subscription): Promise<void> {
    const model = await this.#connection();
    const channel = await model.createChannel();
    // Set when the broker closes the channel with an error; a lost connection closes it without one.
    let closedBy: unknown;
    channel.on("error", (error: unknown) => {
      closedBy = error;
    });
    channel.on("close", () => {
      if (subscription.channel !== channel) return;
      subscription.channel = undefined;
      subscription.tag = undefined;
      // A channel closed under a live connection (e.g. its queue was deleted): try again with backoff.
      if (closedBy !== undefined) this.#recovered(subscription, "channel closed; consuming again", closedBy);
      this.#retryConsume(subscription, this.options.reconnectInitialDelayMs);
    });
    await channel.prefetch(subscription.prefetch);
    subscription.channel = channel;
    subscription.acks = new AckBatcher(channel);
    const queue = queueOf(subscription.source);
    try {
      const reply = await channel.consume(queue, (raw) => {
        if (raw) this.#onMessage(subscription, channel, raw);
      });
      subscription.tag = reply.consumerTag;
    } catch (cause) {
      subscription.channel = undefined;
      throw topologyError(`queue "${queue}"`, cause);
    }
  }

  #onMessage(subscription: Subscription, channel: Channel, raw: ConsumeMessage): void {
    const quorum = this.options.queueType === "quorum";
    const { message, attempt } = fromAmqp(raw, quorum);
    const queue = queueOf(subscription.source);
    let settled = false;
    const settle = (what: string) => {
      if (settled) {
        throw new SwitchyardError(
          "ALREADY_SETTLED",
          `message ${message.id} already settled; ${what} refused`,
        );
      }
      if (subscription.channel !== channel) {
        throw new SwitchyardError(
          "TRANSPORT_ERROR",
          `cannot ${what} message ${message.id}: its channel closed; the broker will redeliver it`,
        );
      }
      settled = true;
    };
    const acks = subscription.acks as AckBatcher;
    const tag = raw.fields.deliveryTag;
    acks.track(tag);
    const delivery: Delivery = {
      message,
      attempt,
      ack: () => {
        try {
          settle("ack");
        } catch (error) {
          return Promise.reject(error);
        }
        acks.ack(tag); // sent with the turn's other acks as one multiple ack
        return ackQueued;
      },
      nack: async (options) => {
        settle("nack");
        const delayMs = options?.delayMs ?? 0;
        if (delayMs <= 0 && quorum) {
          acks.settledElsewhere(tag);
          channel.nack(raw, false, true); // the quorum queue counts it in x-delivery-count
          return;
        }
        try {
          // Classic queues do not count returns, and delays go through a TTL queue: both republish
          // the message with the attempts used so far, then ack the original.
          const target = delayMs > 0 ? await this.#declareDelayQueue(queue, delayBucket(delayMs)) : queue;
          await this.#send(
            "",
            target,
            [message],
            true,
            { kind: "queue", name: target },
            {
              [ATTEMPT_HEADER]: String(attempt),
            },
          );
        } catch (error) {
          if (subscription.channel === channel) {
            acks.settledElsewhere(tag);
            channel.nack(raw, false, true);
          }
          throw error;
        }
        acks.ack(tag);
      },
    };
    subscription.deliver(delivery);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const subscription of this.#subscriptions) {
      subscription.closed = true;
      subscription.acks?.flush();
    }
    this.#subscriptions.clear();
    const connecting = this.#connecting;
    const model = this.#model ?? (await connecting?.catch(() => undefined));
    this.#model = undefined;
    await model?.close().catch(() => {});
  }
}

class Retryable extends Error {
  constructor(cause: unknown) {
    super(errorText(cause), { cause });
  }
}

function routingKeyOf(message: WireMessage): string {
  const type = message.headers.ce_type ?? "";
  return Buffer.byteLength(type) <= 255 ? type : "";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** amqplib's messages carry no credentials, but strip anything URL-like with user info anyway. */
function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\/\/[^@/\s]*@/g, "//***@");
}

function sanitize(error: unknown): Error {
  const clean = new Error(errorText(error));
  if (error instanceof Error) clean.name = error.name;
  return clean;
}

/** A PRECONDITION_FAILED from a declaration becomes a typed error naming the entity and argument. */
function topologyError(what: string, cause: unknown): SwitchyardError {
  const text = errorText(cause);
  const argument = /inequivalent arg '([^']+)'/.exec(text)?.[1];
  if (/PRECONDITION_FAILED/.test(text)) {
    return new SwitchyardError(
      "CONFIG_INVALID",
      `${what} exists with other arguments${argument ? ` (conflicting argument "${argument}")` : ""}: ${text}`,
      { cause: sanitize(cause), details: { entity: what, ...(argument ? { argument } : {}) } },
    );
  }
  return new SwitchyardError("TRANSPORT_ERROR", `declaring ${what} failed: ${text}`, {
    cause: sanitize(cause),
  });
}

export function createRabbitTransport(url: URL, options: RabbitOptions = {}): RabbitTransport {
  return new RabbitTransport(resolveOptions(url, options));
}

/** Whether two entities name the same thing on the broker (a subscription's settings aside). */
function sameEntity(a: TopologyEntity, b: TopologyEntity): boolean {
  if (a.kind !== b.kind || a.name !== b.name) return false;
  return a.kind !== "subscription" || b.kind !== "subscription" || a.topic === b.topic;
}
