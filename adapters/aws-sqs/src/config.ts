import { redactUrl, SwitchyardError } from "@switchyard/core";

/** What both AWS adapters read from their URL and options. */
export interface AwsOptions {
  /** AWS region. Default: the URL's region, else `AWS_REGION`, else `us-east-1`. */
  region?: string;
  /** Service endpoint, e.g. `http://127.0.0.1:9324` for ElasticMQ. Default: AWS's own. */
  endpoint?: string;
  /** Explicit credentials. Default: the AWS SDK's standard provider chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** SQS's size limit in bytes, attributes included: 256 KiB by default, AWS allows up to 1 MiB. */
  maxMessageBytes?: number;
  /** Make every queue FIFO (names get `.fifo`). Default: only names that end in `.fifo`. */
  fifo?: boolean;
  /**
   * FIFO: the envelope id is the MessageDeduplicationId (SQS drops a second message with the same id
   * within 5 minutes, which also drops a DLQ redrive within that window). `false`: a fresh id per send,
   * duplicates are left to the core's idempotency. Default true.
   */
  fifoDeduplicateById?: boolean;
  /** Visibility timeout of received messages, extended while the handler runs. Default 30 s. */
  visibilityTimeoutSeconds?: number;
  /** Long-poll wait of one receive (0–20). Default 10 s; `close()` may wait this long. */
  waitTimeSeconds?: number;
  /**
   * A native RedrivePolicy as a backstop on subscription queues: maxReceiveCount = the consumer's
   * maxAttempts + this margin. `false` turns it off. Default 5.
   */
  redriveMargin?: number | false;
  /** How long one transport trusts its list of a topic's subscription queues (SQS topics). Default 1 s. */
  topicCacheMs?: number;
  /**
   * Timeout of one API call attempt in ms (a receive adds its long-poll wait): past it the request
   * fails with a TimeoutError and the SDK retries, so a dead connection cannot hang a call. Default 30 s (an emulator under load answers late; an abandoned receive hides its messages).
   */
  requestTimeoutMs?: number;
  /** Timeout of opening a connection in ms. Default: `requestTimeoutMs`, at most 5 s. */
  connectionTimeoutMs?: number;
}

export interface ResolvedAwsOptions {
  region: string;
  endpoint: string | undefined;
  credentials: AwsOptions["credentials"];
  maxMessageBytes: number;
  fifo: boolean;
  fifoDeduplicateById: boolean;
  visibilityTimeoutSeconds: number;
  waitTimeSeconds: number;
  redriveMargin: number | false;
  topicCacheMs: number;
  requestTimeoutMs: number;
  connectionTimeoutMs: number;
}

const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;

function invalid(message: string): never {
  throw new SwitchyardError("CONFIG_INVALID", message);
}

function numberOption(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isFinite(n) || n < min || n > max)
    invalid(`${name} must be a number in ${min}–${max}, got ${String(value)}`);
  return n;
}

/**
 * `sqs://us-east-1?endpoint=http://127.0.0.1:9324`, `sqs://127.0.0.1:9324?region=us-east-1`
 * (host:port is an http endpoint) or `sqs://` (AWS itself, region from the environment).
 * Query parameters: region, endpoint, fifo, maxMessageBytes, visibilityTimeout, waitTime,
 * requestTimeout and connectionTimeout (ms).
 * Credentials never come from the URL: use the standard AWS chain or the `credentials` option.
 */
