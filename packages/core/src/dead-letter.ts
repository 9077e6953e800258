import { hostname } from "node:os";
import { basename } from "node:path";
import { type Envelope, fromWire, RESERVED_PREFIX, type WireMessage } from "./envelope.js";
import { redactText } from "./errors.js";
import type { Destination, FaultHeaders } from "./transport.js";

/** Why a message was dead-lettered. */
export type DeadLetterReason =
  | "handler-error" // the handler threw a PermanentError
  | "max-attempts" // retries were exhausted (or the broker moved it after too many receives)
  | "decode" // the body or envelope could not be decoded
  | "validation" // the data failed its version's schema
  | "unknown-version" // no handler for this schema version and the policy said dead-letter
  | "unknown-type" // no handler for this message type and the policy said dead-letter
  | "explicit" // the handler called ctx.deadLetter(reason)
  | "expired"; // the broker dead-lettered it when its time-to-live ran out before it was consumed

/** A dead letter as read back from a DLQ: the message and the record of why it failed. */
export interface DeadLetter {
  id: string;
  reason: DeadLetterReason;
  /** Free text given with `ctx.deadLetter(reason)`, or the reason code. */
  reasonText: string;
  error?: { type: string; message: string; stack?: string };
  attempts: number;
  firstFailureAt?: string;
  lastFailureAt?: string;
  destination?: Destination;
  subscription?: string;
  /** The consuming service that dead-lettered it: the `source` of its bus. */
  consumer?: string;
  handler?: string;
  messageType?: string;
  schemaVersion?: number;
  host?: string;
  pid?: number;
  processName?: string;
  deadLetteredAt?: string;
  /** The decoded envelope, when the message could be decoded at all. */
  envelope?: Envelope;
  /** The message exactly as it was, fault headers removed. */
  message: WireMessage;
}

/** Fault header names: CloudEvents extension attributes, so they travel like the others. */
export const FAULT = {
  reason: `${RESERVED_PREFIX}dlreason`,
  reasonText: `${RESERVED_PREFIX}dlreasontext`,
  errorType: `${RESERVED_PREFIX}dlerrortype`,
  errorMessage: `${RESERVED_PREFIX}dlerrormessage`,
  errorStack: `${RESERVED_PREFIX}dlerrorstack`,
  firstFailure: `${RESERVED_PREFIX}dlfirstfailure`,
  lastFailure: `${RESERVED_PREFIX}dllastfailure`,
  attempts: `${RESERVED_PREFIX}dlattempts`,
  destination: `${RESERVED_PREFIX}dldestination`,
  subscription: `${RESERVED_PREFIX}dlsubscription`,
  consumer: `${RESERVED_PREFIX}dlconsumer`,
  handler: `${RESERVED_PREFIX}dlhandler`,
  messageType: `${RESERVED_PREFIX}dlmessagetype`,
  schemaVersion: `${RESERVED_PREFIX}dlschemaversion`,
  host: `${RESERVED_PREFIX}dlhost`,
  pid: `${RESERVED_PREFIX}dlpid`,
  process: `${RESERVED_PREFIX}dlprocess`,
  time: `${RESERVED_PREFIX}dltime`,
} as const;

/** Set on a redriven topic message: only this subscription takes it, the others skip it. */
export const REDRIVE_TO = `${RESERVED_PREFIX}redriveto`;
/** Set on messages published side by side in several versions (a migration). */
export const DUAL_VERSIONS = `${RESERVED_PREFIX}dualversions`;

const STACK_LIMIT = 4096;
const TEXT_LIMIT = 1024;

export interface FaultInput {
  reason: DeadLetterReason;
  reasonText?: string;
  error?: unknown;
  attempts: number;
  firstFailureAt?: Date;
  destination: Destination;
  subscription: string;
  /** The consuming service (its bus's `source`). */
  consumer?: string;
  handler?: string;
  messageType?: string;
  schemaVersion?: number;
}

