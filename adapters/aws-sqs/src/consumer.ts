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
import { BATCH, isRefusal, MAX_VISIBILITY_SECONDS, type SqsQueues, settledBefore } from "./queues.js";

export interface SqsConsumerOptions {
  /** The SQS queue to read (created if missing). */
  queue: string;
  prefetch: number;
  deliver: (delivery: Delivery) => void;
  /** Moves a message to the dead-letter queue (with fault headers); the consumer then deletes it. */
  deadLetter?: (message: WireMessage, fault: FaultHeaders) => Promise<void>;
  /** Turns a received SQS message into a wire message. Default: the Switchyard SQS mapping. */
  decode?: (message: Message) => WireMessage;
  /**
   * Reports errors the consumer recovers from (a failed receive, a failed heartbeat, a settlement
   * that failed and is being retried).
   */
  onError?: (error: unknown) => void;
}

/** A message received and not yet deleted or handed back: the heartbeat keeps it invisible. */
interface Held {
  /** The SQS MessageId: a second receipt of it while held is the same message. */
  id: string | undefined;
  /** The newest receipt handle: the one SQS deletes by. */
  handle: string;
  /** When its visibility was last set: the receive (or extension) was sent then. */
  extendedAt: number;
  /** When it may become visible again, and its receipt handle lapse (as seen from here). */
  expiresAt: number;
  /** An extension of it is under way: the heartbeat does not send another. */
  extending: boolean;
  /** The handler's side settled it (ack, nack, dead letter): a second settlement is refused. */
  settled: boolean;
  /** Nacked: once the visibility change is through, receiving it again is its redelivery. */
  nacked: boolean;
  /** The highest ApproximateReceiveCount among its copies. */
  receives: number;
  /** Copies of it received before it was handed to the core (see `#take`). */
  copies: number;
}

/**
 * How long a message counted more than once waits for a copy from a receive in flight at the same
 * time (see `SqsConsumer.#take`). moto answered the two receives of one message 2–20 ms apart
 * (bench/moto-receive-race.mjs); a wait for a copy that never comes delays a redelivery by this.
 */
const COPY_WAIT_MS = 250;

function receiveCount(message: Message): number {
  return Math.max(1, Number(message.Attributes?.ApproximateReceiveCount ?? "1") || 1);
}

/**
 * Reads one SQS queue: long polls with at most `prefetch` unsettled messages, acks by batched
 * deletes, nacks by ChangeMessageVisibility (the delay, rounded up to whole seconds), extends the
 * visibility of every message it holds (waiting for a handler slot, in a handler, or settling), and
 * counts attempts from ApproximateReceiveCount. A settlement that fails for a transport reason is
 * retried while its receipt handle can still be valid. Both AWS adapters consume through this class.
 */
export class SqsConsumer implements TransportSubscription {
  readonly #queues: SqsQueues;
  readonly #options: SqsConsumerOptions;
  /** Every message held on the broker: open (not settled yet) or settling (its call not through). */
  readonly #held = new Set<Held>();
  /** Held messages by SQS MessageId. */
  readonly #heldById = new Map<string, Held>();
  /** MessageIds this consumer deleted lately, oldest first (bounded): a copy of one is not handled. */
  readonly #deleted = new Set<string>();
  /** Held messages not settled yet: what prefetch bounds. */
  #open = 0;
  readonly #loops: Promise<void>[] = [];
  /** Receives in flight, each resolved once its answer was taken in (its copies counted). */
  readonly #receiving = new Set<Promise<void>>();
  readonly #pendingDeletes: { handle: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** Settlements under way (close() waits for them). */
  readonly #settling = new Set<Promise<void>>();
  /** Settlement backoffs, which close() cuts short. */
  readonly #pauses = new Set<() => void>();
  /** Receive backoffs, which stop() cuts short. */
  readonly #receivePauses = new Set<() => void>();
  #url!: string;
  #reserved = 0;
  readonly #waiters = new Set<() => void>();
  /** stop() began: no more receives; what is held stays settleable. */
  #stopped = false;
  #stopping: Promise<void> | undefined;
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
    // A message is extended once a third of its timeout has passed; ticking twice as often leaves
    // it at least half its timeout for the extension to land (a slow emulator, a cut connection).
    const extendAfterMs = (this.#visibility * 1000) / 3;
    this.#heartbeat = setInterval(() => void this.#extend(extendAfterMs), Math.max(500, extendAfterMs / 2));
    this.#heartbeat.unref();
    return this;
  }

