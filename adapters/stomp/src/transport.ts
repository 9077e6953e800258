import {
  type Capabilities,
  CONTENT_TYPE_HEADER,
  type Delivery,
  type Destination,
  type Source,
  STRUCTURED_CONTENT_TYPE,
  type SubscribeOptions,
  SwitchyardError,
  type TopologyEntity,
  type Transport,
  type TransportSubscription,
  type WireMessage,
} from "@switchyard/core";
import { type Frame, StompConnection } from "./connection.js";
import { checkName, type Dialect } from "./dialect.js";
import { type ResolvedOptions, resolveOptions, type StompOptions } from "./options.js";

/** A wait that does not keep the process alive on its own. */
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** Our own header: the delivery attempt of a retry copy (`ce_x…`, which fromWire ignores). */
export const ATTEMPT_HEADER = "ce_xattempt";
const ID_HEADER = "ce_id";
const KEY_HEADER = "ce_partitionkey";

/**
 * Switchyard over STOMP 1.2. One connection publishes (every SEND waits for its RECEIPT); each
 * subscription has a connection of its own, so an ERROR frame on one (which closes that
 * connection, per STOMP) never takes the others down. Acks are `client-individual`.
 *
 * A nack republishes a copy with `ce_xattempt` + 1 to the source's own queue (delayed the dialect's
 * way) and then acks the original: STOMP brokers do not count deliveries (ActiveMQ even moves a
 * NACKed message straight to its DLQ), so the adapter counts attempts itself.
 */
export class StompTransport implements Transport {
  readonly name: string;
  readonly capabilities: Partial<Capabilities>;
  readonly options: ResolvedOptions;
  readonly dialect: Dialect;
  readonly #publisher: StompConnection;
  readonly #subscriptions = new Set<StompConnection>();
  #closed = false;

  constructor(options: ResolvedOptions) {
    this.options = options;
    this.dialect = options.dialect;
    this.name = `stomp+${this.dialect.name}`;
    this.capabilities = { ...this.dialect.capabilities, maxMessageBytes: options.maxMessageBytes };
    this.#publisher = new StompConnection(options, "publisher");
  }

  async connect(): Promise<void> {
    await this.#publisher.connect();
  }

  async provision(entities: TopologyEntity[]): Promise<void> {
    for (const entity of entities) {
      if (entity.kind === "subscription") {
        this.#checkSource({ kind: "topic", name: entity.topic, subscription: entity.name });
      } else {
        checkName(entity.kind, entity.name);
      }
    }
    // Queues are declared by the broker on first SEND or SUBSCRIBE. A subscription's queue must
    // exist before a publish to the topic fans out to it: a SUBSCRIBE (then a plain UNSUBSCRIBE,
    // which keeps the queue) creates it on both brokers.
    const subscriptions = entities.filter((e) => e.kind === "subscription");
    if (subscriptions.length === 0) return;
    const connection = new StompConnection(this.options, "provision");
    try {
      for (const entity of subscriptions) {
        const source: Source = { kind: "topic", name: entity.topic, subscription: entity.name };
        const frame = this.dialect.subscribeFrame(source, 1);
        const handle = await connection.subscribe({ ...frame, onFrame: () => {} });
        await handle.unsubscribe();
      }
    } finally {
      await connection.close();
    }
  }

