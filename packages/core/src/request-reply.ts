// Request-reply over any transport: `bus.request()` sends a message to a queue with a `replyto`
// attribute naming this bus's reply queue and waits for the message whose causation id (or
// correlation id) is the request's id; the responder answers with `ctx.reply()`. Everything here
// goes through the ordinary Transport contract (a queue, a publish, a subscription), so every
// adapter supports it without code of its own.
import type { PublishOptions } from "./bus.js";
import type { Message } from "./consumer.js";
import { type Envelope, fromWire, newId } from "./envelope.js";
import { SwitchyardError } from "./errors.js";
import type { Logger } from "./instrumentation.js";
import { applyUpcasters, checkVersion, decideVersion, type MessageType } from "./schema.js";
import type { Delivery, Source, TopologyEntity, Transport, TransportSubscription } from "./transport.js";

export interface RequestOptions<N extends number = number> extends Omit<PublishOptions<N>, "replyTo"> {
  /** How long to wait for the reply. Default 30,000 ms. */
  timeoutMs?: number;
  /**
   * The type the reply must have: its data is then validated and upcast to the type's latest
   * version, and a reply of another type rejects the request. Absent: any reply, data decoded by
   * content type only.
   */
  replyType?: MessageType<any>;
}

/** Publish options a reply may set (`ctx.reply`); its ids and destination come from the request. */
export interface ReplyOptions<N extends number = number> {
  version?: N;
  subject?: string;
  headers?: Record<string, string>;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Longest timeout a timer can hold (2^31 − 1 ms, about 24.8 days). */
const MAX_TIMEOUT_MS = 2_147_483_647;

/** What the reply machinery needs from its bus. */
export interface RequestRuntime {
  transport(): Promise<Transport>;
  ensure(entities: TopologyEntity[]): Promise<void>;
  /** Sends the request (a `bus.send` with the reply-to and ids set). */
  send(queue: string, type: MessageType | string, data: unknown, options: PublishOptions): Promise<Envelope>;
  logger?: Logger | undefined;
}

interface PendingRequest {
  resolve(reply: Message): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout;
  replyType: MessageType | undefined;
}

/**
 * One bus's outstanding requests and its reply queue. The queue is created by the first request
 * (so a bus that never requests creates nothing) and deleted on close where the transport can.
 */
export class RequestClient {
  readonly #runtime: RequestRuntime;
  /** This bus's reply queue: unique per bus, so replies never reach another bus. */
  readonly replyQueue: string;
  readonly #pending = new Map<string, PendingRequest>();
  #listening: Promise<TransportSubscription> | undefined;
  #closed = false;
  /** Replies that matched no outstanding request (late, after a timeout, or duplicates). */
  droppedReplies = 0;

  constructor(runtime: RequestRuntime, replyQueue?: string) {
    this.#runtime = runtime;
    // Letters, digits and dashes only: a valid queue name on every broker Switchyard supports.
    this.replyQueue = replyQueue ?? `switchyard-reply-${newId().replaceAll("-", "").slice(-20)}`;
  }

