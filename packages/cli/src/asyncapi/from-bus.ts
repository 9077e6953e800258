import { type Bus, type MessageType, redactUrl, SwitchyardError } from "@switchyard/core";
import type { SwitchyardDefinitions } from "../definitions.js";

/** What a bus cannot say about its app, given instead (it has no name of its own). */
export interface BusInfo {
  /** AsyncAPI `info.title`. Default: "Switchyard application". */
  title?: string;
  /** AsyncAPI `info.version`. Default: "1.0.0". */
  version?: string;
  description?: string;
}

/**
 * The definitions module an app would write, read off its buses (`bus.describe()`): each topic
 * with the types its subscriptions take and the types published to it, each subscription, each
 * queue consumed or sent to, and the registered types seen on no channel. Several buses (one
 * per service, as in one process) make one application. The warnings say what is missing
 * because a bus could not know it.
 */
export function definitionsOfBuses(
  buses: readonly Bus[],
  info: BusInfo = {},
): { definitions: SwitchyardDefinitions; url: string | undefined; warnings: string[] } {
  if (buses.length === 0 || !buses.every(isBus)) {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      "toAsyncApi needs definitions, a bus, or a non-empty array of buses",
    );
  }
  const topics = new Map<string, { types: Map<string, MessageType>; subscriptions: string[] }>();
  const queues = new Map<string, Map<string, MessageType>>();
  const onChannels = new Set<string>();
  const registered = new Map<string, MessageType>();
  const warnings: string[] = [];
  const add = (types: Map<string, MessageType>, list: readonly MessageType[]) => {
    for (const type of list) {
      if (!types.has(type.type)) types.set(type.type, type);
      onChannels.add(type.type);
    }
  };
  const topic = (name: string) => {
    if (!topics.has(name)) topics.set(name, { types: new Map(), subscriptions: [] });
    return topics.get(name)!;
  };
  const queue = (name: string) => {
    if (!queues.has(name)) queues.set(name, new Map());
    return queues.get(name)!;
  };

  const descriptions = buses.map((bus) => bus.describe());
  for (const description of descriptions) {
    for (const type of description.messages) if (!registered.has(type.type)) registered.set(type.type, type);
    for (const { source, handlers, any } of description.consumers) {
      const types = handlers.map((handler) => handler.type);
      if (source.kind === "queue") add(queue(source.name), types);
      else {
        const found = topic(source.name);
        add(found.types, types);
        if (!found.subscriptions.includes(source.subscription)) found.subscriptions.push(source.subscription);
      }
      if (any) {
        const where =
          source.kind === "queue" ? `queue ${source.name}` : `${source.subscription} on ${source.name}`;
        warnings.push(`${where} takes any type (onAny): only the types of its typed handlers are listed`);
      }
    }
    for (const { destination, messages } of description.published) {
      add(destination.kind === "queue" ? queue(destination.name) : topic(destination.name).types, messages);
    }
  }
  const urls = [...new Set(descriptions.map((description) => redactUrl(description.url)))];
  if (urls.length > 1) warnings.push(`the buses use ${urls.join(", ")}: the server is the first's`);
  const unplaced = [...registered.values()].filter((type) => !onChannels.has(type.type));
  for (const type of unplaced) {
    warnings.push(
      `${type.type}: registered on the bus but not published or consumed yet, so on no channel (a bus learns where it publishes only when it does)`,
    );
  }

  const definitions: SwitchyardDefinitions = {
    ...info,
    topics: [...topics].map(([name, { types, subscriptions }]) => ({
      name,
      messages: [...types.values()],
      ...(subscriptions.length > 0 ? { subscriptions } : {}),
    })),
    queues: [...queues].map(([name, types]) => ({ name, messages: [...types.values()] })),
    ...(unplaced.length > 0 ? { messages: unplaced } : {}),
  };
  return { definitions, url: descriptions[0]?.url, warnings };
}

/** A bus, told apart from a definitions module (plain data) by its `describe()`. */
export function isBus(value: unknown): value is Bus {
  return typeof (value as Bus | undefined)?.describe === "function";
}
