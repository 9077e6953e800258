import type { Channel } from "amqplib";

/** A delivery's state in the batcher: waiting for the core, acked but not yet sent, or done on the broker. */
const PENDING = 0;
const ACKED = 1;
const DONE = 2;

/**
 * Coalesces a channel's acks into `multiple` acks: one `basic.ack` frame per event-loop turn covers
 * the longest run of settled deliveries at the front (delivery tags rise by one per delivery on a
 * channel). An ack behind a delivery still in a handler is sent on its own at the same flush, so a
 * slow message never holds the others' acks back (or their prefetch slots).
 *
 * One batcher per channel: tags are per channel, and a closed channel's deliveries are redelivered
 * by the broker, so its batcher is simply dropped.
 */
export class AckBatcher {
  // Deliveries in tag order, from `#head`: a growing array compacted once its front is consumed.
  #tags: number[] = [];
  #states: number[] = [];
  #head = 0;
  #scheduled = false;
  readonly #flush = () => this.flush();

  constructor(readonly channel: Channel) {}

  /** Called for every delivery, in the order the channel received them. */
  track(tag: number): void {
    this.#tags.push(tag);
    this.#states.push(PENDING);
  }

  ack(tag: number): void {
    this.#set(tag, ACKED);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  /** The delivery was settled on the broker some other way (a nack, a reject). */
  settledElsewhere(tag: number): void {
    this.#set(tag, DONE);
  }

  flush(): void {
    this.#scheduled = false;
    const tags = this.#tags;
    const states = this.#states;
    // The settled prefix: everything up to the last acked tag in it goes in one multiple ack.
    let upTo = -1;
    let i = this.#head;
    for (; i < tags.length && states[i] !== PENDING; i++) if (states[i] === ACKED) upTo = i;
    if (upTo >= 0) this.#send(tags[upTo] as number, true);
    // Acks behind a pending delivery: one frame each, now.
    for (let j = i; j < tags.length; j++) {
      if (states[j] === ACKED) {
        this.#send(tags[j] as number, false);
        states[j] = DONE;
      }
    }
    this.#head = i;
    if (i === tags.length) {
      tags.length = 0;
      states.length = 0;
      this.#head = 0;
    } else if (i > 1024 && i * 2 > tags.length) {
      this.#tags = tags.slice(i);
      this.#states = states.slice(i);
      this.#head = 0;
    }
  }

  #set(tag: number, state: number): void {
    // Tags rise by one per delivery on a channel, so the index is usually direct; search otherwise.
    const tags = this.#tags;
    const guess = this.#head + (tag - (tags[this.#head] ?? tag));
    if (tags[guess] === tag) {
      this.#states[guess] = state;
      return;
    }
    for (let i = this.#head; i < tags.length; i++) {
      if (tags[i] === tag) {
        this.#states[i] = state;
        return;
      }
    }
  }

  #send(tag: number, multiple: boolean): void {
    try {
      // amqplib's ack only reads `fields.deliveryTag`.
      this.channel.ack({ fields: { deliveryTag: tag } } as Parameters<Channel["ack"]>[0], multiple);
    } catch {
      // The channel closed after the core settled: the broker redelivers its unacked messages.
    }
  }
}
