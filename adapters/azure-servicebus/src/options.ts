import { redactUrl, SwitchyardError } from "@switchyard/core";

/** Matches on a message's own fields and application properties; every field given must be equal. */
export interface CorrelationRuleFilter {
  correlationId?: string;
  messageId?: string;
  to?: string;
  replyTo?: string;
  /** The CloudEvents type of a Switchyard message. */
  subject?: string;
  sessionId?: string;
  replyToSessionId?: string;
  contentType?: string;
  applicationProperties?: Record<string, string | number | boolean>;
}

/**
 * The filter of a subscription's rule: a SQL filter expression (e.g. `sys.Label = 'order.placed' AND
 * tenant = 't1'`; `sys.Label` is the CloudEvents type, user headers are properties by name) or a
 * correlation filter.
 */
export type SubscriptionRule = { sql: string } | { correlation: CorrelationRuleFilter };

/** What `createTransport(url, options)` accepts besides the URL; options win over query parameters. */
export interface ServiceBusOptions {
  /** A full connection string (`Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…`); wins over the URL. */
  connectionString?: string;
  /**
   * An Azure `TokenCredential` (e.g. `new DefaultAzureCredential()` from `@azure/identity`) used with
   * the URL's host as the fully qualified namespace (`azure-servicebus://NS.servicebus.windows.net`).
   */
  credential?: unknown;
  /**
   * How entities are created: `emulator` (the Switchyard emulator's HTTP admin API at `adminUrl`),
   * `azure` (`ServiceBusAdministrationClient`, needs a Manage right), or `none` (entities must exist).
   * Default: `emulator` when `adminUrl` is given, else `none`.
   */
  provisioning?: "emulator" | "azure" | "none";
  /** The emulator's admin API, e.g. `http://127.0.0.1:5674`. */
  adminUrl?: string;
  /** Max delivery count of entities the adapter creates. Default 1000 (retries are counted by Switchyard). */
  maxDeliveryCount?: number;
  /** Lock duration of entities the adapter creates, in ms. Default 60 s. */
  lockDurationMs?: number;
  /** Longest time a lock is renewed automatically while a handler runs. Default 5 min. */
  maxLockRenewalMs?: number;
  /** Largest message accepted (encoded). Default 256 KiB, the Standard tier's limit. */
  maxMessageBytes?: number;
  /**
   * Per-key order through Service Bus sessions: entities are created with requiresSession, a message's
   * sessionId is its key, and consumers accept sessions (`ordering: "group"`). Default false.
   */
  sessions?: boolean;
  /** Sessions mode: a held session with no message for this long is released. Default 1000 ms. */
  sessionIdleMs?: number;
  /**
   * Filters of subscriptions, by `"topic/subscription"`: a subscription the adapter creates gets this
   * as its only rule (`$Default`) instead of "every message". Existing subscriptions keep their rules.
   */
  rules?: Record<string, SubscriptionRule>;
}

export interface ResolvedOptions {
  connectionString: string | undefined;
  namespace: string | undefined;
  credential: unknown;
  provisioning: "emulator" | "azure" | "none";
  adminUrl: string | undefined;
  maxDeliveryCount: number;
  lockDurationMs: number;
  maxLockRenewalMs: number;
  maxMessageBytes: number;
  sessions: boolean;
  sessionIdleMs: number;
  rules: Map<string, SubscriptionRule>;
  /** The endpoint without secrets, for messages. */
  display: string;
}

const PARAMS = new Set([
  "emulator",
  "adminUrl",
  "provisioning",
  "maxDeliveryCount",
  "lockDurationMs",
  "maxLockRenewalMs",
  "maxMessageBytes",
  "sessions",
  "sessionIdleMs",
]);

/**
 * `azure-servicebus://127.0.0.1:5673?emulator=true&adminUrl=http://127.0.0.1:5674` (the emulator),
 * `azure-servicebus://KEYNAME:KEY@NS.servicebus.windows.net` (SAS), or `azure-servicebus://NS.servicebus.windows.net`
 * with `options.credential`; `servicebus://` is the same. `options.connectionString` wins over all.
 */
