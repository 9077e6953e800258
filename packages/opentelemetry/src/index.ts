import {
  type Attributes,
  type Context,
  type Counter,
  context,
  createTraceState,
  type Histogram,
  type Link,
  type MeterProvider,
  metrics,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type TracerProvider,
  trace,
  type UpDownCounter,
} from "@opentelemetry/api";
import { ATTR_ERROR_TYPE } from "@opentelemetry/semantic-conventions";
import type {
  Bus,
  DeadLetterMonitor,
  DeadLetterTarget,
  Delivery,
  Destination,
  Envelope,
  Instrumentation,
  InstrumentationScope,
  Settlement,
  Source,
} from "@switchyard/core";

const NAME = "@switchyard/opentelemetry";
const VERSION = "0.1.0";

// Messaging attributes are still "development" in the semantic conventions, so they live in the
// package's incubating entry point, which may change between minor versions; as the conventions
// advise, we copy the names we use.
export const ATTR = {
  SYSTEM: "messaging.system",
  DESTINATION: "messaging.destination.name",
  SUBSCRIPTION: "messaging.destination.subscription.name",
  CONSUMER_GROUP: "messaging.consumer.group.name",
  OPERATION_TYPE: "messaging.operation.type",
  OPERATION_NAME: "messaging.operation.name",
  MESSAGE_ID: "messaging.message.id",
  CONVERSATION_ID: "messaging.message.conversation_id",
  BATCH_COUNT: "messaging.batch.message_count",
  CE_ID: "cloudevents.event_id",
  CE_TYPE: "cloudevents.event_type",
  CE_SOURCE: "cloudevents.event_source",
  ERROR_TYPE: ATTR_ERROR_TYPE,
  /** Switchyard's own (no convention exists for them). */
  ATTEMPT: "switchyard.delivery.attempt",
  DEAD_LETTER_REASON: "switchyard.dead_letter.reason",
  NACK_DELAY_MS: "switchyard.nack.delay_ms",
  RETRY_CAUSE: "switchyard.retry.cause",
  OUTBOX_TABLE: "switchyard.outbox.table",
} as const;

export const METRIC = {
  SENT: "messaging.client.sent.messages",
  CONSUMED: "messaging.client.consumed.messages",
  OPERATION_DURATION: "messaging.client.operation.duration",
  PROCESS_DURATION: "messaging.process.duration",
  RETRIES: "switchyard.messaging.retries",
  DEAD_LETTERS: "switchyard.messaging.dead_letters",
  IN_FLIGHT: "switchyard.messaging.process.active",
  DEAD_LETTER_DEPTH: "switchyard.messaging.dead_letter.depth",
  CONSUMER_LAG: "switchyard.messaging.consumer.lag",
  OUTBOX_LAG: "switchyard.outbox.lag",
  OUTBOX_LAG_AGE: "switchyard.outbox.lag.age",
  OUTBOX_PARKED: "switchyard.outbox.parked",
} as const;

export interface OtelOptions {
  /** Default: the global tracer provider (`trace.setGlobalTracerProvider`, e.g. by the NodeSDK). */
  tracerProvider?: TracerProvider;
  /** Default: the global meter provider. */
  meterProvider?: MeterProvider;
  /**
   * How a `process` span relates to the producer's span carried in the message:
   * `parent` (default) makes it a child, so producer and consumer share one trace (and links it
   * too, as the conventions recommend); `link` starts it in the consumer's own context (a new trace
   * when there is none) with only a link to the producer span.
   */
  consumerSpan?: "parent" | "link";
  /**
   * `OTEL_SEMCONV_STABILITY_OPT_IN` (default: the environment variable). Spans always carry the
   * current messaging conventions; with `messaging/dup` they also carry the pre-1.24 names
   * (`messaging.operation`, `messaging.destination`, `messaging.destination_kind`,
   * `messaging.message_id`) for dashboards not migrated yet.
   */
  semconvStabilityOptIn?: string;
}

