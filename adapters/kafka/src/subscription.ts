// One consumer-group member: hands records to the core at most `prefetch` at a time, commits per
// partition only the prefix of offsets that are settled, turns a nack into a copy on the group's
// retry topic (attempt and due time in headers), and holds retry copies until they are due.
import {
  type Delivery,
  SwitchyardError,
  type TransportSubscription,
  type WireMessage,
} from "@switchyard/core";
import type { GroupConsumer, IncomingRecord, KafkaDriver, TopicPartition } from "./driver.js";
import { ATTEMPT_HEADER, type Decoded, DUE_HEADER, fromRecord, originHeaders, toRecord } from "./mapping.js";

/**
 * The offsets of one assigned partition that were read and are not yet committed: parallel arrays
 * (offset, done) with a moving head, so tracking a record allocates nothing of its own. A delivery
 * knows its slot (the position since this state began) and marks it done.
 */
class PartitionState {
  readonly #offsets: bigint[] = [];
  readonly #done: boolean[] = [];
  /** Slot number of #offsets[0]. */
  #base = 0;
  /** Index of the first slot not done. */
  #head = 0;
  /** One past the highest offset read; records below it are repeats after a rejoin. */
  #next: bigint | undefined;
  committed: bigint | undefined;
  /** Still assigned to this member: records of a partition taken away are not delivered or committed. */
  assigned = false;

  constructor(
    readonly topic: string,
    readonly partition: number,
  ) {}

  /** The slot of a newly read offset, or -1 for a repeat. */
  track(offset: bigint): number {
    if (this.#next !== undefined && offset < this.#next) return -1;
    this.#next = offset + 1n;
    this.#offsets.push(offset);
    this.#done.push(false);
    return this.#base + this.#offsets.length - 1;
  }

  finish(slot: number): void {
    const index = slot - this.#base;
    if (index >= 0) this.#done[index] = true;
  }

  /** The offset to commit: the lowest unfinished one, or one past the last read when all are done. */
  committable(): bigint | undefined {
    while (this.#head < this.#done.length && this.#done[this.#head]) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#done.length) {
      this.#offsets.splice(0, this.#head);
      this.#done.splice(0, this.#head);
      this.#base += this.#head;
      this.#head = 0;
    }
    return this.#head < this.#offsets.length ? this.#offsets[this.#head] : this.#next;
  }
}

export interface SubscriptionSetup {
  driver: KafkaDriver;
  groupId: string;
  topic: string;
  retryTopic: string;
  prefetch: number;
  fromBeginning: boolean;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  maxWaitMs: number;
  maxBytesPerPartition: number;
  commitIntervalMs: number;
  /** Produces through the transport's batching producer. */
  send(record: ReturnType<typeof toRecord>): Promise<void>;
  deliver(delivery: Delivery): void;
  /** A transport error the subscription recovers from (the core's `onError`), and what it was doing. */
  recovered?(doing: string, error: unknown): void;
}

const key = (topic: string, partition: number) => `${partition}:${topic}`;
/** Retry copies waiting for their due time beyond which fetching pauses. */
const MAX_HELD = 10_000;

export class KafkaSubscription implements TransportSubscription {
  readonly #setup: SubscriptionSetup;
  readonly #states = new Map<string, PartitionState>();
  /** The same states by topic and partition number: the per-record lookup builds no string key. */
  readonly #byTopic = new Map<string, PartitionState[]>();
  readonly #ready: KafkaDelivery[] = [];
  #readyHead = 0;
  readonly #held = new Set<NodeJS.Timeout>();
  /** Retry copies being written: close() waits for them, so their offsets can be committed. */
  readonly #nacking = new Set<Promise<void>>();
  readonly #highWater: number;
  #consumer: GroupConsumer | undefined;
  #unsettled = 0;
  #pumpScheduled = false;
  #paused = false;
  /** No more deliveries (stop() or close()); what is out stays settleable until close() ends. */
  #stopped = false;
  #closed = false;
  #commitTimer: NodeJS.Timeout | undefined;
  #committing: Promise<void> | undefined;
  #restarting: NodeJS.Timeout | undefined;

  constructor(setup: SubscriptionSetup) {
    this.#setup = setup;
    this.#highWater = Math.max(500, setup.prefetch * 4);
  }

  async start(): Promise<void> {
    const { driver, groupId, topic, retryTopic } = this.#setup;
    this.#consumer = await driver.consume(
      {
        groupId,
        topics: [topic, retryTopic],
        fromBeginning: this.#setup.fromBeginning,
        sessionTimeoutMs: this.#setup.sessionTimeoutMs,
        heartbeatIntervalMs: this.#setup.heartbeatIntervalMs,
        rebalanceTimeoutMs: this.#setup.rebalanceTimeoutMs,
        maxWaitMs: this.#setup.maxWaitMs,
        maxBytesPerPartition: this.#setup.maxBytesPerPartition,
      },
      {
        record: (record) => this.#receive(record),
        assigned: (partitions) => this.#assigned(partitions),
        rebalancing: () => void this.#flush(),
        failed: (error) => {
          this.#recovered("the group member failed; joining again", error);
          this.#restart();
        },
        recovered: (error) => this.#recovered("consuming", error),
      },
    );
    if (this.#paused) this.#consumer.pause();
  }