export function resolveOptions(url: URL, options: ServiceBusOptions = {}): ResolvedOptions {
  const display = redactUrl(url.toString());
  const invalid = (message: string) => new SwitchyardError("CONFIG_INVALID", `${message} (in ${display})`);
  const protocol = url.protocol.replace(/:$/, "");
  if (protocol !== "servicebus" && protocol !== "azure-servicebus") {
    throw invalid(`scheme "${protocol}" is not azure-servicebus or servicebus`);
  }
  const params: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    if (!PARAMS.has(name))
      throw invalid(`unknown query parameter "${name}"; accepted: ${[...PARAMS].join(", ")}`);
    params[name] = value;
  }
  const number = (name: keyof ServiceBusOptions & string, fallback: number, min: number): number => {
    const raw = (options as Record<string, unknown>)[name] ?? params[name];
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min) throw invalid(`${name} must be a number ≥ ${min}`);
    return value;
  };
  const emulator = ["true", "1"].includes(params.emulator ?? "");
  let connectionString = options.connectionString;
  let namespace: string | undefined;
  let shown = display;
  if (connectionString !== undefined) {
    if (typeof connectionString !== "string" || !/Endpoint=sb:\/\/[^;]+/i.test(connectionString)) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        "connectionString is not a Service Bus connection string (Endpoint=sb://…;…)",
      );
    }
    shown = `sb://${/Endpoint=sb:\/\/([^;/]+)/i.exec(connectionString)![1]}`;
  } else {
    if (!url.hostname) throw invalid("the URL has no host");
    const host = url.port ? `${url.hostname}:${url.port}` : url.hostname;
    if (emulator) {
      connectionString = `Endpoint=sb://${host};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;`;
    } else if (url.username && url.password) {
      connectionString = `Endpoint=sb://${host}/;SharedAccessKeyName=${decodeURIComponent(url.username)};SharedAccessKey=${decodeURIComponent(url.password)}`;
    } else if (options.credential) {
      namespace = host;
    } else {
      throw invalid(
        "no credentials: give KEYNAME:KEY@ in the URL, options.connectionString, options.credential, or ?emulator=true",
      );
    }
  }
  const adminUrl = options.adminUrl ?? params.adminUrl;
  const provisioning =
    options.provisioning ?? (params.provisioning as never) ?? (adminUrl ? "emulator" : "none");
  if (!["emulator", "azure", "none"].includes(provisioning)) {
    throw invalid(`provisioning must be emulator, azure or none, got "${provisioning}"`);
  }
  if (provisioning === "emulator" && !adminUrl) throw invalid("provisioning=emulator needs adminUrl");
  const sessionsRaw = options.sessions ?? params.sessions ?? false;
  if (![true, false, "true", "false", "1", "0"].includes(sessionsRaw as never)) {
    throw invalid(`sessions must be true or false, got "${String(sessionsRaw)}"`);
  }
  const sessions = sessionsRaw === true || sessionsRaw === "true" || sessionsRaw === "1";
  const rules = new Map<string, SubscriptionRule>();
  for (const [path, rule] of Object.entries(options.rules ?? {})) {
    const parts = path.split("/");
    if (parts.length !== 2 || !parts[0] || !parts[1])
      throw invalid(`rules: "${path}" is not "topic/subscription"`);
    const sql = rule && "sql" in rule && typeof rule.sql === "string" && rule.sql.trim() !== "";
    const correlation =
      rule && "correlation" in rule && typeof rule.correlation === "object" && rule.correlation !== null;
    if (!sql && !correlation) throw invalid(`rules["${path}"] must be { sql } or { correlation }`);
    rules.set(path, rule);
  }
  return {
    connectionString,
    namespace,
    credential: options.credential,
    provisioning,
    adminUrl,
    maxDeliveryCount: number("maxDeliveryCount", 1000, 1),
    lockDurationMs: number("lockDurationMs", 60_000, 1000),
    maxLockRenewalMs: number("maxLockRenewalMs", 5 * 60_000, 0),
    maxMessageBytes: number("maxMessageBytes", 256 * 1024, 1024),
    sessions,
    sessionIdleMs: number("sessionIdleMs", 1000, 10),
    rules,
    display: shown,
  };
}