interface Processing {
  span: Span;
  started: number;
  attributes: Attributes;
  error?: string;
}

/** The instrumentation for `createBus({ instrumentation: otel() })`: spans and metrics. */
export function otel(options: OtelOptions = {}): Instrumentation {
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(NAME, VERSION);
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(NAME, VERSION);
  const optIn = (options.semconvStabilityOptIn ?? process.env.OTEL_SEMCONV_STABILITY_OPT_IN ?? "")
    .split(",")
    .map((s) => s.trim());
  const legacy = optIn.includes("messaging/dup");
  const parentMode = (options.consumerSpan ?? "parent") === "parent";

  const sent: Counter = meter.createCounter(METRIC.SENT, {
    description: "Messages a producer sent (accepted by the broker, or failed with error.type)",
    unit: "{message}",
  });
  const consumed: Counter = meter.createCounter(METRIC.CONSUMED, {
    description: "Messages delivered to a handler",
    unit: "{message}",
  });
  const operationDuration: Histogram = meter.createHistogram(METRIC.OPERATION_DURATION, {
    description: "Duration of a publish, until the broker accepted it",
    unit: "s",
  });
  const processDuration: Histogram = meter.createHistogram(METRIC.PROCESS_DURATION, {
    description: "Duration of the handling of one message, settlement included",
    unit: "s",
  });
  const retries: Counter = meter.createCounter(METRIC.RETRIES, {
    description: "Messages returned for redelivery (a handler failure, or an explicit nack)",
    unit: "{message}",
  });
  const deadLetters: Counter = meter.createCounter(METRIC.DEAD_LETTERS, {
    description: "Messages moved to a dead-letter queue, by reason",
    unit: "{message}",
  });
  const inFlight: UpDownCounter = meter.createUpDownCounter(METRIC.IN_FLIGHT, {
    description: "Handlers running now",
    unit: "{message}",
  });

  const processing = new WeakMap<Delivery, Processing>();

  const consumerAttributes = (scope: InstrumentationScope, source: Source): Attributes => {
    const attributes: Attributes = { [ATTR.SYSTEM]: scope.system, [ATTR.DESTINATION]: source.name };
    if (source.kind === "topic") {
      attributes[ATTR.SUBSCRIPTION] = source.subscription;
      attributes[ATTR.CONSUMER_GROUP] = source.subscription;
    }
    return attributes;
  };

  return {
    async publish(scope, destination, envelopes, send) {
      const operation = destination.kind === "topic" ? "publish" : "send";
      const attributes: Attributes = {
        [ATTR.SYSTEM]: scope.system,
        [ATTR.DESTINATION]: destination.name,
        [ATTR.OPERATION_NAME]: operation,
      };
      const spanAttributes: Attributes = { ...attributes, [ATTR.OPERATION_TYPE]: "send" };
      const first = envelopes[0];
      if (envelopes.length === 1 && first) {
        spanAttributes[ATTR.MESSAGE_ID] = first.id;
        spanAttributes[ATTR.CE_ID] = first.id;
        spanAttributes[ATTR.CE_TYPE] = first.type;
        spanAttributes[ATTR.CE_SOURCE] = first.source;
        if (first.correlationId) spanAttributes[ATTR.CONVERSATION_ID] = first.correlationId;
      } else {
        spanAttributes[ATTR.BATCH_COUNT] = envelopes.length;
      }
      if (legacy) Object.assign(spanAttributes, legacyAttributes("publish", destination, first, envelopes));
      // The active span is the parent; failing one, a trace context the caller put on the message.
      let parent = context.active();
      if (!trace.getSpanContext(parent) && first?.traceparent) {
        const carried = parseTraceContext(first.traceparent, first.tracestate);
        if (carried) parent = trace.setSpanContext(parent, carried);
      }
      const span = tracer.startSpan(
        `${operation} ${destination.name}`,
        { kind: SpanKind.PRODUCER, attributes: spanAttributes },
        parent,
      );
      const spanContext = span.spanContext();
      if (trace.isSpanContextValid(spanContext)) {
        const traceparent = formatTraceparent(spanContext);
        const tracestate = spanContext.traceState?.serialize();
        for (const envelope of envelopes) {
          envelope.traceparent = traceparent;
          if (tracestate) envelope.tracestate = tracestate;
          else delete envelope.tracestate;
        }
      }
      const started = performance.now();
      try {
        await context.with(trace.setSpan(parent, span), send);
      } catch (error) {
        const type = errorType(error);
        recordError(span, error, type);
        attributes[ATTR.ERROR_TYPE] = type;
        sent.add(envelopes.length, attributes);
        operationDuration.record((performance.now() - started) / 1000, attributes);
        span.end();
        throw error;
      }
      sent.add(envelopes.length, attributes);
      operationDuration.record((performance.now() - started) / 1000, attributes);
      span.end();
    },

    async process(scope, source, delivery, envelope, run) {
      const attributes = consumerAttributes(scope, source);
      attributes[ATTR.OPERATION_NAME] = "process";
      const spanAttributes: Attributes = {
        ...attributes,
        [ATTR.OPERATION_TYPE]: "process",
        [ATTR.MESSAGE_ID]: envelope.id,
        [ATTR.CE_ID]: envelope.id,
        [ATTR.CE_TYPE]: envelope.type,
        [ATTR.CE_SOURCE]: envelope.source,
        [ATTR.ATTEMPT]: delivery.attempt,
      };
      if (envelope.correlationId) spanAttributes[ATTR.CONVERSATION_ID] = envelope.correlationId;
      if (legacy) Object.assign(spanAttributes, legacyAttributes("process", source, envelope, [envelope]));
      const producer = envelope.traceparent
        ? parseTraceContext(envelope.traceparent, envelope.tracestate)
        : undefined;
      let parent: Context = context.active();
      const links: Link[] = [];
      if (producer) {
        links.push({ context: producer });
        if (parentMode) parent = trace.setSpanContext(ROOT_CONTEXT, producer);
      }
      const span = tracer.startSpan(
        `process ${source.name}`,
        { kind: SpanKind.CONSUMER, attributes: spanAttributes, links },
        parent,
      );
      const state: Processing = { span, started: performance.now(), attributes };
      processing.set(delivery, state);
      consumed.add(1, attributes);
      inFlight.add(1, attributes);
      try {
        await context.with(trace.setSpan(parent, span), run);
      } finally {
        processing.delete(delivery);
        inFlight.add(-1, attributes);
        const durationAttributes =
          state.error === undefined ? attributes : { ...attributes, [ATTR.ERROR_TYPE]: state.error };
        processDuration.record((performance.now() - state.started) / 1000, durationAttributes);
        span.end();
      }
    },

    settled(scope, source, delivery, settlement: Settlement) {
      const state = processing.get(delivery);
      const attributes = state?.attributes ?? consumerAttributes(scope, source);
      const span = state?.span;
      if (settlement.kind === "ack") {
        span?.addEvent("ack");
        return;
      }
      const error = settlement.error;
      if (error !== undefined && state) {
        state.error = errorType(error);
        recordError(state.span, error, state.error);
      }
      if (settlement.kind === "nack") {
        span?.addEvent(
          "nack",
          settlement.delayMs === undefined ? {} : { [ATTR.NACK_DELAY_MS]: settlement.delayMs },
        );
        retries.add(1, { ...attributes, [ATTR.RETRY_CAUSE]: error === undefined ? "nack" : "error" });
        return;
      }
      span?.addEvent("dead-letter", {
        [ATTR.DEAD_LETTER_REASON]: settlement.reason,
        ...(settlement.reasonText ? { "switchyard.dead_letter.reason_text": settlement.reasonText } : {}),
      });
      deadLetters.add(1, { ...attributes, [ATTR.DEAD_LETTER_REASON]: settlement.reason });
    },
  };
}