export function resolveAwsOptions(url: URL | undefined, options: AwsOptions = {}): ResolvedAwsOptions {
  const query = url?.searchParams;
  if (url && (url.username || url.password)) {
    invalid(
      `credentials in ${redactUrl(url.href)} are not accepted; use the AWS credential chain or the credentials option`,
    );
  }
  let region = options.region ?? query?.get("region") ?? undefined;
  let endpoint = options.endpoint ?? query?.get("endpoint") ?? undefined;
  const host = url?.hostname ?? "";
  if (host) {
    if (REGION.test(host) && !url?.port) region ??= host;
    else endpoint ??= `http://${url!.host}`;
  }
  region ??= process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1";
  if (!REGION.test(region)) invalid(`"${region}" is not an AWS region (e.g. us-east-1)`);
  if (endpoint !== undefined) {
    try {
      const parsed = new URL(endpoint);
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("not http");
    } catch {
      invalid(`endpoint "${redactUrl(endpoint)}" is not an http(s) URL`);
    }
  }
  const fifoParam = query?.get("fifo");
  const requestTimeoutMs =
    numberOption(
      options.requestTimeoutMs ?? query?.get("requestTimeout"),
      "requestTimeoutMs",
      100,
      600_000,
    ) ?? 30_000;
  return {
    region,
    endpoint,
    credentials: options.credentials,
    maxMessageBytes:
      numberOption(
        options.maxMessageBytes ?? query?.get("maxMessageBytes"),
        "maxMessageBytes",
        8192,
        1024 * 1024,
      ) ?? 256 * 1024,
    fifo: options.fifo ?? (fifoParam === "true" || fifoParam === "1"),
    fifoDeduplicateById: options.fifoDeduplicateById ?? query?.get("fifoDeduplication") !== "none",
    visibilityTimeoutSeconds:
      numberOption(
        options.visibilityTimeoutSeconds ?? query?.get("visibilityTimeout"),
        "visibilityTimeoutSeconds",
        5,
        43_200,
      ) ?? 30,
    waitTimeSeconds:
      numberOption(options.waitTimeSeconds ?? query?.get("waitTime"), "waitTimeSeconds", 0, 20) ?? 10,
    redriveMargin:
      options.redriveMargin === false
        ? false
        : (numberOption(options.redriveMargin, "redriveMargin", 1, 1000) ?? 5),
    topicCacheMs: numberOption(options.topicCacheMs, "topicCacheMs", 0, 3_600_000) ?? 1000,
    requestTimeoutMs,
    connectionTimeoutMs:
      numberOption(
        options.connectionTimeoutMs ?? query?.get("connectionTimeout"),
        "connectionTimeoutMs",
        100,
        600_000,
      ) ?? Math.min(requestTimeoutMs, 5000),
  };
}

/**
 * Client configuration for the AWS SDK v3 (SQS and SNS clients take the same shape). A receive, which
 * may wait its long poll on top, passes its own `requestTimeout` (see `receiveTimeoutMs`).
 */
export function clientConfig(options: ResolvedAwsOptions) {
  return {
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: 3,
    requestHandler: {
      requestTimeout: options.requestTimeoutMs,
      // Without it @smithy/node-http-handler (≥ 4.4) only logs a warning past requestTimeout and the
      // call waits on for ever: a request on a connection that died silently never ends.
      throwOnRequestTimeout: true,
      connectionTimeout: options.connectionTimeoutMs,
    },
  };
}

/** The request timeout of one receive: longer than its long-poll wait, or every empty poll would fail. */
export function receiveTimeoutMs(options: ResolvedAwsOptions): number {
  return options.requestTimeoutMs + options.waitTimeSeconds * 1000;
}

/**
 * Turns whatever the SDK threw into a SwitchyardError with a code: never a raw SyntaxError from a
 * response the SDK could not parse (an emulator's HTTP 500), never credentials in the message.
 */
export function awsError(operation: string, error: unknown): SwitchyardError {
  if (error instanceof SwitchyardError) return error;
  const e = error as {
    name?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number; attempts?: number };
  };
  const status = e?.$metadata?.httpStatusCode;
  const attempts = e?.$metadata?.attempts;
  const name = e?.name ?? "Error";
  const detail =
    name === "SyntaxError" || name === "Error"
      ? `the endpoint answered with something the AWS SDK could not read${status ? ` (HTTP ${status})` : ""}; it may not implement ${operation}`
      : `${name}: ${(e?.message ?? "").replace(/(AKIA|ASIA)[A-Z0-9]{12,}/g, "***")}`;
  return new SwitchyardError("TRANSPORT_ERROR", `${operation} failed: ${detail}`, {
    cause: error,
    details: {
      operation,
      awsError: name,
      ...(status ? { httpStatusCode: status } : {}),
      ...(attempts ? { attempts } : {}),
    },
  });
}
