import { packHeaders, SwitchyardError, unpackHeaders, type WireMessage } from "@switchyard/core";

/**
 * How a WireMessage travels as an SQS (or SNS) message. SQS bodies are XML-safe Unicode text and
 * a message carries at most 10 attributes, so:
 * - `sy-headers` (String): every envelope header, packed as one JSON object (never dropped);
 * - `sy-id` (String): the wire id; `sy-key` (String): the ordering key, when there is one;
 * - `sy-encoding` (String): `base64` when the body is not plain text SQS can carry (binary,
 *   control characters, invalid UTF-8), `empty` for an empty body (SQS refuses empty bodies);
 *   absent when the body is sent as the UTF-8 text it already is.
 * Only String attributes are used: Binary attributes do not survive SNS raw delivery.
 */
export const ATTR = {
  headers: "sy-headers",
  id: "sy-id",
  key: "sy-key",
  encoding: "sy-encoding",
} as const;

export interface EncodedMessage {
  body: string;
  attributes: Record<string, { DataType: "String"; StringValue: string }>;
  /** Bytes SQS counts against its size limit: body plus attribute names, types and values. */
  size: number;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
// Characters SQS accepts in a body (#x9 #xA #x20–#xD7FF #xE000–#xFFFD #x10000–#x10FFFF); #xD is
// left out on purpose: XML-based paths (SNS, the query protocol) turn CR LF into LF.
const UNSAFE_TEXT = /[^\t\n\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

function asText(body: Uint8Array): string | undefined {
  try {
    const text = strictUtf8.decode(body);
    return UNSAFE_TEXT.test(text) ? undefined : text;
  } catch {
    return undefined;
  }
}

export function encodeMessage(message: WireMessage, maxBytes: number, destination: string): EncodedMessage {
  const attributes: EncodedMessage["attributes"] = {
    [ATTR.headers]: { DataType: "String", StringValue: packHeaders(message.headers) },
    [ATTR.id]: { DataType: "String", StringValue: message.id },
  };
  if (message.key !== undefined) attributes[ATTR.key] = { DataType: "String", StringValue: message.key };
  let body: string;
  if (message.body.byteLength === 0) {
    body = "-";
    attributes[ATTR.encoding] = { DataType: "String", StringValue: "empty" };
  } else {
    const text = asText(message.body);
    if (text !== undefined) body = text;
    else {
      body = Buffer.from(message.body).toString("base64");
      attributes[ATTR.encoding] = { DataType: "String", StringValue: "base64" };
    }
  }
  let size = Buffer.byteLength(body);
  for (const [name, value] of Object.entries(attributes)) {
    size += Buffer.byteLength(name) + value.DataType.length + Buffer.byteLength(value.StringValue);
  }
  if (size > maxBytes) {
    throw new SwitchyardError(
      "MESSAGE_TOO_LARGE",
      `message ${message.id} is ${size} bytes as an SQS message (body encoding and attributes included); ${destination} allows ${maxBytes}`,
      { details: { size, limit: maxBytes } },
    );
  }
  return { body, attributes, size };
}

export interface ReceivedAttributes {
  [name: string]: {
    DataType?: string | undefined;
    StringValue?: string | undefined;
    BinaryValue?: Uint8Array | undefined;
  };
}

/**
 * Rebuilds the wire message. A message from a foreign producer (no `sy-` attributes) becomes its
 * body as UTF-8 bytes with its String/Number attributes as headers, so the core can dead-letter it
 * as `decode` with everything it had. Malformed Switchyard attributes raise DECODE_FAILED.
 */
export function decodeMessage(
  body: string,
  attributes: ReceivedAttributes | undefined,
  fallbackId: string,
): WireMessage {
  const attrs = attributes ?? {};
  const packed = attrs[ATTR.headers]?.StringValue;
  if (packed === undefined) {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(attrs)) {
      if (value.StringValue !== undefined) headers[name] = value.StringValue;
      else if (value.BinaryValue !== undefined)
        headers[name] = Buffer.from(value.BinaryValue).toString("base64");
    }
    return { id: fallbackId, headers, body: new Uint8Array(Buffer.from(body, "utf8")) };
  }
  let headers: Record<string, string>;
  try {
    headers = unpackHeaders(packed);
  } catch (cause) {
    throw new SwitchyardError("DECODE_FAILED", `attribute ${ATTR.headers} is not packed headers`, { cause });
  }
  const encoding = attrs[ATTR.encoding]?.StringValue;
  let bytes: Uint8Array;
  if (encoding === "empty") bytes = new Uint8Array(0);
  else if (encoding === "base64") bytes = new Uint8Array(Buffer.from(body, "base64"));
  else if (encoding === undefined) bytes = new Uint8Array(Buffer.from(body, "utf8"));
  else throw new SwitchyardError("DECODE_FAILED", `unknown body encoding "${encoding}"`);
  const message: WireMessage = { id: attrs[ATTR.id]?.StringValue ?? fallbackId, headers, body: bytes };
  const key = attrs[ATTR.key]?.StringValue;
  if (key !== undefined) message.key = key;
  return message;
}

/**
 * The largest envelope (body plus header bytes, as the core measures it) guaranteed to fit an SQS
 * message of `sqsLimit` bytes in the worst case: a binary body costs 4/3 in base64, and packing
 * the headers into JSON plus our own attributes needs some room (4 KiB kept for both).
 */
export function envelopeLimit(sqsLimit: number): number {
  return Math.floor(((sqsLimit - 4096) * 3) / 4);
}
