import { redactUrl, SwitchyardError } from "@switchyard/core";
import { type Dialect, type DialectName, dialects } from "./dialect.js";

/** What `createTransport(url, options)` accepts besides the URL; options win over query parameters. */
export interface StompOptions {
  /** Broker dialect; needed with a plain `stomp://` or `stomp+ssl://` URL. */
  dialect?: DialectName;
  login?: string;
  passcode?: string;
  /** STOMP `host` header (RabbitMQ: the vhost). Default from the URL path, else `/`. */
  vhost?: string;
  /** Heart-beat interval both ways, in ms (0 = off). Default 10 s. */
  heartbeatMs?: number;
  connectTimeoutMs?: number;
  /** How long a publish waits for a lost connection to come back before it fails. Default 30 s. */
  publishTimeoutMs?: number;
  reconnectInitialDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /** Largest message (body plus headers). Default 4 MiB. */
  maxMessageBytes?: number;
  /** TLS options for `stomp+ssl` (`ca`, `cert`, `key`, `servername`, …). */
  tls?: Record<string, unknown>;
}

export interface ResolvedOptions {
  dialect: Dialect;
  host: string;
  port: number;
  ssl: boolean;
  tls: Record<string, unknown>;
  login: string | undefined;
  passcode: string | undefined;
  vhost: string;
  heartbeatMs: number;
  connectTimeoutMs: number;
  publishTimeoutMs: number;
  reconnectInitialDelayMs: number;
  reconnectMaxDelayMs: number;
  maxMessageBytes: number;
  /** The URL without credentials, for messages. */
  display: string;
}

const NUMBER_PARAMS = [
  "heartbeatMs",
  "connectTimeoutMs",
  "publishTimeoutMs",
  "reconnectInitialDelayMs",
  "reconnectMaxDelayMs",
  "maxMessageBytes",
] as const;

/**
 * `stomp+activemq://host:61614`, `stomp+rabbitmq://user:pass@host:61613/vhost`, or
 * `stomp://…` / `stomp+ssl://…` with `?dialect=` or the `dialect` option.
 */
export function resolveOptions(url: URL, options: StompOptions = {}): ResolvedOptions {
  const display = redactUrl(url.toString());
  const invalid = (message: string) => new SwitchyardError("CONFIG_INVALID", `${message} (in ${display})`);
  const scheme = url.protocol.replace(/:$/, "");
  const parts = scheme.split("+");
  if (parts[0] !== "stomp") throw invalid(`scheme "${scheme}" is not a stomp scheme`);
  let ssl = false;
  let fromScheme: string | undefined;
  for (const part of parts.slice(1)) {
    if (part === "ssl" || part === "tls") ssl = true;
    else if (fromScheme === undefined) fromScheme = part;
    else throw invalid(`scheme "${scheme}" names two dialects`);
  }
  const dialectName = options.dialect ?? url.searchParams.get("dialect") ?? fromScheme;
  if (dialectName === undefined) {
    throw invalid(`no STOMP dialect: use stomp+activemq:// or stomp+rabbitmq://, or the dialect option`);
  }
  if (!(dialectName in dialects)) {
    throw invalid(`unknown STOMP dialect "${dialectName}"; known: ${Object.keys(dialects).join(", ")}`);
  }
  const dialect = dialects[dialectName as DialectName];
  if (!url.hostname) throw invalid("the URL has no host");
  const port = url.port ? Number(url.port) : dialect.defaultPort;

  const numbers: Record<(typeof NUMBER_PARAMS)[number], number> = {
    heartbeatMs: 10_000,
    connectTimeoutMs: 5_000,
    publishTimeoutMs: 30_000,
    reconnectInitialDelayMs: 100,
    reconnectMaxDelayMs: 5_000,
    maxMessageBytes: dialect.capabilities.maxMessageBytes!,
  };
  for (const name of NUMBER_PARAMS) {
    const raw = options[name] ?? url.searchParams.get(name) ?? undefined;
    if (raw === undefined) continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) throw invalid(`${name} must be a non-negative number`);
    numbers[name] = value;
  }
  const path = decodeURIComponent(url.pathname.replace(/^\//, ""));
  return {
    dialect,
    host: url.hostname,
    port,
    ssl,
    tls: options.tls ?? {},
    login: options.login ?? (url.username ? decodeURIComponent(url.username) : undefined),
    passcode: options.passcode ?? (url.password ? decodeURIComponent(url.password) : undefined),
    vhost: options.vhost ?? (path === "" ? "/" : path),
    ...numbers,
    display,
  };
}