  get #backlog(): number {
    return this.#ready.length - this.#readyHead;
  }

  #assigned(partitions: TopicPartition[]): void {
    const next = new Map<string, PartitionState>();
    for (const { topic, partition } of partitions) {
      const id = key(topic, partition);
      next.set(id, this.#states.get(id) ?? new PartitionState(topic, partition));
    }
    // Partitions given to another member are forgotten: their unsettled records are its to read.
    for (const state of this.#states.values()) state.assigned = false;
    this.#states.clear();
    this.#byTopic.clear();
    for (const [id, state] of next) {
      state.assigned = true;
      this.#states.set(id, state);
      const partitions = this.#byTopic.get(state.topic) ?? [];
      partitions[state.partition] = state;
      this.#byTopic.set(state.topic, partitions);
    }
  }

  /**
   * One fetched record: decoded into its delivery at once (one object per record besides the wire
   * message), queued, and handed out by a pump that runs once per turn for the whole fetch.
   */
  #receive(record: IncomingRecord): void {
    if (this.#stopped) return;
    const state = this.#byTopic.get(record.topic)?.[record.partition];
    if (!state) return; // a partition that is no longer ours
    const slot = state.track(record.offset);
    if (slot < 0) return;
    const delivery = new KafkaDelivery(this, state, slot, record.offset, fromRecord(record));
    if (delivery.dueAt !== undefined && delivery.dueAt > Date.now()) {
      this.#hold(delivery, delivery.dueAt - Date.now());
    } else {
      this.#ready.push(delivery);
      this.#schedulePump();
    }
  }

  #hold(delivery: KafkaDelivery, delayMs: number): void {
    const timer = setTimeout(() => {
      this.#held.delete(timer);
      if (this.#stopped || !delivery.state.assigned) return;
      this.#ready.push(delivery);
      this.#pump();
    }, delayMs);
    this.#held.add(timer);
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    queueMicrotask(this.#scheduledPump);
  }

  readonly #scheduledPump = () => {
    this.#pumpScheduled = false;
    this.#pump();
  };

  #pump(): void {
    const deliver = this.#setup.deliver;
    const prefetch = this.#setup.prefetch;
    while (!this.#stopped && this.#unsettled < prefetch && this.#readyHead < this.#ready.length) {
      const delivery = this.#ready[this.#readyHead]!;
      this.#ready[this.#readyHead++] = undefined!;
      if (this.#readyHead > 1024 && this.#readyHead * 2 > this.#ready.length) {
        this.#ready.splice(0, this.#readyHead);
        this.#readyHead = 0;
      }
      if (!delivery.state.assigned) continue;
      this.#unsettled++;
      deliver(delivery);
    }
    this.#flowControl();
  }

  #flowControl(): void {
    if (!this.#consumer || this.#stopped) return;
    const full = this.#backlog >= this.#highWater || this.#held.size >= MAX_HELD;
    if (full && !this.#paused) {
      this.#paused = true;
      this.#consumer.pause();
    } else if (
      !full &&
      this.#paused &&
      this.#backlog <= this.#highWater / 2 &&
      this.#held.size < MAX_HELD / 2
    ) {
      this.#paused = false;
      this.#consumer.resume();
    }
  }

  /** A delivery was settled: its slot is free; refill once per turn, not once per settlement. */
  released(): void {
    this.#unsettled--;
    this.#schedulePump();
  }

  /** nack(): the copy goes to the group's retry topic with its next attempt and due time. */
  async retry(delivery: KafkaDelivery, delayMs: number): Promise<void> {
    const { message, attempt } = delivery;
    const retry = toRecord(this.#setup.retryTopic, message, {
      ...originHeaders(delivery, message),
      [ATTEMPT_HEADER]: String(attempt + 1),
      [DUE_HEADER]: String(Date.now() + delayMs),
    });
    const sending = this.#setup.send(retry);
    this.#nacking.add(sending);
    try {
      await sending;
    } catch (error) {
      // The retry copy could not be written: redeliver from memory; its offset stays uncommitted.
      if (!this.#stopped && delivery.state.assigned) this.#hold(delivery.again(), Math.max(delayMs, 100));
      throw error;
    } finally {
      this.#nacking.delete(sending);
    }
    this.done(delivery);
  }

