import { type Message, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import {
  type Delivery,
  type FaultHeaders,
  SwitchyardError,
  type TransportSubscription,
  type WireMessage,
} from "@switchyard/core";
import { decodeMessage } from "./codec.js";
import { awsError, receiveTimeoutMs } from "./config.js";
import { BATCH, MAX_VISIBILITY_SECONDS, type SqsQueues } from "./queues.js";

export interface SqsConsumerOptions {
  /** The SQS queue to read (created if missing). */
  queue: string;
  prefetch: number;
  deliver: (delivery: Delivery) => void;
  /** Moves a message to the dead-letter queue (with fault headers); the consumer then deletes it. */
  deadLetter?: (message: WireMessage, fault: FaultHeaders) => Promise<void>;
  /** Turns a received SQS message into a wire message. Default: the Switchyard SQS mapping. */
  decode?: (message: Message) => WireMessage;
  /** Reports errors the loop recovers from (a failed receive, a failed heartbeat). */
  onError?: (error: unknown) => void;
}

interface Held {
  handle: string;
  extendedAt: number;
  settled: boolean;
}

/**
 * Reads one SQS queue: long polls with at most `prefetch` unsettled messages, acks by batched
 * deletes, nacks by ChangeMessageVisibility (the delay, rounded up to whole seconds), extends the
 * visibility of messages whose handler is still running, and counts attempts from
 * ApproximateReceiveCount. Both AWS adapters consume through this class.
 */
export class SqsConsumer implements TransportSubscription {
  readonly #queues: SqsQueues;
  readonly #options: SqsConsumerOptions;
  readonly #held = new Set<Held>();
  readonly #loops: Promise<void>[] = [];
  readonly #pendingDeletes: { handle: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #url!: string;
  #reserved = 0;
  readonly #waiters = new Set<() => void>();
  #closed = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #flushScheduled = false;
  #closing: Promise<void> | undefined;

  constructor(queues: SqsQueues, options: SqsConsumerOptions) {
    this.#queues = queues;
    this.#options = options;
  }

  get #visibility(): number {
    return this.#queues.options.visibilityTimeoutSeconds;
  }

  /** Resolves once the queue exists and the first receive is under way. */
  async start(): Promise<this> {
    this.#url = await this.#queues.url(this.#options.queue);
    const loops = Math.max(1, Math.min(4, Math.ceil(this.#options.prefetch / BATCH)));
    for (let i = 0; i < loops; i++) this.#loops.push(this.#loop());
    const every = Math.max(1000, (this.#visibility * 1000) / 3);
    this.#heartbeat = setInterval(() => void this.#extend(every), every);
    this.#heartbeat.unref();
    return this;
  }

  get #unsettled(): number {
    return this.#held.size;
  }

  async #loop(): Promise<void> {
    const client = this.#queues.client;
    let failures = 0;
    while (!this.#closed) {
      const free = this.#options.prefetch - this.#unsettled - this.#reserved;
      if (free <= 0) {
        await new Promise<void>((resolve) => this.#waiters.add(resolve));
        continue;
      }
      const count = Math.min(BATCH, free);
      this.#reserved += count;
      let messages: Message[] = [];
      try {
        const out = await client.send(
          new ReceiveMessageCommand({
            QueueUrl: this.#url,
            MaxNumberOfMessages: count,
            WaitTimeSeconds: this.#queues.options.waitTimeSeconds,
            VisibilityTimeout: this.#visibility,
            MessageAttributeNames: ["All"],
            MessageSystemAttributeNames: ["ApproximateReceiveCount"],
          }),
          { requestTimeout: receiveTimeoutMs(this.#queues.options) },
        );
        messages = out.Messages ?? [];
        failures = 0;
      } catch (error) {
        this.#options.onError?.(awsError("ReceiveMessage", error));
        failures++;
        await sleep(Math.min(5000, 100 * 2 ** failures));
      } finally {
        this.#reserved -= count;
      }
      if (this.#closed) {
        // Received while closing: hand them straight back rather than hide them until the timeout.
        if (messages.length > 0) {
          await this.#queues
            .changeVisibilityBatch(
              this.#url,
              messages.map((m) => m.ReceiptHandle!),
              0,
            )
            .catch(() => {});
        }
        break;
      }
      for (const message of messages) this.#deliver(message);
    }
  }

  #decode(message: Message): WireMessage {
    const fallbackId = message.MessageId ?? "unknown";
    if (this.#options.decode) return this.#options.decode(message);
    try {
      return decodeMessage(message.Body ?? "", message.MessageAttributes, fallbackId);
    } catch {
      // Malformed Switchyard attributes: deliver it as a foreign message; the core dead-letters it.
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(message.MessageAttributes ?? {}))
        if (value.StringValue !== undefined) headers[name] = value.StringValue;
      return { id: fallbackId, headers, body: new Uint8Array(Buffer.from(message.Body ?? "", "utf8")) };
    }
  }

  #deliver(message: Message): void {
    const held: Held = { handle: message.ReceiptHandle!, extendedAt: Date.now(), settled: false };
    this.#held.add(held);
    const wire = this.#decode(message);
    const attempt = Math.max(1, Number(message.Attributes?.ApproximateReceiveCount ?? "1") || 1);
    const settle = (what: string) => {
      if (held.settled) {
        throw new SwitchyardError("ALREADY_SETTLED", `message ${wire.id} already settled; ${what} refused`);
      }
      held.settled = true;
      this.#held.delete(held);
      this.#wakeAll();
    };
    const delivery: Delivery = {
      message: wire,
      attempt,
      ack: async () => {
        settle("ack");
        await this.#delete(held.handle);
      },
      nack: async (options) => {
        settle("nack");
        const seconds = Math.min(MAX_VISIBILITY_SECONDS, Math.ceil((options?.delayMs ?? 0) / 1000));
        await this.#queues.changeVisibility(this.#url, held.handle, seconds);
      },
    };
    const deadLetter = this.#options.deadLetter;
    if (deadLetter) {
      delivery.deadLetter = async (fault) => {
        if (held.settled) {
          throw new SwitchyardError(
            "ALREADY_SETTLED",
            `message ${wire.id} already settled; deadLetter refused`,
          );
        }
        // Copy first, delete after: a crash in between leaves a duplicate, never a loss.
        await deadLetter({ ...wire, headers: { ...wire.headers, ...fault } }, fault);
        settle("deadLetter");
        await this.#delete(held.handle);
      };
    }
    this.#options.deliver(delivery);
  }

  #wakeAll(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  #delete(handle: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pendingDeletes.push({ handle, resolve, reject });
      if (this.#pendingDeletes.length >= BATCH) void this.#flush();
      else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    this.#flushScheduled = false;
    const batch = this.#pendingDeletes.splice(0, this.#pendingDeletes.length);
    if (batch.length === 0) return;
    const results = await this.#queues.deleteBatch(
      this.#url,
      batch.map((d) => d.handle),
    );
    batch.forEach((d, i) => {
      const error = results[i];
      if (error) d.reject(error);
      else d.resolve();
    });
  }

  /** Visibility heartbeat: messages still held after a third of the timeout get a fresh timeout. */
  async #extend(every: number): Promise<void> {
    const now = Date.now();
    const due = [...this.#held].filter((h) => now - h.extendedAt >= every);
    if (due.length === 0) return;
    for (const h of due) h.extendedAt = now;
    const results = await this.#queues.changeVisibilityBatch(
      this.#url,
      due.map((h) => h.handle),
      this.#visibility,
    );
    const failed = results.filter((r, i) => r && !due[i]!.settled);
    if (failed.length > 0) this.#options.onError?.(failed[0]);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      clearInterval(this.#heartbeat);
      this.#wakeAll();
      await Promise.allSettled(this.#loops);
      await this.#flush();
      // Still held (a handler the core gave up on at stop): hand it back now rather than hide it
      // until its visibility timeout runs out; a late settlement of it is refused.
      const held = [...this.#held];
      for (const h of held) h.settled = true;
      this.#held.clear();
      if (held.length > 0) {
        await this.#queues
          .changeVisibilityBatch(
            this.#url,
            held.map((h) => h.handle),
            0,
          )
          .catch(() => {});
      }
    })();
    return this.#closing;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
