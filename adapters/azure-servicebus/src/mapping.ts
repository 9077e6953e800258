import { createHash } from "node:crypto";
import type { ServiceBusMessage, ServiceBusReceivedMessage } from "@azure/service-bus";
import {
  FAULT,
  type FaultHeaders,
  RESERVED_PREFIX,
  renamePrefix,
  type Source,
  type WireMessage,
} from "@switchyard/core";

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

/** Service Bus' own dead-letter properties (application properties of a dead-lettered message). */
export const SB_DEAD_LETTER_REASON = "DeadLetterReason";
export const SB_DEAD_LETTER_DESCRIPTION = "DeadLetterErrorDescription";
const DEAD_LETTER_SUFFIX = "/$DeadLetterQueue";

/** The `$DeadLetterQueue` sub-queue of a source: `<queue>/$DeadLetterQueue` or `<topic>/Subscriptions/<sub>/$DeadLetterQueue`. */
export function deadLetterPath(source: Source): string {
  const entity =
    source.kind === "queue" ? source.name : `${source.name}/Subscriptions/${source.subscription}`;
  return `${entity}${DEAD_LETTER_SUFFIX}`;
}

/** The source whose dead-letter sub-queue `path` is, or undefined when `path` is no such sub-queue. */
export function deadLetterOrigin(path: string): Source | undefined {
  if (!path.toLowerCase().endsWith(DEAD_LETTER_SUFFIX.toLowerCase())) return undefined;
  const entity = path.slice(0, -DEAD_LETTER_SUFFIX.length);
  const parts = entity.split("/");
  if (parts.length === 3 && parts[1]!.toLowerCase() === "subscriptions")
    return { kind: "topic", name: parts[0]!, subscription: parts[2]! };
  return { kind: "queue", name: entity, subscription: entity };
}

/**
 * The options of `receiver.deadLetterMessage` for the core's fault headers: Service Bus'
 * DeadLetterReason is the core's reason (`handler-error`, `max-attempts`, …), the description the
 * error (`Type: message`) or the reason text, and every fault header (consumer, handler, attempts,
 * times, stack) goes along as an application property under its AMQP name (`cloudEvents:dl…`).
 */
export function deadLetterOptions(
  fault: FaultHeaders,
): Record<string, string> & { deadLetterReason: string; deadLetterErrorDescription: string } {
  const reason = fault[FAULT.reason] ?? "explicit";
  const errorType = fault[FAULT.errorType];
  const description =
    errorType !== undefined
      ? `${errorType}: ${fault[FAULT.errorMessage] ?? ""}`
      : (fault[FAULT.reasonText] ?? reason);
  return {
    ...renamePrefix(fault, RESERVED_PREFIX, AMQP_PREFIX),
    deadLetterReason: reason,
    deadLetterErrorDescription: description.slice(0, 1024),
  };
}

/**
 * The wire message of a message read from a `$DeadLetterQueue` sub-queue. Service Bus' own
 * DeadLetterReason/Description are taken off the headers (a redriven message must not carry them).
 * A message the broker dead-lettered itself, or a foreign receiver did, has no core fault headers:
 * they are filled from what Service Bus knows — MaxDeliveryCountExceeded is `max-attempts`,
 * TTLExpiredException `expired`, any other reason `explicit`; the text is `Reason: description`;
 * attempts are the delivery count; destination and subscription are the sub-queue's entity.
 */
export function fromDeadLetter(
  received: ServiceBusReceivedMessage,
  origin: Source,
): { message: WireMessage; before: number } {
  const { message, before } = fromServiceBus(received);
  const h = message.headers;
  const sbReason = h[SB_DEAD_LETTER_REASON] ?? received.deadLetterReason;
  const sbDescription = h[SB_DEAD_LETTER_DESCRIPTION] ?? received.deadLetterErrorDescription;
  delete h[SB_DEAD_LETTER_REASON];
  delete h[SB_DEAD_LETTER_DESCRIPTION];
  if (h[FAULT.reason] === undefined) {
    h[FAULT.reason] =
      sbReason === "MaxDeliveryCountExceeded" || sbReason === undefined
        ? "max-attempts"
        : sbReason === "TTLExpiredException"
          ? "expired"
          : "explicit";
    const text = [sbReason, sbDescription].filter((part) => part !== undefined && part !== "").join(": ");
    if (text) h[FAULT.reasonText] = text;
    h[FAULT.attempts] = String(before + (received.deliveryCount ?? 0));
    h[FAULT.destination] = `${origin.kind}:${origin.name}`;
    h[FAULT.subscription] = origin.subscription;
  }
  return { message, before };
}
