import { redactUrl, SwitchyardError } from "@switchyard/core";
import type { Options } from "amqplib";

/** What `createTransport(url, options)` accepts besides the URL; options win over query parameters. */
export interface RabbitOptions {
  /** Queue type of every queue the adapter declares (delay queues excepted). Default `quorum`. */
  queueType?: "quorum" | "classic";
  /**
   * Declare queues with `x-single-active-consumer`: one consumer of a queue receives at a time (the
   * others stand by), so per-key order holds across instances. Default false.
   */
  singleActiveConsumer?: boolean;
  /** Largest message (body plus headers) accepted. Default 16 MiB (RabbitMQ's own limit is 128 MiB). */
  maxMessageBytes?: number;
  /** How long a publish waits for a lost connection to come back before it fails. Default 30 s. */
  publishTimeoutMs?: number;
  /** Most messages held while the connection is down; more fail at once. Default 10,000. */
  maxPendingMessages?: number;
  /** Reconnect backoff: first delay and upper bound, in ms. Defaults 100 ms and 10 s. */
  reconnectInitialDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /** Shown in RabbitMQ's management UI as the connection's name. Default `switchyard`. */
  connectionName?: string;
  /** Passed to amqplib's socket (e.g. `ca`, `cert`, `key`, `servername` for amqps). */
  socketOptions?: Record<string, unknown>;
}

export interface ResolvedOptions {
  connect: Options.Connect;
  socketOptions: Record<string, unknown>;
  queueType: "quorum" | "classic";
  singleActiveConsumer: boolean;
  maxMessageBytes: number;
  publishTimeoutMs: number;
  maxPendingMessages: number;
  reconnectInitialDelayMs: number;
  reconnectMaxDelayMs: number;
  /** The URL without credentials, for messages. */
  display: string;
}

const OWN_PARAMS = new Set([
  "connectionName",
  "queueType",
  "singleActiveConsumer",
  "maxMessageBytes",
  "publishTimeoutMs",
  "maxPendingMessages",
  "reconnectInitialDelayMs",
  "reconnectMaxDelayMs",
]);
const AMQP_PARAMS = new Set(["heartbeat", "frameMax", "channelMax", "locale"]);

/** `amqp://user:pass@host:5672/vhost?heartbeat=30&queueType=classic` (or `amqps://`) plus options. */
export function resolveOptions(url: URL, options: RabbitOptions = {}): ResolvedOptions {
  const display = redactUrl(url.toString());
  const invalid = (message: string) => new SwitchyardError("CONFIG_INVALID", `${message} (in ${display})`);
  const protocol = url.protocol.replace(/:$/, "");
  if (protocol !== "amqp" && protocol !== "amqps") {
    throw invalid(`scheme "${protocol}" is not amqp or amqps`);
  }
  if (!url.hostname) throw invalid("the URL has no host");
  const params: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    if (!OWN_PARAMS.has(name) && !AMQP_PARAMS.has(name)) {
      throw invalid(
        `unknown query parameter "${name}"; accepted: ${[...OWN_PARAMS, ...AMQP_PARAMS].join(", ")}`,
      );
    }
    params[name] = value;
  }
  const number = (name: string, fallback: number, min: number): number => {
    const raw = (options as Record<string, unknown>)[name] ?? params[name];
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min) throw invalid(`${name} must be a number ≥ ${min}`);
    return value;
  };
  const queueType = options.queueType ?? params.queueType ?? "quorum";
  if (queueType !== "quorum" && queueType !== "classic") {
    throw invalid(`queueType must be "quorum" or "classic", got "${queueType}"`);
  }
  const sacRaw = options.singleActiveConsumer ?? params.singleActiveConsumer ?? false;
  if (![true, false, "true", "false", "1", "0"].includes(sacRaw as never)) {
    throw invalid("singleActiveConsumer must be true or false");
  }
  const path = decodeURIComponent(url.pathname.replace(/^\//, ""));
  const connect: Options.Connect = {
    protocol,
    hostname: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : protocol === "amqps" ? 5671 : 5672,
    username: url.username ? decodeURIComponent(url.username) : "guest",
    password: url.password ? decodeURIComponent(url.password) : "guest",
    vhost: path === "" ? "/" : path,
  };
  for (const name of ["heartbeat", "frameMax", "channelMax"] as const) {
    if (params[name] !== undefined) connect[name] = number(name, 0, 0);
  }
  if (params.locale) connect.locale = params.locale;
  return {
    connect,
    socketOptions: {
      ...(options.socketOptions ?? {}),
      clientProperties: {
        ...((options.socketOptions?.clientProperties as object | undefined) ?? {}),
        connection_name: options.connectionName ?? params.connectionName ?? "switchyard",
      },
    },
    queueType,
    singleActiveConsumer: sacRaw === true || sacRaw === "true" || sacRaw === "1",
    maxMessageBytes: number("maxMessageBytes", 16 * 1024 * 1024, 1024),
    publishTimeoutMs: number("publishTimeoutMs", 30_000, 0),
    maxPendingMessages: number("maxPendingMessages", 10_000, 1),
    reconnectInitialDelayMs: number("reconnectInitialDelayMs", 100, 1),
    reconnectMaxDelayMs: number("reconnectMaxDelayMs", 10_000, 1),
    display,
  };
}
