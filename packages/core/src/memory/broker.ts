import type { WireMessage } from "../envelope.js";
import { SwitchyardError } from "../errors.js";
import { type Delivery, deadLetterQueueName, type FaultHeaders, type Source } from "../transport.js";

interface Entry {
  seq: number;
  message: WireMessage;
  attempt: number;
}

interface Receiver {
  prefetch: number;
  unsettled: number;
  deliver: (delivery: Delivery) => void;
  closed: boolean;
  /** Unsettled deliveries, by entry; returned to the queue when the receiver goes (as AMQP does). */
  held: Map<number, MemoryDelivery>;
}

/**
 * One queue of the in-memory broker: a plain queue, or one subscription of a topic. Competing
 * receivers share it round-robin; a key is locked while one of its messages is out (delivered or
 * waiting for a delayed redelivery), so per-key order holds under any concurrency.
 */
class MemoryQueue {
  // Sorted by seq. Taken entries before #head are holes; the array is compacted as the head moves,
  // so taking from the front costs O(1) instead of a splice.
  #ready: Array<Entry | undefined> = [];
  #head = 0;
  readonly #receivers: Receiver[] = [];
  readonly #keyOwner = new Map<string, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #next = 0;
  #scheduled = false;
  /** Delivered and not settled yet. */
  #out = 0;

  constructor(
    readonly broker: MemoryBroker,
    readonly source: Source,
  ) {}

  get depth(): number {
    return this.#ready.length - this.#head;
  }

  /** Not settled yet: ready, delivered, or waiting for a delayed redelivery. */
  get backlog(): number {
    return this.depth + this.#out + this.#timers.size;
  }

  push(message: WireMessage, attempt = 1): void {
    this.#ready.push({ seq: this.broker.nextSeq(), message, attempt });
    this.#schedule();
  }

  addReceiver(receiver: Receiver): void {
    this.#receivers.push(receiver);
    this.#schedule();
  }

  /** Stops deliveries to the receiver; the ones it holds stay settleable. */
  removeReceiver(receiver: Receiver): void {
    receiver.closed = true;
    const index = this.#receivers.indexOf(receiver);
    if (index !== -1) this.#receivers.splice(index, 1);
  }

  /** Removes the receiver and gives back what it still holds (as AMQP does when a consumer goes). */
  releaseReceiver(receiver: Receiver): void {
    this.removeReceiver(receiver);
    // A late settlement of a returned delivery is refused with ALREADY_SETTLED.
    for (const delivery of [...receiver.held.values()]) delivery.giveBack();
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#pump();
    });
  }

  #pickReceiver(): Receiver | undefined {
    for (let i = 0; i < this.#receivers.length; i++) {
      const receiver = this.#receivers[(this.#next + i) % this.#receivers.length]!;
      if (receiver.unsettled < receiver.prefetch) {
        this.#next = (this.#next + i + 1) % this.#receivers.length;
        return receiver;
      }
    }
    return undefined;
  }

  #pump(): void {
    let taken = 0;
    let i = this.#head;
    while (i < this.#ready.length) {
      const entry = this.#ready[i]!;
      const key = entry.message.key;
      const owner = key === undefined ? undefined : this.#keyOwner.get(key);
      if (owner !== undefined && owner !== entry.seq) {
        i++;
        continue;
      }
      const receiver = this.#pickReceiver();
      if (!receiver) break;
      if (i === this.#head) {
        this.#ready[i] = undefined;
        this.#head++;
        i++;
      } else {
        this.#ready.splice(i, 1); // behind a locked key: rare, and the array stays sorted
      }
      taken++;
      if (key !== undefined) this.#keyOwner.set(key, entry.seq);
      this.#deliver(receiver, entry);
      // Deliveries are handed out in batches so one receiver's slow handler cannot starve the loop.
      if (taken >= 1000) {
        this.#schedule();
        break;
      }
    }
    this.#compact();
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#ready.length) {
      this.#ready = this.#ready.slice(this.#head);
      this.#head = 0;
    }
  }

  #deliver(receiver: Receiver, entry: Entry): void {
    receiver.unsettled++;
    this.#out++;
    const delivery = new MemoryDelivery(this, receiver, entry);
    receiver.held.set(entry.seq, delivery);
    receiver.deliver(delivery);
  }

  /** A delivery was settled (or given back): its receiver's slot is free. */
  settled(receiver: Receiver, entry: Entry): void {
    receiver.unsettled--;
    this.#out--;
    receiver.held.delete(entry.seq);
  }

  /** Unlocks the entry's key (it was acked or dead-lettered: nothing of it comes back). */
  releaseKey(entry: Entry): void {
    const key = entry.message.key;
    if (key !== undefined && this.#keyOwner.get(key) === entry.seq) this.#keyOwner.delete(key);
  }

  /** Redelivers `entry` (a nack), at once or after `delayMs`. */
  redeliver(entry: Entry, delayMs: number): void {
    const again: Entry = { ...entry, attempt: entry.attempt + 1 };
    if (delayMs <= 0) this.#requeue(again);
    else {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#requeue(again);
      }, delayMs);
      this.#timers.add(timer);
    }
  }

  deadLetter(entry: Entry, fault: FaultHeaders): void {
    this.broker
      .queue({
        kind: "queue",
        name: deadLetterQueueName(this.source),
        subscription: deadLetterQueueName(this.source),
      })
      .push({ ...entry.message, headers: { ...entry.message.headers, ...fault } });
  }

  /** Frees the loop for the next deliveries (a slot, or a key, came free). */
  schedule(): void {
    this.#schedule();
  }

  /** Puts a returned message back in its original position, ahead of younger ones. */
  #requeue(entry: Entry): void {
    let index = this.#ready.length;
    while (index > this.#head && this.#ready[index - 1]!.seq > entry.seq) index--;
    if (index === this.#head && this.#head > 0) {
      this.#ready[--this.#head] = entry; // reuse the hole in front
    } else {
      this.#ready.splice(index, 0, entry);
    }
    this.#schedule();
  }
}