  async request(
    queue: string,
    type: MessageType | string,
    data: unknown,
    options: RequestOptions = {},
  ): Promise<Message> {
    const { timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS, replyType, ...publish } = options;
    if (typeof timeoutMs !== "number" || !(timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS)) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        `request timeoutMs must be a number from 1 to ${MAX_TIMEOUT_MS}, got ${timeoutMs}`,
      );
    }
    if (this.#closed) throw new SwitchyardError("CLOSED", "the bus is closed");
    await this.#listen();
    // The id is chosen before sending so the reply, which may come back before `send` resolves,
    // already finds its request. Unless the caller names a flow, the request starts one.
    const id = publish.id ?? newId();
    const reply = new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new SwitchyardError(
            "TIMEOUT",
            `no reply to request ${id} on queue "${queue}" within ${timeoutMs} ms`,
            {
              details: { queue, requestId: id, timeoutMs },
            },
          ),
        );
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer, replyType });
    });
    // The timeout may fire while the send below is still in progress, before the caller holds the
    // promise: mark it handled so that is no unhandled rejection (the caller still gets it).
    reply.catch(() => {});
    try {
      await this.#runtime.send(queue, type, data, {
        ...publish,
        id,
        correlationId: publish.correlationId ?? id,
        replyTo: this.replyQueue,
      });
    } catch (error) {
      const pending = this.#pending.get(id);
      if (pending) {
        clearTimeout(pending.timer);
        this.#pending.delete(id);
      }
      throw error;
    }
    return reply;
  }

  /** Subscribes to the reply queue once; later requests reuse the subscription. */
  #listen(): Promise<TransportSubscription> {
    this.#listening ??= (async () => {
      const transport = await this.#runtime.transport();
      await this.#runtime.ensure([{ kind: "queue", name: this.replyQueue }]);
      const source: Source = { kind: "queue", name: this.replyQueue, subscription: this.replyQueue };
      return transport.subscribe(source, { prefetch: 64 }, (delivery) => this.#receive(delivery));
    })();
    // A failed subscribe is retried by the next request instead of failing every later one.
    this.#listening.catch(() => (this.#listening = undefined));
    return this.#listening;
  }

  #receive(delivery: Delivery): void {
    // A reply is settled at once whatever it holds: nobody retries or dead-letters replies, and a
    // reply nobody waits for any more has nothing to wait for.
    delivery.ack().catch((error: unknown) => {
      this.#runtime.logger?.debug({ queue: this.replyQueue, error: String(error) }, "reply ack failed");
    });
    let envelope: Envelope;
    try {
      envelope = fromWire(delivery.message);
    } catch (error) {
      this.#drop(delivery.message.id, `undecodable: ${(error as Error).message}`);
      return;
    }
    const requestId =
      (envelope.causationId !== undefined && this.#pending.has(envelope.causationId)
        ? envelope.causationId
        : undefined) ??
      (envelope.correlationId !== undefined && this.#pending.has(envelope.correlationId)
        ? envelope.correlationId
        : undefined);
    if (requestId === undefined) {
      this.#drop(envelope.id, "no request waits for it (timed out, or a duplicate)");
      return;
    }
    const pending = this.#pending.get(requestId)!;
    this.#pending.delete(requestId);
    clearTimeout(pending.timer);
    void this.#typed(envelope, pending.replyType).then(pending.resolve, pending.reject);
  }

  #drop(messageId: string, why: string): void {
    this.droppedReplies++;
    this.#runtime.logger?.debug({ queue: this.replyQueue, messageId, why }, "reply dropped");
  }

  /** Checks the reply against the expected type: same type, a handled version, valid data. */
  async #typed(reply: Envelope, replyType: MessageType | undefined): Promise<Message> {
    if (!replyType) return reply;
    if (reply.type !== replyType.type) {
      throw new SwitchyardError(
        "UNKNOWN_MESSAGE_TYPE",
        `the reply is a "${reply.type}", expected "${replyType.type}"`,
        { details: { expected: replyType.type, received: reply.type, replyId: reply.id } },
      );
    }
    const version = reply.schemaVersion;
    const decision =
      version === undefined ? undefined : decideVersion(replyType, [replyType.latest], version);
    if (decision?.action !== "handle") {
      throw new SwitchyardError(
        "UNKNOWN_VERSION",
        `reply "${reply.type}" version ${version ?? "(none)"} cannot be read as v${replyType.latest}`,
      );
    }
    let valid = checkVersion(replyType, version!, reply.data);
    if (valid instanceof Promise) valid = await valid;
    if (!valid.ok) {
      throw new SwitchyardError(
        "VALIDATION_FAILED",
        `reply "${reply.type}" v${version} is invalid: ${valid.message}`,
        {
          details: { type: reply.type, version },
        },
      );
    }
    reply.data = applyUpcasters(replyType, valid.value, decision.upcastFrom);
    reply.schemaVersion = decision.version;
    return reply;
  }

  /**
   * Fails what is still waiting (CLOSED), releases the reply queue's subscription and deletes the
   * queue where the transport can. Called by the bus after its consumers stopped.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(new SwitchyardError("CLOSED", `the bus closed before request ${id} got a reply`));
    }
    this.#pending.clear();
    const listening = this.#listening;
    if (!listening) return;
    const subscription = await listening.catch(() => undefined);
    if (!subscription) return;
    await subscription.stop?.();
    await subscription.close();
    const transport = await this.#runtime.transport();
    try {
      await transport.unprovision?.([{ kind: "queue", name: this.replyQueue }]);
    } catch (error) {
      // The queue is only garbage now: closing must not fail because of it.
      this.#runtime.logger?.warn({ queue: this.replyQueue, error: String(error) }, "reply queue not deleted");
    }
  }
}