  #checkSource(source: Source): void {
    checkName(source.kind, source.name);
    // ActiveMQ's consumer pattern `Consumer.*.VirtualTopic.>` takes one segment for the subscription.
    if (source.kind === "topic") checkName("subscription", source.subscription, /\./);
  }

  async publish(destination: Destination, messages: WireMessage[]): Promise<void> {
    this.#assertOpen();
    checkName(destination.kind, destination.name);
    const target = this.dialect.publishDestination(destination);
    const frames = messages.map((message) => ({
      headers: this.#headers(message, target),
      body: message.body,
    }));
    await Promise.all(frames.map((frame) => this.#publisher.send(frame.headers, frame.body)));
  }

  /** SEND headers of a wire message; refuses what STOMP or the broker cannot carry. */
  #headers(
    message: WireMessage,
    destination: string,
    extra?: Record<string, string>,
  ): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(message.headers)) {
      if (name === ATTEMPT_HEADER) continue;
      // A structured-mode CloudEvent says so in STOMP's own content-type header (the body's type).
      if (name === CONTENT_TYPE_HEADER && value.startsWith(STRUCTURED_CONTENT_TYPE)) {
        headers[name] = value;
        continue;
      }
      if (this.dialect.isBrokerHeader(name)) {
        throw new SwitchyardError(
          "INVALID_HEADER",
          `header "${name}" is reserved by STOMP or ${this.dialect.name} and cannot be carried`,
        );
      }
      if (name.includes("\0") || value.includes("\0")) {
        throw new SwitchyardError("INVALID_HEADER", `header "${name}" contains a NUL character`);
      }
      if (Buffer.byteLength(name) + Buffer.byteLength(value) > this.dialect.maxHeaderBytes) {
        throw new SwitchyardError(
          "INVALID_HEADER",
          `header "${name}" is longer than ${this.dialect.maxHeaderBytes} bytes, ${this.dialect.name}'s limit`,
        );
      }
      headers[name] = value;
    }
    if (message.headers[ID_HEADER] === undefined) headers[ID_HEADER] = message.id;
    if (message.key !== undefined) Object.assign(headers, this.dialect.keyHeaders(message.key));
    headers.persistent = "true";
    headers.destination = destination;
    if (extra) Object.assign(headers, extra);
    return headers;
  }

  async subscribe(
    source: Source,
    options: SubscribeOptions,
    deliver: (delivery: Delivery) => void,
  ): Promise<TransportSubscription> {
    this.#assertOpen();
    this.#checkSource(source);
    const connection = new StompConnection(this.options, `subscription ${source.subscription}`, (error) =>
      options.onError?.(error),
    );
    this.#subscriptions.add(connection);
    const frame = this.dialect.subscribeFrame(source, options.prefetch);
    // Settlements still on the wire: close waits for them, since an ACK after UNSUBSCRIBE is an
    // ERROR on RabbitMQ (and would let the broker redeliver a message we already copied).
    const pending = new Set<Promise<unknown>>();
    const track = <T>(work: Promise<T>): Promise<T> => {
      pending.add(work);
      void work.then(
        () => pending.delete(work),
        () => pending.delete(work),
      );
      return work;
    };
    let closing = false;
    let handle: { unsubscribe(): Promise<void> };
    try {
      handle = await connection.subscribe({
        ...frame,
        // Frames arriving once closing has begun stay unacked: the broker redelivers them.
        onFrame: (received) => {
          if (!closing) deliver(this.#delivery(source, received, track));
        },
      });
    } catch (error) {
      this.#subscriptions.delete(connection);
      await connection.close();
      throw error;
    }
    return {
      close: async () => {
        closing = true;
        // Bounded: a settlement stuck on a dead socket must not hang close; what stays unacked
        // is redelivered by the broker.
        const deadline = Date.now() + this.options.publishTimeoutMs;
        while (pending.size > 0 && Date.now() < deadline) {
          await Promise.race([Promise.allSettled([...pending]), pause(deadline - Date.now())]);
        }
        await handle.unsubscribe();
        await connection.close();
        this.#subscriptions.delete(connection);
      },
    };
  }

  #delivery(source: Source, frame: Frame, track: <T>(work: Promise<T>) => Promise<T>): Delivery {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(frame.headers)) {
      if (name === CONTENT_TYPE_HEADER && value.startsWith(STRUCTURED_CONTENT_TYPE)) {
        headers[name] = value; // a structured-mode CloudEvent (see #headers)
        continue;
      }
      if (name === ATTEMPT_HEADER || this.dialect.isBrokerHeader(name)) continue;
      headers[name] = value;
    }
    const attempt = Number(frame.headers[ATTEMPT_HEADER] ?? 1) || 1;
    const message: WireMessage = {
      id: headers[ID_HEADER] ?? frame.headers["message-id"] ?? "",
      headers,
      body: new Uint8Array(frame.body.buffer, frame.body.byteOffset, frame.body.byteLength),
    };
    const key = headers[KEY_HEADER];
    if (key !== undefined) message.key = key;
    let settled = false;
    const settle = (what: string) => {
      if (settled) throw new SwitchyardError("ALREADY_SETTLED", `message ${message.id}: ${what} refused`);
      settled = true;
    };
    return {
      message,
      attempt,
      ack: () => {
        settle("ack");
        return track(frame.ack());
      },
      nack: (options) => {
        settle("nack");
        return track(this.#retry(source, frame, message, attempt, options?.delayMs ?? 0));
      },
    };
  }

  /** A nack: a copy with the next attempt goes back to the source's own queue, then the ack. */
  async #retry(source: Source, frame: Frame, message: WireMessage, attempt: number, delayMs: number) {
    const delayed = delayMs > 0 ? this.dialect.delay(source, delayMs) : undefined;
    const destination = delayed?.destination ?? this.dialect.retryDestination(source);
    const copy = this.#headers(message, destination, {
      ...(delayed?.headers ?? {}),
      [ATTEMPT_HEADER]: String(attempt + 1),
    });
    // Copy first, then ack: a crash in between leaves a duplicate, never a loss.
    await this.#publisher.send(copy, message.body);
    await frame.ack();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#subscriptions].map((c) => c.close()));
    this.#subscriptions.clear();
    await this.#publisher.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new SwitchyardError("CLOSED", `${this.name} transport is closed`);
  }
}

export function createTransport(url: URL, options: StompOptions = {}): StompTransport {
  return new StompTransport(resolveOptions(url, options));
}
