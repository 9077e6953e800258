/**
 * Every error Switchyard raises is a SwitchyardError with a stable `code`, so callers branch on
 * codes, never on message text. Messages never contain credentials (see `redactUrl`).
 */
export type ErrorCode =
  | "CONFIG_INVALID"
  | "UNKNOWN_SCHEME"
  | "ADAPTER_NOT_INSTALLED"
  | "VALIDATION_FAILED"
  | "UNKNOWN_MESSAGE_TYPE"
  | "UNKNOWN_VERSION"
  | "MESSAGE_TOO_LARGE"
  | "TOO_MANY_HEADERS"
  | "INVALID_HEADER"
  | "INVALID_PAYLOAD"
  | "DECODE_FAILED"
  | "CLOSED"
  | "TIMEOUT"
  | "ALREADY_SETTLED"
  | "CAPABILITY_MISSING"
  /** `ctx.reply()` on a message that was not sent by `bus.request()` (it has no reply-to). */
  | "NOT_A_REQUEST"
  | "TRANSPORT_ERROR";

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(`[switchyard] ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SwitchyardError";
    this.code = code;
    this.details = options?.details;
  }
}

export function isSwitchyardError(error: unknown, code?: ErrorCode): error is SwitchyardError {
  return error instanceof SwitchyardError && (code === undefined || error.code === code);
}

/**
 * Thrown by a handler to say "retrying will not help": the message is dead-lettered at once with
 * reason `handler-error` instead of being retried until `max-attempts`.
 */
export class PermanentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PermanentError";
  }
}

/**
 * Masks credentials inside a text Switchyard keeps or forwards but did not write itself, such as a
 * handler's error message: the password of every URL (`amqp://user:pass@host` →
 * `amqp://user:***@host`, also when the password holds an `@`), and the value of every
 * secret-looking `name=value` pair in a query or a connection string (`?token=…`, `&password=…`,
 * `;SharedAccessKey=…`).
 */
export function redactText(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:@/]*):[^\s/]*@/gi, "$1:***@")
    .replace(SECRET_PAIR, "$1***");
}

/** `name=value` after `?`, `&`, `;`, a space or the start, where the name looks like a secret's. */
const SECRET_PAIR =
  /((?:^|[?&;\s])[^=&;\s]*(?:secret|password|passwd|pwd|token|key|signature|sas|credential)[^=&;\s]*=)[^&;\s]*/gi;

/** Removes user info and secret-looking query parameters from a URL before it goes into a message. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username) parsed.username = "***";
    if (parsed.password) parsed.password = "***";
    for (const key of [...parsed.searchParams.keys()]) {
      if (/secret|password|token|key|signature|sas|credential/i.test(key))
        parsed.searchParams.set(key, "***");
    }
    return parsed.toString();
  } catch {
    // Not a URL at all: show only the part before any '@' so a "user:pass@host" string never leaks.
    const at = url.lastIndexOf("@");
    return at === -1 ? url.slice(0, 80) : `***@${url.slice(at + 1, at + 80)}`;
  }
}