/**
 * Reports the depths a `monitorDeadLetters(...)` monitor counted as the observable gauge
 * `switchyard.messaging.dead_letter.depth` (attribute `messaging.destination.name`: the DLQ).
 * Returns a function that stops reporting.
 */
export function deadLetterDepthGauge(
  monitor: Pick<DeadLetterMonitor, "depths">,
  options: { meterProvider?: MeterProvider; system?: string } = {},
): () => void {
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(NAME, VERSION);
  const gauge = meter.createObservableGauge(METRIC.DEAD_LETTER_DEPTH, {
    description: "Letters waiting in a dead-letter queue, as last counted",
    unit: "{message}",
  });
  const observe = (result: { observe(value: number, attributes?: Attributes): void }) => {
    for (const [queue, depth] of monitor.depths) {
      result.observe(depth, {
        [ATTR.DESTINATION]: queue,
        ...(options.system ? { [ATTR.SYSTEM]: options.system } : {}),
      });
    }
  };
  gauge.addCallback(observe);
  return () => gauge.removeCallback(observe);
}

export interface ConsumerLagGaugeOptions {
  /** The subscriptions and queues to report: `{ topic, subscription }` or `{ queue }`. */
  sources: readonly DeadLetterTarget[];
  meterProvider?: MeterProvider;
  /** A backlog that could not be read (the broker is away); that source is left out of the round. */
  onError?(error: unknown, source: DeadLetterTarget): void;
}

