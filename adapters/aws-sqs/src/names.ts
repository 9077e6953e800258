import { createHash } from "node:crypto";

/** SQS queue names: 1–80 characters of [A-Za-z0-9_-], plus `.fifo` for FIFO queues (counted). */
export const MAX_QUEUE_NAME = 80;
const FIFO_SUFFIX = ".fifo";

/**
 * Escapes a Switchyard name into SQS's alphabet, injectively: letters, digits and `-` stay, `_`
 * becomes `__`, `.` becomes `_d`, any other character becomes `_x` and its UTF-8 bytes in hex
 * (`_x2f` for `/`). `orders.dlq` → `orders_ddlq`.
 */
export function escapeName(name: string): string {
  let out = "";
  for (const char of name) {
    if (/[A-Za-z0-9-]/.test(char)) out += char;
    else if (char === "_") out += "__";
    else if (char === ".") out += "_d";
    else out += `_x${Buffer.from(char, "utf8").toString("hex")}`;
  }
  return out;
}

/** Keeps a name within `max` characters: too long, it is cut and ends in 10 hex of its SHA-256. */
function fit(escaped: string, original: string, max: number): string {
  if (escaped.length <= max) return escaped;
  const hash = createHash("sha256").update(original).digest("hex").slice(0, 10);
  return `${escaped.slice(0, max - 12)}-h${hash}`;
}

export function isFifoName(name: string): boolean {
  return name.endsWith(FIFO_SUFFIX);
}

/**
 * The SQS queue behind a Switchyard queue name. A name ending in `.fifo` (or every name, with
 * `fifo: true`) maps to a FIFO queue: the rest is escaped and `.fifo` appended.
 */
export function sqsQueueName(name: string, options: { fifo?: boolean } = {}): string {
  const fifo = options.fifo === true || isFifoName(name);
  const base = isFifoName(name) ? name.slice(0, -FIFO_SUFFIX.length) : name;
  const max = fifo ? MAX_QUEUE_NAME - FIFO_SUFFIX.length : MAX_QUEUE_NAME;
  const mapped = fit(escapeName(base), name, max);
  return fifo ? mapped + FIFO_SUFFIX : mapped;
}

/**
 * Prefix shared by the SQS queues of every subscription of a topic: the escaped topic and `_s`
 * (which no escaped name contains at a token boundary, so topics never share a prefix).
 */
export function subscriptionPrefix(topic: string): string {
  const base = isFifoName(topic) ? topic.slice(0, -FIFO_SUFFIX.length) : topic;
  return `${fit(escapeName(base), topic, 40)}_s`;
}

/** The SQS queue of one topic subscription: `<topic>_s<subscription>` (FIFO when the topic is). */
export function subscriptionQueueName(topic: string, subscription: string, options: { fifo?: boolean } = {}) {
  const fifo = options.fifo === true || isFifoName(topic);
  const max = fifo ? MAX_QUEUE_NAME - FIFO_SUFFIX.length : MAX_QUEUE_NAME;
  const prefix = subscriptionPrefix(topic);
  const mapped = prefix + fit(escapeName(subscription), subscription, max - prefix.length);
  return fifo ? mapped + FIFO_SUFFIX : mapped;
}
