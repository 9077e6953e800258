import { createHash } from "node:crypto";
import type { ServiceBusMessage, ServiceBusReceivedMessage } from "@azure/service-bus";
import { RESERVED_PREFIX, renamePrefix, type WireMessage } from "@switchyard/core";

/** CloudEvents AMQP binding: attributes travel as application properties named `cloudEvents:<attr>`. */
export const AMQP_PREFIX = "cloudEvents:";
/** Attempts used before a delayed nack scheduled a fresh copy (whose deliveryCount starts at 0). */
export const ATTEMPT_HEADER = `${RESERVED_PREFIX}xattempt`;
/** A key given without a `ce_partitionkey` attribute (raw transport use). */
export const KEY_HEADER = `${RESERVED_PREFIX}xkey`;

/**
 * The Service Bus message of a wire message. Every header (CloudEvents attributes renamed to the AMQP
 * binding's `cloudEvents:` names) is an application property, so the round trip needs nothing else;
 * the native fields are filled too, for tools and filters: messageId = id, correlationId,
 * subject = the CloudEvents type, contentType = datacontenttype. The body is binary (a data section).
 */
/** Sessions a keyless message is spread over in sessions mode (no order is owed to them). */
export const KEYLESS_SESSIONS = 8;

/**
 * The session of a message in sessions mode: its key (hashed when longer than Service Bus' 128
 * characters), or for a keyless message one of {@link KEYLESS_SESSIONS} `~keyless-N` sessions chosen
 * from its id.
 */
export function sessionIdOf(message: WireMessage): string {
  const key = message.key;
  if (key === undefined || key === "") {
    const n = createHash("sha256").update(message.id).digest().readUInt32BE(0) % KEYLESS_SESSIONS;
    return `~keyless-${n}`;
  }
  if (key.length <= 128) return key;
  return `~key-${createHash("sha256").update(key).digest("hex")}`;
}

export function toServiceBus(
  message: WireMessage,
  extra: Record<string, string> = {},
  sessions = false,
): ServiceBusMessage {
  const headers: Record<string, string> = { ...message.headers, ...extra };
  if (message.key !== undefined && headers[`${RESERVED_PREFIX}partitionkey`] !== message.key) {
    headers[KEY_HEADER] = message.key;
  }
  const out: ServiceBusMessage = {
    body: Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength),
    messageId: message.id,
    applicationProperties: renamePrefix(headers, RESERVED_PREFIX, AMQP_PREFIX),
  };
  if (sessions) out.sessionId = sessionIdOf(message);
  const type = message.headers[`${RESERVED_PREFIX}type`];
  if (type) out.subject = type;
  const contentType = message.headers[`${RESERVED_PREFIX}datacontenttype`];
  if (contentType) out.contentType = contentType;
  const correlationId = message.headers[`${RESERVED_PREFIX}correlationid`];
  if (correlationId) out.correlationId = correlationId;
  return out;
}

/** The wire message of a received Service Bus message, and the attempts used before this copy. */
export function fromServiceBus(received: ServiceBusReceivedMessage): {
  message: WireMessage;
  before: number;
} {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(received.applicationProperties ?? {})) {
    if (value === null || value === undefined) continue;
    headers[name] = value instanceof Date ? value.toISOString() : String(value);
  }
  const wireHeaders = renamePrefix(headers, AMQP_PREFIX, RESERVED_PREFIX);
  const before = Number(wireHeaders[ATTEMPT_HEADER] ?? 0) || 0;
  delete wireHeaders[ATTEMPT_HEADER];
  const key = wireHeaders[`${RESERVED_PREFIX}partitionkey`] ?? wireHeaders[KEY_HEADER];
  delete wireHeaders[KEY_HEADER];
  const body = bodyBytes(received.body);
  const id =
    received.messageId !== undefined
      ? String(received.messageId)
      : // A foreign message without an id: a stable one from its content.
        `sb-${createHash("sha256").update(body).update(JSON.stringify(headers)).digest("hex").slice(0, 32)}`;
  const message: WireMessage = { id, headers: wireHeaders, body };
  if (key !== undefined) message.key = key;
  return { message, before };
}

/** Bytes of a body: binary as is; a foreign string or AMQP value as UTF-8 (JSON for non-strings). */
function bodyBytes(body: unknown): Uint8Array {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return Buffer.from(body, "utf8");
  return Buffer.from(JSON.stringify(body), "utf8");
}
