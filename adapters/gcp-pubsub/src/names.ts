import { createHash } from "node:crypto";
import { SwitchyardError } from "@switchyard/core";

/**
 * Switchyard names (any 1–200 characters) → Pub/Sub resource ids (3–255 characters of
 * `[A-Za-z0-9-_.~+%]`, starting with a letter, not starting with `goog`).
 *
 * Every character outside `[A-Za-z0-9-_.~]` is percent-encoded (UTF-8), so `+` never occurs
 * inside an encoded name and serves as the separator:
 *   queue Q             → topic `PREFIX-q+Q`, subscription `PREFIX-q+Q`
 *   topic T             → topic `PREFIX-t+T`
 *   subscription S on T → subscription `PREFIX-t+T+S`
 * An id longer than 255 characters keeps its first 230 and ends in `+` and 24 hex digits of its
 * SHA-256, so it stays unique and recognisable.
 */
export function encodeName(name: string): string {
  let out = "";
  for (const char of name) {
    if (/^[A-Za-z0-9\-_.~]$/.test(char)) out += char;
    else
      for (const byte of Buffer.from(char, "utf8"))
        out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export function decodeName(encoded: string): string {
  return decodeURIComponent(encoded);
}

function bounded(id: string): string {
  if (id.length <= 255) return id;
  return `${id.slice(0, 230)}+${createHash("sha256").update(id).digest("hex").slice(0, 24)}`;
}

export function validatePrefix(prefix: string): void {
  if (!/^[A-Za-z][A-Za-z0-9\-_.~]{0,39}$/.test(prefix) || prefix.toLowerCase().startsWith("goog")) {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `pubsub prefix "${prefix}" must start with a letter, have at most 40 characters of [A-Za-z0-9-_.~] and not start with "goog"`,
    );
  }
}

export class Names {
  constructor(readonly prefix: string) {
    validatePrefix(prefix);
  }

  queueTopic(queue: string): string {
    return bounded(`${this.prefix}-q+${encodeName(queue)}`);
  }

  queueSubscription(queue: string): string {
    return this.queueTopic(queue);
  }

  topic(topic: string): string {
    return bounded(`${this.prefix}-t+${encodeName(topic)}`);
  }

  subscription(topic: string, subscription: string): string {
    return bounded(`${this.prefix}-t+${encodeName(topic)}+${encodeName(subscription)}`);
  }
}
