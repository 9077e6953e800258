import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  ADAPTER_PACKAGES,
  type AdapterModule,
  type Bus,
  createBus,
  type Delivery,
  type Destination,
  parseBusUrl,
  type Source,
  type Transport,
} from "@switchyard/core";

/** What a command may want to watch on the transport (progress bars count these). */
export interface TransportWatch {
  delivered?(source: Source): void;
  acked?(source: Source): void;
  published?(destination: Destination, count: number): void;
}

/**
 * Opens a bus on `url`. The adapter package is looked up from the working directory first (the
 * app's own install), then from the CLI's (installed beside it), so `npx switchyard` works in a
 * project that depends on `@switchyard/kafka` without the CLI depending on every adapter.
 */
export async function openBus(
  url: string,
  options: { watch?: TransportWatch; source?: string } = {},
): Promise<Bus> {
  const scheme = parseBusUrl(url).protocol.replace(/:$/, ""); // UNKNOWN_SCHEME, CONFIG_INVALID
  const adapter = await findAdapter(scheme);
  const { watch } = options;
  const source = options.source ?? "switchyard-cli";
  if (!adapter) return createBus({ url, source }); // the core explains ADAPTER_NOT_INSTALLED
  if (!watch) return createBus({ url, source, adapter });
  return createBus({
    url,
    source,
    adapter: {
      createTransport: async (parsed, adapterOptions) =>
        watched(await adapter.createTransport(parsed, adapterOptions), watch),
    },
  });
}

async function findAdapter(scheme: string): Promise<AdapterModule | undefined> {
  if (scheme === "memory") return (await import("@switchyard/core/memory")) as AdapterModule;
  const path = adapterPath(scheme);
  return path ? ((await import(pathToFileURL(path).href)) as AdapterModule) : undefined;
}

/** Where the adapter package of `scheme` is installed (its entry file), if it is. */
export function adapterPath(scheme: string): string | undefined {
  const name = ADAPTER_PACKAGES[scheme];
  if (!name) return undefined;
  for (const from of [join(process.cwd(), "noop.js"), import.meta.url]) {
    try {
      return createRequire(from).resolve(name);
    } catch {
      // not installed there; try the next place
    }
  }
  return undefined;
}

/**
 * Loads a package the adapter itself depends on (its broker client), so the CLI talks to the broker
 * with the very client and version the adapter uses, without depending on it.
 */
export async function importFromAdapter<T>(scheme: string, dependency: string): Promise<T | undefined> {
  const path = adapterPath(scheme);
  if (!path) return undefined;
  try {
    return (await import(pathToFileURL(createRequire(path).resolve(dependency)).href)) as T;
  } catch {
    return undefined;
  }
}

/** The transport, with every publish, delivery and ack reported to `watch`. */
function watched(inner: Transport, watch: TransportWatch): Transport {
  const outer: Transport = {
    name: inner.name,
    capabilities: inner.capabilities,
    ...(inner.contentMode ? { contentMode: inner.contentMode } : {}),
    connect: async () => inner.connect?.(),
    close: () => inner.close(),
    publish: async (destination, messages) => {
      await inner.publish(destination, messages);
      watch.published?.(destination, messages.length);
    },
    subscribe: (source, subscribeOptions, deliver) =>
      inner.subscribe(source, subscribeOptions, (delivery) => {
        watch.delivered?.(source);
        deliver(watchedDelivery(delivery, source, watch));
      }),
  };
  if (inner.provision) outer.provision = (entities) => inner.provision!(entities);
  if (inner.deadLetterSource) outer.deadLetterSource = (source) => inner.deadLetterSource!(source);
  return outer;
}

function watchedDelivery(delivery: Delivery, source: Source, watch: TransportWatch): Delivery {
  // Methods are called on the original object: adapters' deliveries may use private fields.
  const outer: Delivery = {
    message: delivery.message,
    attempt: delivery.attempt,
    ack: async () => {
      await delivery.ack();
      watch.acked?.(source);
    },
    nack: (options) => delivery.nack(options),
  };
  if (delivery.deadLetter) outer.deadLetter = (fault) => delivery.deadLetter!(fault);
  if (delivery.originHeaders) outer.originHeaders = () => delivery.originHeaders!();
  return outer;
}
