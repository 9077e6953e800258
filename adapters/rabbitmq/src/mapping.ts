import { createHash } from "node:crypto";
import { RESERVED_PREFIX, renamePrefix, SwitchyardError, type WireMessage } from "@switchyard/core";
import type { ConsumeMessage, Options } from "amqplib";

/** CloudEvents AMQP binding: attributes travel as application properties named `cloudEvents:<attr>`. */
export const AMQP_PREFIX = "cloudEvents:";
/** Our own internal headers (ignored by fromWire): attempts used before a republish, and a bare key. */
export const ATTEMPT_HEADER = `${RESERVED_PREFIX}xattempt`;
export const KEY_HEADER = `${RESERVED_PREFIX}xkey`;
const DATACONTENTTYPE = `${RESERVED_PREFIX}datacontenttype`;

/** AMQP 0-9-1 field-table keys are short strings (a length byte), after the `cloudEvents:` rename too. */
const MAX_HEADER_NAME_BYTES = 255;

/** Headers RabbitMQ itself writes; stripped on receive so user headers round-trip exactly. */
const BROKER_HEADERS = new Set([
  "x-delivery-count",
  "x-death",
  "x-first-death-queue",
  "x-first-death-reason",
  "x-first-death-exchange",
  "x-last-death-queue",
  "x-last-death-reason",
  "x-last-death-exchange",
]);

/** The AMQP properties and headers of a wire message. */
export function toAmqp(message: WireMessage, extra: Record<string, string> = {}): Options.Publish {
  for (const name in message.headers) {
    // Our own `ce_` headers are short and never reserved: only user headers need the checks.
    if (name.startsWith(RESERVED_PREFIX)) continue;
    if (BROKER_HEADERS.has(name.toLowerCase()) || name.startsWith(AMQP_PREFIX)) {
      throw new SwitchyardError(
        "INVALID_HEADER",
        `header "${name}" is reserved by RabbitMQ or the CloudEvents AMQP binding`,
      );
    }
    // A field-table key is an AMQP shortstr: amqplib throws a RangeError mid-batch on a longer one.
    // (A UTF-16 unit is at most 3 UTF-8 bytes: shorter names need no counting.)
    if (name.length * 3 > MAX_HEADER_NAME_BYTES && Buffer.byteLength(name) > MAX_HEADER_NAME_BYTES) {
      throw new SwitchyardError(
        "INVALID_HEADER",
        `header "${name.slice(0, 40)}…" is longer than RabbitMQ's ${MAX_HEADER_NAME_BYTES}-byte limit for header names`,
      );
    }
  }
  const headers: Record<string, string> = { ...message.headers, ...extra };
  if (message.key !== undefined && headers[`${RESERVED_PREFIX}partitionkey`] !== message.key) {
    headers[KEY_HEADER] = message.key;
  }
  // The binding maps `datacontenttype` to the AMQP content-type property, not to an application
  // property: one header fewer in the table amqplib encodes per message.
  const contentType = headers[DATACONTENTTYPE];
  if (contentType !== undefined) delete headers[DATACONTENTTYPE];
  const options: Options.Publish = {
    persistent: true,
    messageId: message.id,
    headers: renamePrefix(headers, RESERVED_PREFIX, AMQP_PREFIX),
  };
  if (contentType) options.contentType = contentType;
  const type = message.headers[`${RESERVED_PREFIX}type`];
  if (type) options.type = type;
  return options;
}

/** The wire message and the attempt count of a delivery. */
export function fromAmqp(
  delivery: ConsumeMessage,
  countsRedeliveries: boolean,
): {
  message: WireMessage;
  attempt: number;
} {
  const raw = (delivery.properties.headers ?? {}) as Record<string, unknown>;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (BROKER_HEADERS.has(name)) continue;
    if (typeof value === "string") headers[name] = value;
    else if (Buffer.isBuffer(value)) headers[name] = value.toString("utf8");
    else if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint")
      headers[name] = String(value);
  }
  const wireHeaders = renamePrefix(headers, AMQP_PREFIX, RESERVED_PREFIX);
  // A CloudEvent's content type travels in the content-type property (see toAmqp); a message
  // without CloudEvents attributes keeps it out of the envelope.
  const contentType = delivery.properties.contentType;
  if (
    typeof contentType === "string" &&
    wireHeaders[DATACONTENTTYPE] === undefined &&
    wireHeaders[`${RESERVED_PREFIX}specversion`] !== undefined
  ) {
    wireHeaders[DATACONTENTTYPE] = contentType;
  }
  const before = Number(wireHeaders[ATTEMPT_HEADER] ?? 0) || 0;
  delete wireHeaders[ATTEMPT_HEADER];
  const deliveryCount = Number(raw["x-delivery-count"] ?? 0) || 0;
  const returned = countsRedeliveries ? deliveryCount : delivery.fields.redelivered ? 1 : 0;
  const key = wireHeaders[`${RESERVED_PREFIX}partitionkey`] ?? wireHeaders[KEY_HEADER];
  const id =
    delivery.properties.messageId ??
    wireHeaders[`${RESERVED_PREFIX}id`] ??
    // A foreign message without an id: a stable one from its content, so browsing sees it once.
    `amqp-${createHash("sha256").update(delivery.content).update(JSON.stringify(headers)).digest("hex").slice(0, 32)}`;
  const message: WireMessage = { id: String(id), headers: wireHeaders, body: delivery.content };
  if (key !== undefined) message.key = key;
  return { message, attempt: before + returned + 1 };
}

/**
 * Whether the header table (approximately encoded) fits in `limit` bytes, the room one AMQP frame
 * leaves it. Counted in UTF-16 units first (each at most 3 UTF-8 bytes): the exact byte count is
 * needed only for a table near the limit.
 */
export function headersFit(options: Options.Publish, limit: number): boolean {
  const headers: Record<string, unknown> = options.headers ?? {};
  let units = 0;
  let overhead = 64;
  for (const name in headers) {
    units += name.length + String(headers[name]).length;
    overhead += 6;
  }
  if (overhead + units * 3 <= limit) return true;
  let size = overhead;
  for (const name in headers) size += Buffer.byteLength(name) + Buffer.byteLength(String(headers[name]));
  return size <= limit;
}