/**
 * Reports the backlog of some subscriptions and queues — messages published and not settled yet,
 * as the broker counts them (`bus.backlog()`) — as the observable gauge
 * `switchyard.messaging.consumer.lag`, with the consumer's attributes (`messaging.system`,
 * `messaging.destination.name`, and for a topic `messaging.destination.subscription.name` and
 * `messaging.consumer.group.name`). The broker is asked at each collection (each export interval);
 * sources whose transport reports no backlog are left out. Returns a function that stops reporting.
 */
export function consumerLagGauge(bus: Bus, options: ConsumerLagGaugeOptions): () => void {
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(NAME, VERSION);
  const gauge = meter.createObservableGauge(METRIC.CONSUMER_LAG, {
    description:
      "Messages published to a subscription or queue and not settled yet, as the broker counts them",
    unit: "{message}",
  });
  const observe = async (result: { observe(value: number, attributes?: Attributes): void }) => {
    if (bus.closed) return;
    await Promise.all(
      options.sources.map(async (target) => {
        let system: string;
        let backlog: number | undefined;
        try {
          system = (await bus.transport()).name;
          backlog =
            "queue" in target
              ? await bus.backlog({ queue: target.queue })
              : await bus.backlog(target.topic, target.subscription);
        } catch (error) {
          options.onError?.(error, target);
          return;
        }
        if (backlog === undefined) return;
        const attributes: Attributes =
          "queue" in target
            ? { [ATTR.SYSTEM]: system, [ATTR.DESTINATION]: target.queue }
            : {
                [ATTR.SYSTEM]: system,
                [ATTR.DESTINATION]: target.topic,
                [ATTR.SUBSCRIPTION]: target.subscription,
                [ATTR.CONSUMER_GROUP]: target.subscription,
              };
        result.observe(backlog, attributes);
      }),
    );
  };
  gauge.addCallback(observe);
  return () => gauge.removeCallback(observe);
}

/** What the outbox gauge reads: an `@switchyard/outbox` outbox (PostgreSQL or SQLite). */
export interface OutboxLagSource {
  readonly table: string;
  lag(): Promise<{ unsent: number; oldestAgeMs: number; parked?: number }>;
}

