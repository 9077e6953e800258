import { isSwitchyardError, redactUrl } from "@switchyard/core";

/**
 * Exit codes, the same for every command, so scripts can branch on them:
 *   0 done · 1 the operation failed (broker, not found) · 2 bad usage or bad input ·
 *   3 `topology diff` found entities missing · 130 interrupted before it finished.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, drift: 3, interrupted: 130 } as const;

/** Error codes that mean the input was wrong, not the broker: exit 2. */
const INPUT_CODES = new Set([
  "CONFIG_INVALID",
  "UNKNOWN_SCHEME",
  "VALIDATION_FAILED",
  "UNKNOWN_MESSAGE_TYPE",
  "UNKNOWN_VERSION",
  "INVALID_HEADER",
  "INVALID_PAYLOAD",
  "MESSAGE_TOO_LARGE",
  "TOO_MANY_HEADERS",
]);

export function exitCodeOf(error: unknown): number {
  return isSwitchyardError(error) && INPUT_CODES.has(error.code) ? EXIT.usage : EXIT.failed;
}

/** `CODE: message` for a SwitchyardError, the message otherwise; URLs in it are redacted. */
export function describeError(error: unknown): { code: string; message: string } {
  const code = isSwitchyardError(error) ? error.code : "ERROR";
  const raw = error instanceof Error ? error.message : String(error);
  const message = raw
    .replace(/^\[switchyard\] /, "")
    .replace(/[a-z][a-z0-9+.-]*:\/\/\S+/gi, (url) => redactUrl(url));
  return { code, message };
}
