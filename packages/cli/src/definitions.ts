import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  deadLetterQueueName,
  type MessageType,
  SwitchyardError,
  type TopologyEntity,
} from "@switchyard/core";

/**
 * What an app declares about its messaging, for `switchyard topology` and `switchyard asyncapi`
 * (and `toAsyncApi()`). A module passed with `--module ./messages.js` exports it as its default
 * export or as `export const switchyard = { … }`:
 *
 *   export const switchyard: SwitchyardDefinitions = {
 *     title: "Blog", version: "1.0.0",
 *     topics: [{ name: "blog-events", messages: [BlogCreated], subscriptions: ["approval-service"] }],
 *     queues: [{ name: "emails", messages: [SendEmail] }],
 *   };
 *
 * Plain data, no import from the CLI needed (`SwitchyardDefinitions` is only a type).
 */
export interface SwitchyardDefinitions {
  /** The application's name (AsyncAPI `info.title`). Default: "Switchyard application". */
  title?: string;
  /** The application's version (AsyncAPI `info.version`). Default: "1.0.0". */
  version?: string;
  description?: string;
  /** Topics, each with the message types published on it and the subscriptions that read it. */
  topics?: TopicDefinition[];
  /** Queues, each with the message types sent to it. */
  queues?: QueueDefinition[];
  /** More message types, on no channel in particular (e.g. published to topics named at run time). */
  messages?: MessageType<any>[];
}

export interface TopicDefinition {
  name: string;
  messages: MessageType<any>[];
  /** Subscriptions (consumer groups) that read the topic; each has its own dead-letter queue. */
  subscriptions?: Array<string | SubscriptionDefinition>;
  description?: string;
}

export interface SubscriptionDefinition {
  name: string;
  /** Attempts before a message is dead-lettered, as the consumer's `retry.maxAttempts`. Default 5. */
  maxAttempts?: number;
}

export interface QueueDefinition {
  name: string;
  messages: MessageType<any>[];
  description?: string;
}

/** Imports `path` (relative to the working directory) and returns its definitions, checked. */
export async function loadDefinitions(path: string): Promise<SwitchyardDefinitions> {
  const url = pathToFileURL(isAbsolute(path) ? path : resolve(process.cwd(), path)).href;
  let module: Record<string, unknown>;
  try {
    module = (await import(url)) as Record<string, unknown>;
  } catch (cause) {
    throw new SwitchyardError("CONFIG_INVALID", `cannot import ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
  const definitions = module.switchyard ?? module.default;
  if (!definitions || typeof definitions !== "object") {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `${path} exports no definitions: export default (or export const switchyard =) { topics: [...], queues: [...] }`,
    );
  }
  return checkDefinitions(definitions as SwitchyardDefinitions, path);
}

/** Refuses definitions a newcomer could get subtly wrong (a misspelt key, a type that is not one). */
export function checkDefinitions(
  definitions: SwitchyardDefinitions,
  where = "definitions",
): SwitchyardDefinitions {
  const fail = (problem: string) => {
    throw new SwitchyardError("CONFIG_INVALID", `${where}: ${problem}`);
  };
  const known = new Set(["title", "version", "description", "topics", "queues", "messages"]);
  for (const key of Object.keys(definitions)) if (!known.has(key)) fail(`unknown key "${key}"`);
  const checkTypes = (owner: string, types: unknown) => {
    if (!Array.isArray(types)) fail(`${owner} needs \`messages: [...]\` (message types from defineMessage)`);
    for (const type of types as unknown[]) {
      if (!isMessageType(type)) fail(`${owner} lists something that is not a defineMessage() type`);
    }
  };
  for (const topic of definitions.topics ?? []) {
    if (!topic?.name) fail("a topic needs a name");
    checkTypes(`topic "${topic.name}"`, topic.messages);
    for (const subscription of topic.subscriptions ?? []) {
      if (!subscriptionName(subscription)) fail(`topic "${topic.name}" has a subscription without a name`);
    }
  }
  for (const queue of definitions.queues ?? []) {
    if (!queue?.name) fail("a queue needs a name");
    checkTypes(`queue "${queue.name}"`, queue.messages);
  }
  if (definitions.messages) checkTypes("messages", definitions.messages);
  return definitions;
}

function isMessageType(value: unknown): value is MessageType {
  const type = value as MessageType | undefined;
  return (
    typeof type?.type === "string" && Array.isArray(type.versionList) && typeof type.versions === "object"
  );
}

export function subscriptionName(subscription: string | SubscriptionDefinition): string {
  return typeof subscription === "string" ? subscription : subscription?.name;
}

/** Every message type declared anywhere, once each, by type name. */
export function allMessageTypes(definitions: SwitchyardDefinitions): MessageType[] {
  const types = new Map<string, MessageType>();
  const add = (list: MessageType[] = []) => {
    for (const type of list) types.set(type.type, type);
  };
  for (const topic of definitions.topics ?? []) add(topic.messages);
  for (const queue of definitions.queues ?? []) add(queue.messages);
  add(definitions.messages);
  return [...types.values()];
}

/**
 * The topology the app needs, as the consumers would provision it: each topic; each
 * subscription with its dead-letter queue; each queue with its dead-letter queue.
 */
export function requiredTopology(definitions: SwitchyardDefinitions): TopologyEntity[] {
  const entities: TopologyEntity[] = [];
  for (const topic of definitions.topics ?? []) {
    entities.push({ kind: "topic", name: topic.name });
    for (const subscription of topic.subscriptions ?? []) {
      const name = subscriptionName(subscription);
      const deadLetterQueue = deadLetterQueueName({ kind: "topic", name: topic.name, subscription: name });
      const maxAttempts = (typeof subscription === "object" && subscription.maxAttempts) || 5;
      entities.push({ kind: "subscription", topic: topic.name, name, deadLetterQueue, maxAttempts });
      entities.push({ kind: "queue", name: deadLetterQueue });
    }
  }
  for (const queue of definitions.queues ?? []) {
    entities.push({ kind: "queue", name: queue.name });
    entities.push({
      kind: "queue",
      name: deadLetterQueueName({ kind: "queue", name: queue.name, subscription: queue.name }),
    });
  }
  return entities;
}
