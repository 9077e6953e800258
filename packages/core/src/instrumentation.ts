import type { DeadLetterReason } from "./dead-letter.js";
import type { Envelope } from "./envelope.js";
import type { Delivery, Destination, Source } from "./transport.js";

/**
 * A pino-compatible logger (`logger.warn({ fields }, "message")`). The bus logs connect, close,
 * failed settlements and dead letters through it; never credentials (URLs are redacted).
 * Default: silent.
 */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** Where a publish or a delivery happens: the transport's name (`kafka`, `rabbitmq`, …) and the bus URL. */
export interface InstrumentationScope {
  /** The transport's `name`. */
  readonly system: string;
}

/** How the core settled one delivery. */
export type Settlement =
  | { kind: "ack" }
  /** Returned for redelivery; `error` is the handler's failure when it was a retry. */
  | { kind: "nack"; delayMs?: number; error?: unknown }
  | { kind: "dead-letter"; reason: DeadLetterReason; reasonText?: string; error?: unknown };

/**
 * An opt-in seam for tracing and metrics (`createBus({ instrumentation })`); see
 * `@switchyard/opentelemetry`. Each method is optional. Absent, the bus pays one branch per
 * message and allocates nothing.
 */
export interface Instrumentation {
  /**
   * Wraps one publish call (one or more envelopes to one destination) around `send`, which
   * encodes the envelopes and resolves once the broker accepted them. Envelope fields changed
   * before `send` is called (e.g. `traceparent`/`tracestate`) go on the wire.
   */
  publish?(
    scope: InstrumentationScope,
    destination: Destination,
    envelopes: readonly Envelope[],
    send: () => Promise<void>,
  ): Promise<void>;
  /**
   * Wraps the handling of one decoded delivery around `run` (decode, validation, the handler and
   * its settlement). `run` never rejects.
   */
  process?(
    scope: InstrumentationScope,
    source: Source,
    delivery: Delivery,
    envelope: Envelope,
    run: () => Promise<void>,
  ): Promise<void>;
  /** Called once a delivery was settled (inside `run` when `process` wrapped it). */
  settled?(scope: InstrumentationScope, source: Source, delivery: Delivery, settlement: Settlement): void;
}