const SETTLED: Promise<void> = Promise.resolve();

/**
 * One delivery of an entry to a receiver. A class, not an object of closures: the memory adapter
 * makes one per message, and its methods live on the prototype. Settling is synchronous; the
 * promise is for the Delivery contract.
 */
class MemoryDelivery implements Delivery {
  #settled = false;

  constructor(
    readonly queue: MemoryQueue,
    readonly receiver: Receiver,
    readonly entry: Entry,
  ) {}

  get message(): WireMessage {
    return this.entry.message;
  }

  get attempt(): number {
    return this.entry.attempt;
  }

  ack(): Promise<void> {
    if (!this.#settle()) return this.#refused("ack");
    this.queue.releaseKey(this.entry);
    this.queue.schedule();
    return SETTLED;
  }

  nack(options?: { delayMs?: number }): Promise<void> {
    if (!this.#settle()) return this.#refused("nack");
    this.queue.redeliver(this.entry, options?.delayMs ?? 0);
    this.queue.schedule();
    return SETTLED;
  }

  deadLetter(fault: FaultHeaders): Promise<void> {
    if (!this.#settle()) return this.#refused("deadLetter");
    this.queue.releaseKey(this.entry);
    this.queue.deadLetter(this.entry, fault);
    this.queue.schedule();
    return SETTLED;
  }

  /** The receiver went: back to the queue for the next one (a late settlement is refused). */
  giveBack(): void {
    if (this.#settle()) this.queue.redeliver(this.entry, 0);
  }

  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.queue.settled(this.receiver, this.entry);
    return true;
  }

  #refused(what: string): Promise<void> {
    return Promise.reject(
      new SwitchyardError(
        "ALREADY_SETTLED",
        `message ${this.entry.message.id} already settled; ${what} refused`,
      ),
    );
  }
}

/**
 * The in-process broker behind `memory://`. Brokers are shared by name within a process
 * (`memory://` and `memory://default` are the same one), so two buses in one process talk.
 */
export class MemoryBroker {
  static readonly #named = new Map<string, MemoryBroker>();
  readonly #queues = new Map<string, MemoryQueue>();
  readonly #topics = new Map<string, Set<string>>();
  #seq = 0;

  static named(name: string): MemoryBroker {
    let broker = MemoryBroker.#named.get(name);
    if (!broker) {
      broker = new MemoryBroker();
      MemoryBroker.#named.set(name, broker);
    }
    return broker;
  }

  nextSeq(): number {
    return ++this.#seq;
  }

  queue(source: Source): MemoryQueue {
    const id = queueId(source);
    let queue = this.#queues.get(id);
    if (!queue) {
      queue = new MemoryQueue(this, source);
      this.#queues.set(id, queue);
      if (source.kind === "topic") this.topic(source.name).add(source.subscription);
    }
    return queue;
  }

  topic(name: string): Set<string> {
    let subscriptions = this.#topics.get(name);
    if (!subscriptions) {
      subscriptions = new Set();
      this.#topics.set(name, subscriptions);
    }
    return subscriptions;
  }

  publishToQueue(name: string, message: WireMessage): void {
    this.queue({ kind: "queue", name, subscription: name }).push(message);
  }

  publishToTopic(name: string, message: WireMessage): void {
    for (const subscription of this.topic(name)) {
      this.queue({ kind: "topic", name, subscription }).push(message);
    }
  }

  /** Deletes a queue with what it holds; its receivers get nothing more. */
  removeQueue(name: string): void {
    const id = `q:${name}`;
    this.#queues.get(id)?.close();
    this.#queues.delete(id);
  }

  depth(source: Source): number {
    return this.queue(source).depth;
  }

  /** Messages of `source` not settled yet; `undefined` when it was never created. */
  backlog(source: Source): number | undefined {
    return this.#queues.get(queueId(source))?.backlog;
  }

  /**
   * Adds a receiver. `stop()` ends its deliveries while the ones it holds stay settleable;
   * `close()` also returns what it still holds to the queue, for the next receiver.
   */
  subscribe(
    source: Source,
    prefetch: number,
    deliver: (delivery: Delivery) => void,
  ): { stop(): void; close(): void } {
    const queue = this.queue(source);
    const receiver: Receiver = { prefetch, unsettled: 0, deliver, closed: false, held: new Map() };
    queue.addReceiver(receiver);
    return { stop: () => queue.removeReceiver(receiver), close: () => queue.releaseReceiver(receiver) };
  }

  reset(): void {
    for (const queue of this.#queues.values()) queue.close();
    this.#queues.clear();
    this.#topics.clear();
  }
}

function queueId(source: Source): string {
  return source.kind === "queue" ? `q:${source.name}` : `s:${source.name}:${source.subscription}`;
}
