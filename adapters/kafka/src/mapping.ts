// How a Switchyard wire message maps onto a Kafka record (CloudEvents Kafka binding, binary mode):
// `ce_*` attributes and user headers are Kafka headers (UTF-8), the envelope key is the record key,
// the data is the record value. The adapter's own bookkeeping travels in `ce_x*` headers, which the
// core's fromWire ignores and which are removed before a message reaches the core.
import { isStructured, SwitchyardError, type WireMessage } from "@switchyard/core";
import type { IncomingRecord, OutgoingRecord } from "./driver.js";

/** Delivery attempt of a retry copy (the first delivery has none: attempt 1). */
export const ATTEMPT_HEADER = "ce_xattempt";
/** Epoch milliseconds before which a retry copy must not be delivered. */
export const DUE_HEADER = "ce_xdue";
/** The message id when it is not the `ce_id` attribute (foreign or hand-made messages). */
export const ID_HEADER = "ce_xid";
const INTERNAL = [ATTEMPT_HEADER, DUE_HEADER, ID_HEADER];

/**
 * Where the message was first read: kept on retries and copied into dead letters by the core, so a
 * dead-letter record names its original topic, partition and offset. The `ce_dl` prefix makes
 * `readDeadLetter` drop them from the redriven message.
 */
export const ORIGIN_HEADERS = {
  topic: "ce_dlkafkatopic",
  partition: "ce_dlkafkapartition",
  offset: "ce_dlkafkaoffset",
} as const;

const CE_ID = "ce_id";
const CONTENT_TYPE = "content-type";

/** Kafka topic names: ASCII letters, digits, '.', '_', '-', at most 249 characters. */
export function assertTopicName(name: string): void {
  if (!/^[a-zA-Z0-9._-]{1,249}$/.test(name) || name === "." || name === "..") {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `kafka: "${name}" is not a valid topic name (letters, digits, '.', '_', '-'; at most 249)`,
    );
  }
}

function buffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Header bytes that repeat on every record — names, and the content type of a structured event —
 * encoded once and shared (the clients only read a record's buffers). Bounded: a producer of
 * unbounded distinct names or content types only stops caching.
 */
const encoded = new Map<string, Buffer>();
/** UTF-8 bytes of a header name or a repeating value. */
export function headerBytes(text: string): Buffer {
  let bytes = encoded.get(text);
  if (bytes === undefined) {
    bytes = Buffer.from(text, "utf8");
    if (encoded.size < 1024) encoded.set(text, bytes);
  }
  return bytes;
}

export function toRecord(
  topic: string,
  message: WireMessage,
  extra?: Record<string, string>,
): OutgoingRecord {
  const headers: Array<[string, Buffer]> = [];
  for (const name in message.headers) {
    if (INTERNAL.includes(name)) continue;
    const value = message.headers[name]!;
    headers.push([name, name === CONTENT_TYPE ? headerBytes(value) : Buffer.from(value, "utf8")]);
  }
  // A structured event carries its id in the value; others need it in a header of ours.
  if (message.headers[CE_ID] !== message.id && !isStructured(message))
    headers.push([ID_HEADER, Buffer.from(message.id, "utf8")]);
  if (extra) for (const name in extra) headers.push([name, Buffer.from(extra[name]!, "utf8")]);
  // A tombstone is a record with a null value: what compaction deletes a key by.
  const value = message.tombstone ? null : buffer(message.body);
  const record: OutgoingRecord = { topic, value, headers };
  if (message.key !== undefined) record.key = Buffer.from(message.key, "utf8");
  return record;
}

/** Bytes a record adds to a produce request, roughly: what we count against the batch limit. */
export function recordBytes(record: OutgoingRecord): number {
  let bytes = (record.value?.byteLength ?? 0) + (record.key?.byteLength ?? 0) + 24;
  for (const [name, value] of record.headers) bytes += Buffer.byteLength(name) + value.byteLength + 4;
  return bytes;
}

/**
 * Where a message was first read, for its retry copies and its dead letter: a retry copy carries
 * the first origin in its headers already; a first delivery's origin is the record itself. Built
 * only when needed (a nack or a dead letter), never per delivery.
 */
export function originHeaders(
  record: Pick<IncomingRecord, "topic" | "partition" | "offset">,
  message: WireMessage,
): Record<string, string> {
  if (message.headers[ORIGIN_HEADERS.topic] !== undefined) return {};
  return {
    [ORIGIN_HEADERS.topic]: record.topic,
    [ORIGIN_HEADERS.partition]: String(record.partition),
    [ORIGIN_HEADERS.offset]: String(record.offset),
  };
}

export interface Decoded {
  message: WireMessage;
  attempt: number;
  /** Epoch ms before which it must not be delivered (retry copies only). */
  dueAt: number | undefined;
}

const EMPTY = new Uint8Array(0);

/**
 * Header names, and content types, decoded before: the same few repeat on every record, so a
 * repeat costs a byte comparison instead of a UTF-8 decode and a new string. Bounded: past 64
 * distinct ones, the rest are decoded each time.
 */
const decoded: Array<{ bytes: Buffer; text: string }> = [];
function headerText(bytes: Buffer): string {
  for (const entry of decoded) {
    if (entry.bytes.length === bytes.length && entry.bytes.equals(bytes)) return entry.text;
  }
  const text = bytes.toString("utf8");
  // A copy: the record's bytes are a view into a whole fetch, which the cache must not keep alive.
  if (decoded.length < 64) decoded.push({ bytes: Buffer.from(bytes), text });
  return text;
}

/** The wire message of a fetched record, and the attempt and due time our own headers carry. */
export function fromRecord(record: IncomingRecord): Decoded {
  // The adapter's own headers are read aside, never added (a `delete` would turn the object into a
  // slow dictionary on the consume path).
  const headers: Record<string, string> = {};
  let attemptHeader: string | undefined;
  let dueHeader: string | undefined;
  let idHeader: string | undefined;
  for (const [rawName, rawValue] of record.headerEntries) {
    const name = typeof rawName === "string" ? rawName : headerText(rawName);
    const value = !rawValue ? "" : name === CONTENT_TYPE ? headerText(rawValue) : rawValue.toString("utf8");
    if (name === ATTEMPT_HEADER) attemptHeader = value;
    else if (name === DUE_HEADER) dueHeader = value;
    else if (name === ID_HEADER) idHeader = value;
    else headers[name] = value;
  }
  const attempt = attemptHeader === undefined ? 1 : Number(attemptHeader);
  const due = dueHeader === undefined ? undefined : Number(dueHeader);
  const id = headers[CE_ID] ?? idHeader ?? `kafka:${record.topic}/${record.partition}/${record.offset}`;
  const message: WireMessage = { id, headers, body: record.value ?? EMPTY };
  if (record.key) message.key = record.key.toString("utf8");
  // A null value (not an empty one) is a tombstone: the drivers report it as null or undefined.
  if (record.value == null) message.tombstone = true;
  return {
    message,
    attempt: Number.isInteger(attempt) && attempt >= 1 ? attempt : 1,
    dueAt: due !== undefined && Number.isFinite(due) ? due : undefined,
  };
}