export interface OutboxLagGaugeOptions {
  /** The outboxes to report (each one's `lag()` is asked once per collection). */
  outboxes: readonly OutboxLagSource[];
  meterProvider?: MeterProvider;
  /** A lag that could not be read (the database is away); that outbox is left out of the round. */
  onError?(error: unknown, outbox: OutboxLagSource): void;
}

/**
 * Reports outboxes' `lag()` as three observable gauges, attribute `switchyard.outbox.table`:
 * `switchyard.outbox.lag` (rows committed and not sent yet), `switchyard.outbox.lag.age` (the age of
 * the oldest of them, in seconds: alert on it, it grows when no relay runs or sending fails) and
 * `switchyard.outbox.parked` (rows given up after `maxAttempts`). The database is asked at each
 * collection. Returns a function that stops reporting.
 */
export function outboxLagGauge(options: OutboxLagGaugeOptions): () => void {
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(NAME, VERSION);
  const lag = meter.createObservableGauge(METRIC.OUTBOX_LAG, {
    description: "Outbox rows committed and not sent yet",
    unit: "{message}",
  });
  const age = meter.createObservableGauge(METRIC.OUTBOX_LAG_AGE, {
    description: "Age of the oldest outbox row not sent yet (0 when none)",
    unit: "s",
  });
  const parked = meter.createObservableGauge(METRIC.OUTBOX_PARKED, {
    description: "Outbox rows parked after failing maxAttempts times, kept and not sent",
    unit: "{message}",
  });
  const instruments = [lag, age, parked];
  const observe = async (result: {
    observe(instrument: (typeof instruments)[number], value: number, attributes?: Attributes): void;
  }) => {
    await Promise.all(
      options.outboxes.map(async (outbox) => {
        let read: Awaited<ReturnType<OutboxLagSource["lag"]>>;
        try {
          read = await outbox.lag();
        } catch (error) {
          options.onError?.(error, outbox);
          return;
        }
        const attributes = { [ATTR.OUTBOX_TABLE]: outbox.table };
        result.observe(lag, read.unsent, attributes);
        result.observe(age, read.oldestAgeMs / 1000, attributes);
        if (read.parked !== undefined) result.observe(parked, read.parked, attributes);
      }),
    );
  };
  meter.addBatchObservableCallback(observe, instruments);
  return () => meter.removeBatchObservableCallback(observe, instruments);
}

function legacyAttributes(
  operation: "publish" | "process",
  destination: Destination,
  first: Envelope | undefined,
  envelopes: readonly Envelope[],
): Attributes {
  const attributes: Attributes = {
    "messaging.operation": operation,
    "messaging.destination": destination.name,
    "messaging.destination_kind": destination.kind,
  };
  if (envelopes.length === 1 && first) attributes["messaging.message_id"] = first.id;
  return attributes;
}

function errorType(error: unknown): string {
  if (error && typeof error === "object") {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && code.length > 0) return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === "string" && name.length > 0) return name;
  }
  return "_OTHER";
}

function recordError(span: Span, error: unknown, type: string): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setAttribute(ATTR.ERROR_TYPE, type);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** A W3C `traceparent` (and `tracestate`) as a remote span context; undefined when malformed. */
export function parseTraceContext(traceparent: string, tracestate?: string): SpanContext | undefined {
  const match = TRACEPARENT.exec(traceparent.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  if (version === "ff" || (version === "00" && rest)) return undefined;
  const spanContext: SpanContext = {
    traceId: traceId!,
    spanId: spanId!,
    traceFlags: Number.parseInt(flags!, 16) & 1,
    isRemote: true,
  };
  if (!trace.isSpanContextValid(spanContext)) return undefined;
  if (tracestate) spanContext.traceState = createTraceState(tracestate);
  return spanContext;
}

/** A span context as a W3C `traceparent`. */
export function formatTraceparent(spanContext: SpanContext): string {
  return `00-${spanContext.traceId}-${spanContext.spanId}-0${(spanContext.traceFlags & 1).toString(16)}`;
}