export function faultHeaders(input: FaultInput): FaultHeaders {
  const now = new Date().toISOString();
  const headers: FaultHeaders = {
    [FAULT.reason]: input.reason,
    [FAULT.reasonText]: truncate(redactText(input.reasonText ?? input.reason), TEXT_LIMIT),
    [FAULT.attempts]: String(input.attempts),
    [FAULT.firstFailure]: (input.firstFailureAt ?? new Date()).toISOString(),
    [FAULT.lastFailure]: now,
    [FAULT.destination]: `${input.destination.kind}:${input.destination.name}`,
    [FAULT.subscription]: input.subscription,
    [FAULT.host]: hostname(),
    [FAULT.pid]: String(process.pid),
    [FAULT.process]: process.argv[1] ? basename(process.argv[1]) : "node",
    [FAULT.time]: now,
  };
  if (input.consumer) headers[FAULT.consumer] = input.consumer;
  if (input.handler) headers[FAULT.handler] = input.handler;
  if (input.messageType) headers[FAULT.messageType] = input.messageType;
  if (input.schemaVersion !== undefined) headers[FAULT.schemaVersion] = String(input.schemaVersion);
  if ("error" in input) {
    const error = input.error;
    if (error instanceof Error) {
      headers[FAULT.errorType] = error.name;
      headers[FAULT.errorMessage] = truncate(redactText(error.message), TEXT_LIMIT);
      if (error.stack) headers[FAULT.errorStack] = truncate(redactText(error.stack), STACK_LIMIT);
    } else {
      // A handler threw a string, an object or undefined: say what it was; there is no stack.
      headers[FAULT.errorType] = "NonError";
      headers[FAULT.errorMessage] = truncate(redactText(describe(error)), TEXT_LIMIT);
    }
  }
  return headers;
}

/** A thrown non-Error as text, never throwing itself (a cycle, a hostile toString). */
function describe(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    if (value !== null && typeof value === "object") return JSON.stringify(value) ?? String(value);
    return String(value);
  } catch {
    return `<${typeof value} that cannot be printed>`;
  }
}

function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

const REASONS = new Set<DeadLetterReason>([
  "handler-error",
  "max-attempts",
  "decode",
  "validation",
  "unknown-version",
  "unknown-type",
  "explicit",
  "expired",
]);

/**
 * Reads a dead letter back. A message without fault headers was moved by the broker itself
 * (e.g. an SQS redrive policy after too many receives): its reason is `max-attempts`.
 */
export function readDeadLetter(message: WireMessage, brokerAttempts = 0): DeadLetter {
  const h = message.headers;
  const clean: Record<string, string> = {};
  for (const [name, value] of Object.entries(h)) {
    if (!name.startsWith(`${RESERVED_PREFIX}dl`) && name !== REDRIVE_TO) clean[name] = value;
  }
  const original: WireMessage = { id: message.id, headers: clean, body: message.body };
  if (message.key !== undefined) original.key = message.key;
  const reasonHeader = h[FAULT.reason] as DeadLetterReason | undefined;
  const reason: DeadLetterReason = reasonHeader && REASONS.has(reasonHeader) ? reasonHeader : "max-attempts";
  const letter: DeadLetter = {
    id: message.id,
    reason,
    reasonText: h[FAULT.reasonText] ?? reason,
    attempts: h[FAULT.attempts] ? Number(h[FAULT.attempts]) : brokerAttempts,
    message: original,
  };
  if (h[FAULT.errorType] !== undefined) {
    letter.error = { type: h[FAULT.errorType]!, message: h[FAULT.errorMessage] ?? "" };
    if (h[FAULT.errorStack]) letter.error.stack = h[FAULT.errorStack];
  }
  const destination = h[FAULT.destination];
  if (destination) {
    const [kind, ...rest] = destination.split(":");
    if (kind === "queue" || kind === "topic") letter.destination = { kind, name: rest.join(":") };
  }
  const optional = {
    firstFailureAt: h[FAULT.firstFailure],
    lastFailureAt: h[FAULT.lastFailure],
    subscription: h[FAULT.subscription],
    consumer: h[FAULT.consumer],
    handler: h[FAULT.handler],
    messageType: h[FAULT.messageType],
    host: h[FAULT.host],
    processName: h[FAULT.process],
    deadLetteredAt: h[FAULT.time],
  };
  for (const [field, value] of Object.entries(optional))
    if (value !== undefined) (letter as any)[field] = value;
  if (h[FAULT.schemaVersion] !== undefined) letter.schemaVersion = Number(h[FAULT.schemaVersion]);
  if (h[FAULT.pid] !== undefined) letter.pid = Number(h[FAULT.pid]);
  try {
    letter.envelope = fromWire(original);
    // The envelope id names the letter, also where the transport's own message id is a position
    // (a structured-mode Kafka record carries its id in the value, not in a header).
    letter.id = letter.envelope.id;
  } catch {
    // Undecodable (that may be why it is here): the raw message is still available.
  }
  return letter;
}