  async #loop(): Promise<void> {
    const client = this.#queues.client;
    let failures = 0;
    while (!this.#stopped) {
      const free = this.#options.prefetch - this.#open - this.#reserved;
      if (free <= 0) {
        await new Promise<void>((resolve) => this.#waiters.add(resolve));
        continue;
      }
      const count = Math.min(BATCH, free);
      this.#reserved += count;
      let taken!: () => void;
      const receiving = new Promise<void>((resolve) => (taken = resolve));
      this.#receiving.add(receiving);
      let messages: Message[] = [];
      // Visibility runs from about when SQS answers: counting from the request errs on the safe side.
      const requestedAt = Date.now();
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
        await this.#pause(Math.min(5000, 100 * 2 ** failures), this.#receivePauses);
      } finally {
        this.#reserved -= count;
        this.#receiving.delete(receiving);
      }
      if (this.#stopped) {
        taken();
        // Received while stopping: hand them straight back rather than hide them until the timeout,
        // but not a copy of one still held (that would show it to other consumers). One nacked is
        // handed back: this is its redelivery, come before the nack's answer (the core nacks what
        // has not started while it stops; on a FIFO queue the group then unlocks at once).
        const stillHeld = (m: Message) => this.#heldById.get(m.MessageId ?? "")?.nacked === false;
        const handles = messages.filter((m) => !stillHeld(m)).map((m) => m.ReceiptHandle!);
        if (handles.length > 0)
          await this.#queues.changeVisibilityBatch(this.#url, handles, 0).catch(() => {});
        break;
      }
      try {
        this.#take(messages, requestedAt);
      } finally {
        taken();
      }
    }
  }

  /**
   * Takes in one receive's answer. A message may come back from two receives in flight together:
   * moto's ReceiveMessage is not atomic (both take it, each counting a receive, so the copies carry
   * counts 1 and 2, or 2 and 2), and AWS standard queues may deliver twice. It is handled once; its
   * attempt is the highest count less the extra copies this consumer received at the same time, so a
   * concurrent copy never makes a first delivery look like a redelivery (the core would take it for
   * a retry). A message counted 1 is handed out at once: no copy can lower that. One counted higher
   * waits for the receives in flight now, as only they can hold a copy of it (a receive sent later
   * finds it invisible), but at most COPY_WAIT_MS: a racing receive was served at the same moment
   * and answers within milliseconds, while one that is only long-polling may not answer for
   * `waitTimeSeconds`, which would hold back every redelivery that long.
   */
  #take(messages: Message[], requestedAt: number): void {
    const others = [...this.#receiving];
    for (const message of messages) {
      const id = message.MessageId;
      const copy = id === undefined ? undefined : this.#heldById.get(id);
      if (copy && !copy.nacked) {
        // Received again while held: one handling is enough. The copy counted last holds the newest
        // receipt handle, the one AWS deletes by (moto takes any of them).
        copy.copies++;
        const receives = receiveCount(message);
        if (receives >= copy.receives) {
          copy.receives = receives;
          copy.handle = message.ReceiptHandle!;
          copy.extendedAt = requestedAt;
          copy.expiresAt = requestedAt + this.#visibility * 1000;
        }
      } else if (id !== undefined && this.#deleted.has(id)) {
        // Handed out again after this consumer deleted it (moto: a receive racing the delete, its
        // handle then unknown; AWS standard queues rarely): handled already, so delete the copy.
        this.#delete(message.ReceiptHandle!).catch(() => {});
      } else {
        const held = this.#hold(message, requestedAt);
        if (held.receives > 1 && others.length > 0) {
          let timer: NodeJS.Timeout | undefined;
          const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, COPY_WAIT_MS)));
          void Promise.race([Promise.all(others), waited]).then(() => {
            clearTimeout(timer);
            this.#handOut(held, message);
          });
        } else this.#handOut(held, message);
      }
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

  /** Holds a received message (prefetch counts it, the heartbeat keeps it invisible). */
  #hold(message: Message, requestedAt: number): Held {
    const held: Held = {
      id: message.MessageId,
      handle: message.ReceiptHandle!,
      extendedAt: requestedAt,
      expiresAt: requestedAt + this.#visibility * 1000,
      extending: false,
      settled: false,
      nacked: false,
      receives: receiveCount(message),
      copies: 1,
    };
    this.#held.add(held);
    if (held.id !== undefined) this.#heldById.set(held.id, held);
    this.#open++;
    return held;
  }

  /** Hands a held message to the core as a delivery; after stop() began, back to SQS instead. */
  #handOut(held: Held, message: Message): void {
    if (this.#stopped) {
      void this.#handBack([held]);
      return;
    }
    const wire = this.#decode(message);
    const attempt = Math.max(1, held.receives - (held.copies - 1));
    const settle = (what: string) => {
      if (held.settled) {
        throw new SwitchyardError("ALREADY_SETTLED", `message ${wire.id} already settled; ${what} refused`);
      }
      held.settled = true;
      this.#open--;
      this.#wakeAll();
    };
    const remove = () =>
      this.#settle(held, () => this.#delete(held.handle)).then(() => this.#remember(held.id));
    const delivery: Delivery = {
      message: wire,
      attempt,
      ack: async () => {
        settle("ack");
        await remove();
      },
      nack: async (options) => {
        settle("nack");
        held.nacked = true;
        const seconds = Math.min(MAX_VISIBILITY_SECONDS, Math.ceil((options?.delayMs ?? 0) / 1000));
        await this.#settle(held, () => this.#queues.changeVisibility(this.#url, held.handle, seconds));
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
        await remove();
      };
    }
    this.#options.deliver(delivery);
  }

  /**
   * Makes a settlement (`call`: the delete, or the visibility change of a nack) reach SQS. One that
   * failed for a transport reason (the connection, a timeout, a 5xx) is tried again with backoff
   * while the receipt handle can still be valid, for at most one visibility timeout, the heartbeat
   * keeping the message invisible meanwhile: a cut shorter than that costs no redelivery. A refusal
   * (an invalid receipt handle) is not retried, but one that says an earlier try got through counts
   * as done. The promise waits until then: the core's handler slot waits with it (backpressure).
   * After close() began, one last try, then the error.
   */
  #settle(held: Held, call: () => Promise<void>): Promise<void> {
    const giveUpAt = Date.now() + this.#visibility * 1000;
    const settling = (async () => {
      try {
        for (let failures = 1; ; failures++) {
          try {
            return await call();
          } catch (error) {
            if (settledBefore(error, failures > 1)) return;
            const delay = Math.min(2000, 100 * 2 ** failures);
            const lapse = Math.min(held.expiresAt, giveUpAt);
            if (this.#closed || isRefusal(error) || Date.now() + delay >= lapse) throw error;
            this.#options.onError?.(error);
            await this.#pause(delay);
          }
        }
      } finally {
        this.#release(held);
      }
    })();
    this.#settling.add(settling);
    const done = () => this.#settling.delete(settling);
    settling.then(done, done);
    return settling;
  }

  #remember(deletedId: string | undefined): void {
    if (deletedId === undefined) return;
    this.#deleted.add(deletedId);
    if (this.#deleted.size > Math.max(1000, 10 * this.#options.prefetch)) {
      this.#deleted.delete(this.#deleted.values().next().value!);
    }
  }

  #release(held: Held): void {
    this.#held.delete(held);
    if (held.id !== undefined && this.#heldById.get(held.id) === held) this.#heldById.delete(held.id);
  }

  #wakeAll(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  /** Waits `ms`, or less when woken through `pauses` (stop() wakes receive backoffs, close() all). */
  #pause(ms: number, pauses = this.#pauses): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        pauses.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      pauses.add(wake);
    });
  }

  /**
   * Makes held messages visible again at once (rather than hiding them until their timeout); a late
   * settlement of one is refused.
   */
  async #handBack(held: Held[]): Promise<void> {
    const open = held.filter((h) => !h.settled);
    for (const h of open) {
      h.settled = true;
      this.#release(h);
      this.#open--;
    }
    if (open.length === 0) return;
    await this.#queues
      .changeVisibilityBatch(
        this.#url,
        open.map((h) => h.handle),
        0,
      )
      .catch(() => {});
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

  /** Visibility heartbeat: messages held for a third of the timeout get a fresh timeout. */
  async #extend(extendAfterMs: number): Promise<void> {
    const now = Date.now();
    const due = [...this.#held].filter((h) => !h.extending && now - h.extendedAt >= extendAfterMs);
    if (due.length === 0) return;
    for (const h of due) h.extending = true;
    const results = await this.#queues.changeVisibilityBatch(
      this.#url,
      due.map((h) => h.handle),
      this.#visibility,
    );
    // A failed one stays due: the next tick tries again, while the old timeout still runs.
    due.forEach((h, i) => {
      h.extending = false;
      if (results[i]) return;
      h.extendedAt = now;
      h.expiresAt = now + this.#visibility * 1000;
    });
    const failed = results.filter((r, i) => r && this.#held.has(due[i]!));
    if (failed.length > 0) this.#options.onError?.(failed[0]);
  }

  /**
   * Stops receiving: resolves once no receive is in flight any more (each ends within its long
   * poll), so nothing is received after it. Held messages stay settleable and under the heartbeat;
   * one received meanwhile goes straight back to SQS.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopped = true;
      this.#wakeAll();
      for (const wake of [...this.#receivePauses]) wake();
      await Promise.allSettled(this.#loops);
    })();
    return this.#stopping;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      // Each settlement being retried gets its last try now.
      for (const wake of [...this.#pauses]) wake();
      await this.stop();
      clearInterval(this.#heartbeat);
      await Promise.allSettled([...this.#settling]);
      await this.#flush();
      // Still open (a handler the core gave up on at stop): hand it back now rather than hide it
      // until its visibility timeout runs out.
      await this.#handBack([...this.#held]);
    })();
    return this.#closing;
  }
}
