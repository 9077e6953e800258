import type { Bus, MessageType } from "@switchyard/core";
import {
  allMessageTypes,
  checkDefinitions,
  type SwitchyardDefinitions,
  subscriptionName,
} from "../definitions.js";
import { type BrokerBindings, bindingsFor } from "./bindings.js";
import { type BusInfo, definitionsOfBuses, isBus } from "./from-bus.js";
import { jsonSchemaOf } from "./json-schema.js";

export interface AsyncApiOptions {
  /** The broker URL: gives the document its server and the broker's bindings. Credentials are never written. */
  url?: string;
}

/** For a document read off buses: what a definitions module would say and a bus cannot. */
export interface BusAsyncApiOptions extends AsyncApiOptions, BusInfo {}

export interface AsyncApiResult {
  /** The AsyncAPI 3.0.0 document, as plain data (JSON.stringify or YAML it). */
  document: Record<string, any>;
  /** Message versions written without a payload schema, and why. */
  warnings: string[];
}

/**
 * An AsyncAPI 3.0 document from an app's definitions: each version of each message type is one
 * message (`blog.created.v1`) with its JSON Schema; each topic, subscription and queue is a
 * channel; publishing is a `send` operation, each subscription and queue consumer a `receive`.
 *
 * Or from the app's bus (or its buses, one per service): the document its definitions would
 * give, read off `bus.describe()` — the consumers it started and where it has published so far;
 * the server from the bus's URL unless `options.url` says otherwise. See `definitionsOfBuses`.
 */
export async function toAsyncApi(
  definitions: SwitchyardDefinitions,
  options?: AsyncApiOptions,
): Promise<Record<string, any>>;
export async function toAsyncApi(
  bus: Bus | readonly Bus[],
  options?: BusAsyncApiOptions,
): Promise<Record<string, any>>;
export async function toAsyncApi(
  source: SwitchyardDefinitions | Bus | readonly Bus[],
  options: BusAsyncApiOptions = {},
): Promise<Record<string, any>> {
  return (await buildAsyncApi(source as SwitchyardDefinitions, options)).document;
}

/** `toAsyncApi`, with the warnings: versions without a payload schema, what a bus could not know. */
export async function buildAsyncApi(
  definitions: SwitchyardDefinitions,
  options?: AsyncApiOptions,
): Promise<AsyncApiResult>;
export async function buildAsyncApi(
  bus: Bus | readonly Bus[],
  options?: BusAsyncApiOptions,
): Promise<AsyncApiResult>;
export async function buildAsyncApi(
  source: SwitchyardDefinitions | Bus | readonly Bus[],
  options: BusAsyncApiOptions = {},
): Promise<AsyncApiResult> {
  const buses = isBus(source) ? [source] : Array.isArray(source) ? (source as readonly Bus[]) : undefined;
  if (!buses) return documentOf(source as SwitchyardDefinitions, options.url, []);
  const { title, version, description } = options;
  const info = {
    ...(title !== undefined ? { title } : {}),
    ...(version !== undefined ? { version } : {}),
    ...(description !== undefined ? { description } : {}),
  };
  const read = definitionsOfBuses(buses, info);
  return documentOf(read.definitions, options.url ?? read.url, read.warnings);
}

