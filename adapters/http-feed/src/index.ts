import { SwitchyardError, type Transport } from "@switchyard/core";
import { sqlitePath } from "./sqlite.js";
import { type HttpFeedOptions, HttpFeedTransport } from "./transport.js";

export { BATCH_CONTENT_TYPE, type CloudEvent, fromCloudEvent, toCloudEvent } from "./cloudevents.js";
export { PostgresStore, type PostgresStoreOptions } from "./postgres.js";
export {
  createFeedHandler,
  type FeedHandler,
  type FeedHandlerOptions,
  type FeedServer,
  startFeedServer,
} from "./server.js";
export { SqliteStore, type SqliteStoreOptions, sqlitePath } from "./sqlite.js";
export type { AppendInput, FeedRead, FeedRecord, FeedStore, PendingRecord, SubKey } from "./store.js";
export { FeedPoller, type HttpFeedOptions, HttpFeedTransport, httpFeedCapabilities } from "./transport.js";

const TRUE = new Set(["1", "true", "yes", "on"]);

/**
 * Options from a URL: `http-feed://[:TOKEN@]HOST:PORT/BASE?store=postgres://…|sqlite:///path.db[&serve=true][&tls=true]
 * [&compact=topic-a,topic-b|*][&readerLeaseMs=10000]`. HOST:PORT/BASE is the producer's feed base (polled over http, or
 * https with `tls`); with `serve` this transport also serves its store's feeds there. Options passed
 * to `createBus` win over the URL.
 */
export function parseHttpFeedUrl(url: URL): HttpFeedOptions {
  const params = url.searchParams;
  const store = params.get("store") ?? undefined;
  const options: Partial<HttpFeedOptions> = {};
  if (store !== undefined) {
    if (store.startsWith("sqlite:"))
      sqlitePath(store); // throws on a missing path
    else if (!/^postgres(ql)?:\/\//.test(store)) {
      throw new SwitchyardError("CONFIG_INVALID", "http-feed: store must be a postgres:// or sqlite: URL");
    }
    options.store = store;
  }
  const basePath = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, "");
  if (url.hostname !== "") {
    const scheme = TRUE.has(params.get("tls") ?? "") ? "https" : "http";
    options.feedUrl = `${scheme}://${url.host}${basePath ? `/${basePath}` : ""}`;
  }
  if (url.password !== "") options.token = decodeURIComponent(url.password);
  if (TRUE.has(params.get("serve") ?? "")) {
    if (url.hostname === "") throw new SwitchyardError("CONFIG_INVALID", "http-feed: serve needs HOST:PORT");
    options.serve = {
      host: url.hostname.replace(/^\[|\]$/g, ""),
      port: url.port === "" ? 80 : Number(url.port),
      basePath,
    };
    // Port 0 serves on a free port: consumers read the server's real address, not ":0".
    if (options.serve.port === 0) delete options.feedUrl;
  }
  const tablePrefix = params.get("tablePrefix");
  if (tablePrefix !== null) options.tablePrefix = tablePrefix;
  const compact = params.get("compact");
  if (compact !== null) options.compact = compact === "*" ? true : compact.split(",").filter(Boolean);
  for (const name of ["pollTimeoutMs", "pageSize", "leaseMs", "idlePollMs", "readerLeaseMs"] as const) {
    const value = params.get(name);
    if (value !== null) {
      if (!/^\d+$/.test(value))
        throw new SwitchyardError("CONFIG_INVALID", `http-feed: ${name} must be an integer`);
      options[name] = Number(value);
    }
  }
  return options as HttpFeedOptions;
}

export function createTransport(url: URL, options: Record<string, unknown> = {}): Transport {
  const merged = { ...parseHttpFeedUrl(url), ...options } as HttpFeedOptions;
  if (merged.store === undefined) {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      "http-feed: a store is required, e.g. http-feed://host:8080/feeds?store=postgres://user@db/app",
    );
  }
  return new HttpFeedTransport(merged);
}

export const schemes = ["http-feed"] as const;