  done(delivery: KafkaDelivery): void {
    delivery.state.finish(delivery.slot);
    if (!delivery.state.assigned) return;
    if (this.#commitTimer === undefined && !this.#closed) {
      this.#commitTimer = setTimeout(() => {
        this.#commitTimer = undefined;
        void this.#flush();
      }, this.#setup.commitIntervalMs);
    }
  }

  /** Commits the settled prefix of every partition; one commit at a time, retried on failure. */
  #flush(): Promise<void> {
    if (this.#committing) return this.#committing.then(() => this.#flush());
    const consumer = this.#consumer;
    if (!consumer) return Promise.resolve();
    const offsets: Array<TopicPartition & { offset: bigint; state: PartitionState }> = [];
    for (const state of this.#states.values()) {
      const offset = state.committable();
      if (offset !== undefined && offset !== state.committed) {
        offsets.push({ topic: state.topic, partition: state.partition, offset, state });
      }
    }
    if (offsets.length === 0) return Promise.resolve();
    this.#committing = consumer
      .commit(offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset })))
      .then(
        () => {
          for (const { state, offset } of offsets) {
            if (state.committed === undefined || state.committed < offset) state.committed = offset;
          }
        },
        (error: unknown) => {
          // A rebalance or a lost coordinator: try again soon (after the rejoin, for what is still ours).
          if (this.#closed || this.#commitTimer !== undefined) return;
          this.#recovered("committing offsets; trying again", error);
          this.#commitTimer = setTimeout(() => {
            this.#commitTimer = undefined;
            void this.#flush();
          }, 500);
        },
      )
      .finally(() => {
        this.#committing = undefined;
      });
    return this.#committing;
  }

  /** The consumer died for good (not a rebalance): start a new member, from the committed offsets. */
  #restart(): void {
    if (this.#closed || this.#restarting) return;
    const old = this.#consumer;
    this.#consumer = undefined;
    for (const state of this.#states.values()) state.assigned = false;
    this.#states.clear();
    this.#byTopic.clear();
    this.#ready.length = 0;
    this.#readyHead = 0;
    const attempt = (delayMs: number) => {
      this.#restarting = setTimeout(async () => {
        await old?.close().catch(() => {});
        if (this.#closed) return;
        try {
          await this.start();
          this.#restarting = undefined;
        } catch (error) {
          this.#recovered("joining the group again; trying again", error);
          attempt(Math.min(delayMs * 2, 10_000));
        }
      }, delayMs);
    };
    attempt(500);
  }

  #recovered(doing: string, error: unknown): void {
    if (!this.#closed) this.#setup.recovered?.(doing, error);
  }

  /** Stops fetching and delivering; deliveries already out can still be settled. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#consumer?.pause();
    for (const timer of this.#held) clearTimeout(timer);
    this.#held.clear();
    this.#ready.length = 0;
    this.#readyHead = 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.stop();
    this.#closed = true;
    clearTimeout(this.#restarting);
    clearTimeout(this.#commitTimer);
    this.#commitTimer = undefined;
    try {
      await Promise.allSettled([...this.#nacking]);
      await this.#committing?.catch(() => {});
      await this.#flush().catch(() => {});
    } finally {
      await this.#consumer?.close();
    }
  }
}

const SETTLED = Promise.resolve();

/**
 * One delivery, and the record's place in its partition: built when the record is read (its wire
 * message decoded once), with settlement methods on the prototype (no closures per record). It keeps
 * the offset, not the client's message object, so that object dies young, as it does in a consumer
 * that handles each record where it is read (holding thousands of them across a fetch tripled the
 * GC time per message).
 */
class KafkaDelivery implements Delivery {
  readonly message: WireMessage;
  readonly attempt: number;
  /** Epoch ms before which a retry copy must not be delivered. */
  readonly dueAt: number | undefined;
  #settled: string | undefined;

  constructor(
    readonly subscription: KafkaSubscription,
    readonly state: PartitionState,
    readonly slot: number,
    readonly offset: bigint,
    read: Decoded,
  ) {
    this.message = read.message;
    this.attempt = read.attempt;
    this.dueAt = read.dueAt;
  }

  get topic(): string {
    return this.state.topic;
  }
  get partition(): number {
    return this.state.partition;
  }

  /** The same record delivered again from memory (its retry copy could not be written). */
  again(): KafkaDelivery {
    return new KafkaDelivery(this.subscription, this.state, this.slot, this.offset, {
      message: this.message,
      attempt: this.attempt + 1,
      dueAt: undefined,
    });
  }

  #settle(what: string): void {
    if (this.#settled) {
      throw new SwitchyardError(
        "ALREADY_SETTLED",
        `kafka: message ${this.message.id} was already settled (${this.#settled}); ${what} refused`,
      );
    }
    this.#settled = what;
    this.subscription.released();
  }

  ack(): Promise<void> {
    try {
      this.#settle("ack");
    } catch (error) {
      return Promise.reject(error);
    }
    this.subscription.done(this);
    return SETTLED;
  }

  async nack(options?: { delayMs?: number }): Promise<void> {
    this.#settle("nack");
    await this.subscription.retry(this, Math.max(0, options?.delayMs ?? 0));
  }

  originHeaders(): Record<string, string> {
    return originHeaders(this, this.message);
  }
}
