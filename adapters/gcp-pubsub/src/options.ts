import { redactUrl, SwitchyardError } from "@switchyard/core";
import { validatePrefix } from "./names.js";

export interface PubsubOptions {
  /** Google Cloud project id (the URL's host). */
  projectId: string;
  /** `host:port` of an emulator; defaults to `PUBSUB_EMULATOR_HOST` when set. */
  emulator?: string;
  /** Prefix of every topic and subscription id. Default `sy`. */
  prefix: string;
  /** Ack deadline of created subscriptions, 10–600 s. Default 30. */
  ackDeadlineSeconds: number;
  /** `maxDeliveryAttempts` of the dead-letter policy on queues (5–100). Default 100. */
  queueMaxDeliveryAttempts: number;
  /** Ordering keys and ordered subscriptions (capability ordering "key"). Default true. */
  ordering: boolean;
  /** Exactly-once delivery on created subscriptions; acks are confirmed. Default false. */
  exactlyOnce: boolean;
  /** Retry policy backoff of created subscriptions, in seconds (0–600). Unset by default. */
  retryPolicy?: { minimumBackoffSeconds: number; maximumBackoffSeconds: number };
  /** Publisher batching (see @google-cloud/pubsub BatchPublishOptions). */
  batching: { maxMessages?: number; maxMilliseconds?: number; maxBytes?: number };
  /** StreamingPull streams per subscriber. Default 1. */
  maxStreams: number;
  /** How long connect() waits for the service before failing. Default 10 s. */
  connectTimeoutMs: number;
  /** With exactly-once: how long an ack/nack/modAck waits for the service's confirmation. Default 15 s. */
  settleTimeoutMs: number;
  /** Passed to the PubSub client as is (credentials, keyFilename, apiEndpoint…). */
  clientConfig: Record<string, unknown>;
}

const bool = (v: string) => v === "true" || v === "1";

function int(name: string, raw: unknown, min: number, max: number): number {
  const value = typeof raw === "string" ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new SwitchyardError("CONFIG_INVALID", `pubsub option ${name} must be an integer ${min}–${max}`, {
      details: { option: name },
    });
  }
  return value;
}

/**
 * `pubsub://PROJECT_ID?emulator=host:port&prefix=sy&ackDeadlineSeconds=30&exactlyOnce=true
 * &queueMaxDeliveryAttempts=100&minBackoff=1&maxBackoff=60&maxStreams=1&batchMaxMessages=100
 * &batchMaxMilliseconds=10&settleTimeoutMs=15000`; `options` override the URL.
 */
export function parseOptions(url: URL, options: Record<string, unknown> = {}): PubsubOptions {
  const q = url.searchParams;
  const known = new Set([
    "emulator",
    "prefix",
    "ackDeadlineSeconds",
    "exactlyOnce",
    "ordering",
    "queueMaxDeliveryAttempts",
    "minBackoff",
    "maxBackoff",
    "maxStreams",
    "batchMaxMessages",
    "batchMaxMilliseconds",
    "connectTimeoutMs",
    "settleTimeoutMs",
  ]);
  for (const key of q.keys()) {
    if (!known.has(key)) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        `unknown pubsub URL parameter "${key}" in ${redactUrl(url.toString())}; known: ${[...known].join(", ")}`,
      );
    }
  }
  const projectId = (options.projectId as string | undefined) ?? decodeURIComponent(url.hostname);
  if (!projectId || !/^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[A-Za-z0-9][A-Za-z0-9.:_-]*$/.test(projectId)) {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `${redactUrl(url.toString())} names no valid project; expected pubsub://PROJECT_ID`,
    );
  }
  const emulator =
    (options.emulator as string | undefined) ??
    q.get("emulator") ??
    process.env.PUBSUB_EMULATOR_HOST ??
    undefined;
  if (emulator !== undefined && !/^[^\s:/]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(emulator)) {
    throw new SwitchyardError("CONFIG_INVALID", `pubsub emulator "${emulator}" must be host:port`);
  }
  const prefix = (options.prefix as string | undefined) ?? q.get("prefix") ?? "sy";
  validatePrefix(prefix);
  const pick = (name: string, param = name) => options[name] ?? q.get(param) ?? undefined;
  const min = pick("minBackoff");
  const max = pick("maxBackoff");
  const retry = options.retryPolicy as PubsubOptions["retryPolicy"] | undefined;
  const batching: PubsubOptions["batching"] = {
    ...((options.batching as PubsubOptions["batching"] | undefined) ?? {}),
  };
  if (q.get("batchMaxMessages"))
    batching.maxMessages = int("batchMaxMessages", q.get("batchMaxMessages"), 1, 1000);
  if (q.get("batchMaxMilliseconds"))
    batching.maxMilliseconds = int("batchMaxMilliseconds", q.get("batchMaxMilliseconds"), 0, 60_000);
  const exactly = options.exactlyOnce ?? q.get("exactlyOnce");
  const ordering = options.ordering ?? q.get("ordering");
  const parsed: PubsubOptions = {
    projectId,
    prefix,
    ackDeadlineSeconds: int("ackDeadlineSeconds", pick("ackDeadlineSeconds") ?? 30, 10, 600),
    queueMaxDeliveryAttempts: int(
      "queueMaxDeliveryAttempts",
      pick("queueMaxDeliveryAttempts") ?? 100,
      5,
      100,
    ),
    exactlyOnce: typeof exactly === "boolean" ? exactly : typeof exactly === "string" ? bool(exactly) : false,
    ordering: typeof ordering === "boolean" ? ordering : typeof ordering === "string" ? bool(ordering) : true,
    batching,
    maxStreams: int("maxStreams", pick("maxStreams") ?? 1, 1, 32),
    connectTimeoutMs: int("connectTimeoutMs", pick("connectTimeoutMs") ?? 10_000, 100, 600_000),
    settleTimeoutMs: int("settleTimeoutMs", pick("settleTimeoutMs") ?? 15_000, 100, 600_000),
    clientConfig: (options.clientConfig as Record<string, unknown> | undefined) ?? {},
  };
  if (emulator !== undefined) parsed.emulator = emulator;
  if (retry) parsed.retryPolicy = retry;
  else if (min !== undefined || max !== undefined) {
    parsed.retryPolicy = {
      minimumBackoffSeconds: int("minBackoff", min ?? 10, 0, 600),
      maximumBackoffSeconds: int("maxBackoff", max ?? 600, 0, 600),
    };
  }
  return parsed;
}
