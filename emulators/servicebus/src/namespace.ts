import { compileRule, DEFAULT_RULE, type Rule, type RuleConfig } from "./rules.js";
import {
  EmulatorError,
  type EntityOptions,
  MessageStore,
  type ResolvedEntityOptions,
  resolveEntityOptions,
} from "./store.js";

export interface QueueConfig extends EntityOptions {
  name: string;
}

export interface SubscriptionConfig extends EntityOptions {
  name: string;
  /** The subscription's rules (SQL or correlation filters); default the `$Default` rule, `1=1`. */
  rules?: RuleConfig[];
}

export interface TopicConfig {
  name: string;
  /** Largest encoded message accepted by the topic. Default 256 KiB. */
  maxMessageSizeBytes?: number;
  subscriptions?: SubscriptionConfig[];
}

/** The entities an emulator starts with (e.g. read from a JSON file). */
export interface NamespaceConfig {
  queues?: QueueConfig[];
  topics?: TopicConfig[];
}

/** Something a sender link can target: a queue or a topic. */
export interface SendTarget {
  readonly path: string;
  readonly maxMessageSizeBytes: number;
  /** Stores one message; `seq` is given when it was scheduled earlier. */
  accept(message: Record<string, any>): void;
  /** Throws if the message cannot be stored (e.g. no session id for a session queue). */
  validate(message: Record<string, any>): void;
  /** Scheduled messages: sequence number → timer. */
  readonly scheduled: Map<number, NodeJS.Timeout>;
  readonly sequence: { next: number };
}

export class Queue implements SendTarget {
  readonly store: MessageStore;
  readonly deadLetter: MessageStore;
  readonly scheduled = new Map<number, NodeJS.Timeout>();
  readonly sequence = { next: 0 };
  readonly maxMessageSizeBytes: number;

  constructor(
    readonly path: string,
    readonly options: ResolvedEntityOptions,
  ) {
    this.deadLetter = new MessageStore(
      `${path}/$DeadLetterQueue`,
      { ...options, requiresSession: false },
      { next: 0 },
      undefined,
    );
    this.store = new MessageStore(path, options, this.sequence, this.deadLetter);
    this.maxMessageSizeBytes = options.maxMessageSizeBytes;
  }

  accept(message: Record<string, any>, seq?: number): void {
    this.validate(message);
    this.store.enqueue(message, seq);
  }

  validate(message: Record<string, any>): void {
    if (this.options.requiresSession && (message.group_id === undefined || message.group_id === null)) {
      throw new EmulatorError(
        "amqp:invalid-field",
        `The SessionId was not set on a message, and it cannot be sent to the entity '${this.path}': it requires sessions.`,
        400,
      );
    }
  }

  close(): void {
    for (const timer of this.scheduled.values()) clearTimeout(timer);
    this.store.close();
    this.deadLetter.close();
  }
}

export class Subscription {
  readonly store: MessageStore;
  readonly deadLetter: MessageStore;
  /** Rules by name (lower case); a message is taken when any rule's filter matches it. */
  readonly rules = new Map<string, Rule>();

  constructor(
    readonly topic: Topic,
    readonly name: string,
    readonly options: ResolvedEntityOptions,
    rules: RuleConfig[] = [DEFAULT_RULE],
  ) {
    for (const rule of rules) this.addRule(rule);
    const path = `${topic.path}/Subscriptions/${name}`;
    this.deadLetter = new MessageStore(
      `${path}/$DeadLetterQueue`,
      { ...options, requiresSession: false },
      { next: 0 },
      undefined,
    );
    this.store = new MessageStore(path, options, { next: 0 }, this.deadLetter);
  }

  addRule(config: RuleConfig): void {
    const rule = compileRule(config);
    const key = rule.name.toLowerCase();
    if (this.rules.has(key))
      throw new EmulatorError(
        "com.microsoft:entity-already-exists",
        `rule '${rule.name}' exists on '${this.topic.path}/Subscriptions/${this.name}'`,
        409,
      );
    this.rules.set(key, rule);
  }

  removeRule(name: string): void {
    if (!this.rules.delete(String(name).toLowerCase()))
      throw new EmulatorError(
        "amqp:not-found",
        `rule '${name}' does not exist on '${this.topic.path}/Subscriptions/${this.name}'`,
        404,
      );
  }

  /** Any rule matches (no rule at all: nothing does, as on the service). */
  takes(message: Record<string, any>): boolean {
    for (const rule of this.rules.values()) if (rule.matches(message)) return true;
    return false;
  }

  close(): void {
    this.store.close();
    this.deadLetter.close();
  }
}

export class Topic implements SendTarget {
  readonly subscriptions = new Map<string, Subscription>();
  readonly scheduled = new Map<number, NodeJS.Timeout>();
  readonly sequence = { next: 0 };

  constructor(
    readonly path: string,
    readonly maxMessageSizeBytes: number,
  ) {}

  validate(_message: Record<string, any>): void {}

  /** Fan-out: every subscription whose rules take the message gets its own copy. */
  accept(message: Record<string, any>): void {
    for (const subscription of this.subscriptions.values())
      if (subscription.takes(message)) subscription.store.enqueue({ ...message });
  }

  close(): void {
    for (const timer of this.scheduled.values()) clearTimeout(timer);
    for (const subscription of this.subscriptions.values()) subscription.close();
  }
}

/** What an address names. */
export type Resolved =
  | { kind: "queue"; queue: Queue; store: MessageStore; target: SendTarget | undefined }
  | { kind: "topic"; topic: Topic; target: SendTarget }
  | { kind: "subscription"; subscription: Subscription; store: MessageStore };