async function documentOf(
  definitions: SwitchyardDefinitions,
  url: string | undefined,
  warnings: string[],
): Promise<AsyncApiResult> {
  checkDefinitions(definitions);
  const broker = bindingsFor(url);
  const messages: Record<string, unknown> = {};
  for (const type of allMessageTypes(definitions)) {
    for (const version of type.versionList) {
      messages[messageId(type, version)] = await messageOf(type, version, broker, warnings);
    }
  }
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const channelMessages = (types: MessageType[]) =>
    Object.fromEntries(
      types.flatMap((type) =>
        type.versionList.map((v) => [
          messageId(type, v),
          { $ref: `#/components/messages/${messageId(type, v)}` },
        ]),
      ),
    );
  const opMessages = (channel: string, types: MessageType[]) =>
    types.flatMap((type) =>
      type.versionList.map((v) => ({ $ref: `#/channels/${channel}/messages/${messageId(type, v)}` })),
    );

  for (const topic of definitions.topics ?? []) {
    const id = safeId(`topic.${topic.name}`);
    channels[id] = {
      address: topic.name,
      title: `topic ${topic.name}`,
      ...(topic.description ? { description: topic.description } : {}),
      messages: channelMessages(topic.messages),
      ...withBindings(broker.topicChannel?.(topic.name)),
    };
    operations[safeId(`send.${topic.name}`)] = {
      action: "send",
      title: `publish to ${topic.name}`,
      channel: { $ref: `#/channels/${id}` },
      messages: opMessages(id, topic.messages),
    };
    for (const subscription of topic.subscriptions ?? []) {
      const name = subscriptionName(subscription);
      const subId = safeId(`subscription.${topic.name}.${name}`);
      const address = broker.subscriptionAddress(topic.name, name);
      channels[subId] = {
        address,
        title: `subscription ${name} on ${topic.name}`,
        description: `Every message published to ${topic.name}, for ${name}; failures go to ${topic.name}.${name}.dlq.`,
        messages: channelMessages(topic.messages),
        ...withBindings(
          address === topic.name ? broker.topicChannel?.(topic.name) : broker.queueChannel?.(address),
        ),
      };
      operations[safeId(`receive.${topic.name}.${name}`)] = {
        action: "receive",
        title: `${name} reads ${topic.name}`,
        channel: { $ref: `#/channels/${subId}` },
        messages: opMessages(subId, topic.messages),
        ...withBindings(broker.subscriptionOperation?.(topic.name, name)),
      };
    }
  }
  for (const queue of definitions.queues ?? []) {
    const id = safeId(`queue.${queue.name}`);
    channels[id] = {
      address: queue.name,
      title: `queue ${queue.name}`,
      ...(queue.description ? { description: queue.description } : {}),
      messages: channelMessages(queue.messages),
      ...withBindings(broker.queueChannel?.(queue.name)),
    };
    operations[safeId(`send.${queue.name}`)] = {
      action: "send",
      title: `send to ${queue.name}`,
      channel: { $ref: `#/channels/${id}` },
      messages: opMessages(id, queue.messages),
    };
    operations[safeId(`receive.${queue.name}`)] = {
      action: "receive",
      title: `consume ${queue.name}`,
      channel: { $ref: `#/channels/${id}` },
      messages: opMessages(id, queue.messages),
    };
  }

  const document: Record<string, any> = {
    asyncapi: "3.0.0",
    info: {
      title: definitions.title ?? "Switchyard application",
      version: definitions.version ?? "1.0.0",
      ...(definitions.description ? { description: definitions.description } : {}),
    },
    ...(broker.server ? { servers: { broker: broker.server } } : {}),
    defaultContentType: "application/json",
    channels,
    operations,
    components: { messages },
  };
  return { document, warnings };
}

async function messageOf(type: MessageType, version: number, broker: BrokerBindings, warnings: string[]) {
  const converted = await jsonSchemaOf(type.versions[version]!);
  if ("reason" in converted)
    warnings.push(`${type.type} v${version}: no payload schema (${converted.reason})`);
  const upcast = (type.upcast as Record<number, unknown>)[version]
    ? " Consumers of a later version get it upcast."
    : "";
  return {
    name: type.type,
    title: `${type.type} v${version}`,
    summary: `CloudEvents type ${type.type}, schemaversion ${version}.${upcast}`,
    contentType: type.dataContentType,
    ...("schema" in converted ? { payload: converted.schema } : {}),
    ...withBindings(broker.message?.()),
    "x-switchyard-type": type.type,
    "x-switchyard-version": version,
  };
}

/** `blog.created.v1`: one AsyncAPI message per version. */
export function messageId(type: MessageType, version: number): string {
  return safeId(`${type.type}.v${version}`);
}

/** AsyncAPI component and channel keys allow letters, digits, `.`, `-` and `_` only. */
function safeId(id: string): string {
  return id.replace(/[^a-zA-Z0-9.\-_]/g, "_");
}

const withBindings = (bindings: Record<string, unknown> | undefined) => (bindings ? { bindings } : {});
