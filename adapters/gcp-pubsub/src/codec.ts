import { RESERVED_PREFIX, SwitchyardError, type WireMessage } from "@switchyard/core";

/** Pub/Sub's limits, checked before anything is sent. */
export const LIMITS = {
  /** Data plus attributes plus ordering key of one message (the service says 10 MB). */
  messageBytes: 10_000_000,
  attributes: 100,
  attributeKeyBytes: 256,
  attributeValueBytes: 1024,
  orderingKeyBytes: 1024,
} as const;

/** The CloudEvents Pub/Sub binding prefixes attributes with `ce-`; the core's wire uses `ce_`. */
export const CE = "ce-";
/** Set when some attributes did not fit: their JSON (this many bytes) precedes the data. */
export const PACKED = "ce-xpacked";
/** Set on a message with neither data nor attributes, which Pub/Sub would refuse. */
export const EMPTY = "ce-xempty";
/** User headers Pub/Sub would misread (`ce-…`) or refuse (`goog…`) travel behind this prefix. */
export const ESCAPED = "ce-xu-";
/** Attributes the service adds when its dead-letter policy forwards a message. */
export const DEAD_LETTER_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount";

export interface PubsubMessage {
  data: Buffer;
  attributes: Record<string, string>;
  orderingKey?: string;
}

const bytes = (text: string) => Buffer.byteLength(text, "utf8");

function attributeName(header: string): string {
  if (header.startsWith(RESERVED_PREFIX)) return CE + header.slice(RESERVED_PREFIX.length);
  const lower = header.toLowerCase();
  if (lower.startsWith(CE) || lower.startsWith("goog")) return ESCAPED + header;
  return header;
}

function headerName(attribute: string): string {
  if (attribute.startsWith(ESCAPED)) return attribute.slice(ESCAPED.length);
  if (attribute.startsWith(CE)) return RESERVED_PREFIX + attribute.slice(CE.length);
  return attribute;
}

/** UTF-16 length × 3 bounds the UTF-8 size: below a limit by that bound, no need to measure. */
const fits = (text: string, limit: number) => text.length * 3 <= limit || bytes(text) <= limit;

/**
 * Wire message → Pub/Sub message. Headers become attributes (`ce_x` → `ce-x`); those that break
 * Pub/Sub's limits (over 100, key > 256 bytes, value > 1024 bytes) are packed as JSON in front of
 * the data, so nothing is dropped. Refuses what cannot fit at all with a typed error.
 */
export function encode(message: WireMessage): PubsubMessage {
  // The common case in one pass: every header fits as an attribute as it is.
  const attributes: Record<string, string> = {};
  let count = 0;
  let bound = 0;
  let packing = false;
  for (const header in message.headers) {
    const value = message.headers[header]!;
    const name = attributeName(header);
    if (
      ++count > LIMITS.attributes ||
      !fits(name, LIMITS.attributeKeyBytes) ||
      !fits(value, LIMITS.attributeValueBytes)
    ) {
      packing = true;
      break;
    }
    attributes[name] = value;
    bound += (name.length + value.length) * 3;
  }
  return packing ? encodePacked(message) : finish(message, bodyBuffer(message), attributes, count, bound);
}

function bodyBuffer(message: WireMessage): Buffer {
  return Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
}

/** Some attributes break the limits: CloudEvents attributes stay attributes, the rest is packed. */
function encodePacked(message: WireMessage): PubsubMessage {
  const entries = Object.entries(message.headers).map(
    ([name, value]) => [attributeName(name), value] as const,
  );
  // CloudEvents attributes first, so they stay visible as attributes when some must be packed.
  entries.sort((a, b) => Number(b[0].startsWith(CE)) - Number(a[0].startsWith(CE)));
  const all = entries.length <= LIMITS.attributes;
  const attributes: Record<string, string> = {};
  const overflow: Record<string, string> = {};
  let plain = 0;
  let bound = 0;
  for (const [name, value] of entries) {
    const ok = fits(name, LIMITS.attributeKeyBytes) && fits(value, LIMITS.attributeValueBytes);
    if (ok && (all || plain < LIMITS.attributes - 1)) {
      attributes[name] = value;
      plain++;
      bound += (name.length + value.length) * 3;
    } else {
      overflow[name] = value;
    }
  }
  let data = bodyBuffer(message);
  if (Object.keys(overflow).length > 0) {
    const packed = Buffer.from(JSON.stringify(overflow), "utf8");
    data = Buffer.concat([packed, data]);
    attributes[PACKED] = String(packed.byteLength);
    bound += (PACKED.length + attributes[PACKED].length) * 3;
  }
  return finish(message, data, attributes, plain, bound);
}

/** Marks an empty message, sets the ordering key and checks the total size. */
function finish(
  message: WireMessage,
  data: Buffer,
  attributes: Record<string, string>,
  plain: number,
  bound: number,
): PubsubMessage {
  if (data.byteLength === 0 && plain === 0) attributes[EMPTY] = "1";
  const out: PubsubMessage = { data, attributes };
  let keyBytes = 0;
  if (message.key !== undefined && message.key !== "") {
    keyBytes = bytes(message.key);
    if (keyBytes > LIMITS.orderingKeyBytes) {
      throw new SwitchyardError(
        "INVALID_HEADER",
        `message ${message.id}: key is ${keyBytes} bytes; Pub/Sub ordering keys allow ${LIMITS.orderingKeyBytes}`,
      );
    }
    out.orderingKey = message.key;
  }
  if (data.byteLength + bound + keyBytes + 3 > LIMITS.messageBytes) {
    let size = data.byteLength + keyBytes;
    for (const name in attributes) size += bytes(name) + bytes(attributes[name]!);
    if (size > LIMITS.messageBytes) {
      throw new SwitchyardError(
        "MESSAGE_TOO_LARGE",
        `message ${message.id} is ${size} bytes as a Pub/Sub message; Pub/Sub allows ${LIMITS.messageBytes}`,
        { details: { size, limit: LIMITS.messageBytes } },
      );
    }
  }
  return out;
}

/** Pub/Sub message → wire message. Foreign messages come through as they are (the core decides). */
export function decode(message: {
  id: string;
  data: Buffer;
  attributes: Record<string, string>;
  orderingKey?: string;
}): WireMessage {
  let body: Uint8Array = message.data;
  let attributes = message.attributes;
  const packed = attributes[PACKED];
  if (packed !== undefined) {
    const length = Number(packed);
    try {
      if (!Number.isInteger(length) || length < 0 || length > body.byteLength) throw new Error("bad length");
      const parsed: unknown = JSON.parse(Buffer.from(body.buffer, body.byteOffset, length).toString("utf8"));
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
        throw new Error("not an object");
      attributes = { ...attributes };
      delete attributes[PACKED];
      for (const [name, value] of Object.entries(parsed))
        if (typeof value === "string") attributes[name] = value;
      body = body.subarray(length);
    } catch {
      // Not ours after all: hand it over untouched and let the core judge it.
      attributes = message.attributes;
    }
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (name === EMPTY) continue;
    headers[headerName(name)] = value;
  }
  // Moved by the service's dead-letter policy (not by the core): keep the count it reports.
  const forwarded = attributes[DEAD_LETTER_COUNT];
  if (forwarded !== undefined && headers[`${RESERVED_PREFIX}dlattempts`] === undefined) {
    headers[`${RESERVED_PREFIX}dlattempts`] = forwarded;
  }
  const wire: WireMessage = { id: headers[`${RESERVED_PREFIX}id`] ?? message.id, headers, body };
  if (message.orderingKey) wire.key = message.orderingKey;
  return wire;
}