/** All entities of one emulator; names are matched without regard to case, as in Service Bus. */
export class Namespace {
  readonly queues = new Map<string, Queue>();
  readonly topics = new Map<string, Topic>();

  constructor(config: NamespaceConfig = {}) {
    for (const queue of config.queues ?? []) this.createQueue(queue.name, queue);
    for (const topic of config.topics ?? []) {
      this.createTopic(topic.name, topic);
      for (const subscription of topic.subscriptions ?? [])
        this.createSubscription(topic.name, subscription.name, subscription);
    }
  }

  createQueue(name: string, options: EntityOptions = {}): { created: boolean; queue: Queue } {
    validateName(name);
    const key = name.toLowerCase();
    const existing = this.queues.get(key);
    if (existing) return { created: false, queue: existing };
    if (this.topics.has(key)) throw conflict(`a topic named '${name}' exists`);
    const queue = new Queue(name, resolveEntityOptions(options));
    this.queues.set(key, queue);
    return { created: true, queue };
  }

  createTopic(
    name: string,
    options: { maxMessageSizeBytes?: number } = {},
  ): { created: boolean; topic: Topic } {
    validateName(name);
    const key = name.toLowerCase();
    const existing = this.topics.get(key);
    if (existing) return { created: false, topic: existing };
    if (this.queues.has(key)) throw conflict(`a queue named '${name}' exists`);
    const size = resolveEntityOptions({
      ...(options.maxMessageSizeBytes ? { maxMessageSizeBytes: options.maxMessageSizeBytes } : {}),
    }).maxMessageSizeBytes;
    const topic = new Topic(name, size);
    this.topics.set(key, topic);
    return { created: true, topic };
  }

  createSubscription(
    topicName: string,
    name: string,
    options: EntityOptions & { rules?: RuleConfig[] } = {},
  ): { created: boolean; subscription: Subscription } {
    validateName(name);
    const topic = this.topics.get(topicName.toLowerCase());
    if (!topic) throw notFound(topicName);
    const key = name.toLowerCase();
    const existing = topic.subscriptions.get(key);
    if (existing) return { created: false, subscription: existing };
    const { rules, ...entityOptions } = options;
    const subscription = new Subscription(topic, name, resolveEntityOptions(entityOptions), rules);
    topic.subscriptions.set(key, subscription);
    return { created: true, subscription };
  }

  deleteQueue(name: string): boolean {
    const queue = this.queues.get(name.toLowerCase());
    if (!queue) return false;
    queue.close();
    return this.queues.delete(name.toLowerCase());
  }

  deleteTopic(name: string): boolean {
    const topic = this.topics.get(name.toLowerCase());
    if (!topic) return false;
    topic.close();
    return this.topics.delete(name.toLowerCase());
  }

  deleteSubscription(topicName: string, name: string): boolean {
    const topic = this.topics.get(topicName.toLowerCase());
    const subscription = topic?.subscriptions.get(name.toLowerCase());
    if (!topic || !subscription) return false;
    subscription.close();
    return topic.subscriptions.delete(name.toLowerCase());
  }

  /**
   * Resolves a link address: `queue`, `queue/$DeadLetterQueue`, `topic`,
   * `topic/Subscriptions/sub` and `topic/Subscriptions/sub/$DeadLetterQueue`. A full
   * `sb://host/…` address is accepted too. Throws `amqp:not-found` naming the entity.
   */
  resolve(address: string): Resolved {
    const path = entityPath(address);
    const parts = path.split("/");
    const lower = parts.map((p) => p.toLowerCase());
    if (parts.length === 1 || (parts.length === 2 && lower[1] === "$deadletterqueue")) {
      const queue = this.queues.get(lower[0]!);
      if (queue) {
        const dlq = parts.length === 2;
        return {
          kind: "queue",
          queue,
          store: dlq ? queue.deadLetter : queue.store,
          target: dlq ? undefined : queue,
        };
      }
      const topic = parts.length === 1 ? this.topics.get(lower[0]!) : undefined;
      if (topic) return { kind: "topic", topic, target: topic };
      throw notFound(path);
    }
    if (
      (parts.length === 3 || (parts.length === 4 && lower[3] === "$deadletterqueue")) &&
      lower[1] === "subscriptions"
    ) {
      const subscription = this.topics.get(lower[0]!)?.subscriptions.get(lower[2]!);
      if (!subscription) throw notFound(path);
      return {
        kind: "subscription",
        subscription,
        store: parts.length === 4 ? subscription.deadLetter : subscription.store,
      };
    }
    throw notFound(path);
  }

  close(): void {
    for (const queue of this.queues.values()) queue.close();
    for (const topic of this.topics.values()) topic.close();
  }
}

/** `sb://host:port/path` or `path` → `path`, without a leading slash. */
export function entityPath(address: string): string {
  let path = address;
  const match = /^[a-z]+:\/\/[^/]*\/(.*)$/i.exec(address);
  if (match) path = match[1]!;
  return path.replace(/^\/+/, "").replace(/\/+$/, "");
}

export function notFound(path: string): EmulatorError {
  return new EmulatorError(
    "amqp:not-found",
    `The messaging entity '${path}' could not be found (Switchyard Service Bus emulator).`,
    404,
  );
}

function conflict(what: string): EmulatorError {
  return new EmulatorError("com.microsoft:entity-already-exists", `cannot create: ${what}`, 409);
}

function validateName(name: string): void {
  if (
    typeof name !== "string" ||
    !/^[A-Za-z0-9][A-Za-z0-9._\-~]{0,259}$/.test(name) ||
    name.startsWith("$")
  ) {
    throw new EmulatorError("amqp:invalid-field", `'${name}' is not a valid entity name`, 400);
  }
}
