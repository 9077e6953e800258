// One run, the same on every broker: a producer bus publishes three messages to a topic, a consumer
// bus (another connection) handles them — one is acked, one fails until it is dead-lettered after
// its attempts, one is dead-lettered explicitly — and the spans, the metrics and the depth of the
// dead-letter queue are read back.
import { randomUUID } from "node:crypto";
import type { Attributes } from "@opentelemetry/api";
import {
  AggregationTemporality,
  type DataPoint,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import {
  type Bus,
  type BusOptions,
  createBus,
  deadLetterQueueName,
  defineMessage,
  type Envelope,
  monitorDeadLetters,
} from "@switchyard/core";
import { expect } from "vitest";
import { z } from "zod";
import { consumerLagGauge, deadLetterDepthGauge, type OtelOptions, otel } from "../src/index.js";

export const Job = defineMessage({ type: "otel.job", versions: { 1: z.object({ n: z.number() }) } });

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

export interface Telemetry {
  exporter: InMemorySpanExporter;
  tracerProvider: BasicTracerProvider;
  meterProvider: MeterProvider;
  reader: TestReader;
  /** Sum of a counter's (or count of a histogram's) points whose attributes include `match`. */
  total(name: string, match?: Attributes): Promise<number>;
  points(name: string): Promise<DataPoint<unknown>[]>;
}

export function telemetry(): Telemetry {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const points = async (name: string): Promise<DataPoint<unknown>[]> => {
    const { resourceMetrics } = (await reader.collect()) as { resourceMetrics: ResourceMetrics };
    const found: DataPoint<unknown>[] = [];
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        if (metric.descriptor.name === name) found.push(...(metric.dataPoints as DataPoint<unknown>[]));
      }
    }
    return found;
  };
  return {
    exporter,
    tracerProvider,
    meterProvider,
    reader,
    points,
    async total(name, match = {}) {
      let sum = 0;
      for (const point of await points(name)) {
        if (!Object.entries(match).every(([k, v]) => point.attributes[k] === v)) continue;
        const value = point.value as number | { count: number };
        sum += typeof value === "number" ? value : value.count;
      }
      return sum;
    },
  };
}

export interface ScenarioTarget {
  /** The transport's name, as messaging.system. */
  system: string;
  /** Bus options for one bus (a new connection each call). */
  bus(): Omit<BusOptions, "instrumentation">;
  timeoutMs?: number;
}

export async function runScenario(target: ScenarioTarget, otelOptions: OtelOptions = {}): Promise<void> {
  const t = telemetry();
  const instrumentation = otel({
    tracerProvider: t.tracerProvider,
    meterProvider: t.meterProvider,
    ...otelOptions,
  });
  const topic = `otel-${randomUUID().slice(0, 8)}`;
  const subscription = "svc";
  const timeout = target.timeoutMs ?? 20_000;
  const producer = createBus({ ...target.bus(), source: "producer", instrumentation });
  const consumer = createBus({ ...target.bus(), source: "consumer", instrumentation });
  const buses: Bus[] = [producer, consumer];
  try {
    const attempts = new Map<number, number>();
    await consumer
      .subscribe(topic, subscription)
      .on(Job, async (message, ctx) => {
        const n = message.data.n;
        attempts.set(n, ctx.attempt);
        if (n === 1) throw new Error("always fails");
        if (n === 2) await ctx.deadLetter("refused");
      })
      .start({ retry: { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 50 } });
    const sent: Envelope[] = [];
    for (let n = 0; n < 3; n++) sent.push(await producer.publish(topic, Job, { n }));

    // 1 ack, 3 deliveries of n=1 (2 retries, then max-attempts), 1 explicit dead letter.
    await expect.poll(() => t.total("switchyard.messaging.dead_letters"), { timeout, interval: 100 }).toBe(2);
    await expect.poll(() => t.exporter.getFinishedSpans().filter(isProcess).length, { timeout }).toBe(5);

    const spans = t.exporter.getFinishedSpans();
    const producerSpans = spans.filter((s) => s.name === `publish ${topic}`);
    expect(producerSpans).toHaveLength(3);
    for (let n = 0; n < 3; n++) {
      const produced = producerSpans.find((s) => s.attributes["messaging.message.id"] === sent[n]!.id)!;
      expect(produced, `producer span of message ${n}`).toBeDefined();
      expect(produced.kind).toBe(3); // PRODUCER
      expect(produced.attributes).toMatchObject({
        "messaging.system": target.system,
        "messaging.destination.name": topic,
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "cloudevents.event_type": "otel.job",
      });
      // The envelope carries the producer span's context.
      expect(sent[n]!.traceparent).toBe(
        `00-${produced.spanContext().traceId}-${produced.spanContext().spanId}-01`,
      );
      const processed = spans.filter(
        (s) => isProcess(s) && s.attributes["messaging.message.id"] === sent[n]!.id,
      );
      expect(processed.length).toBe(n === 1 ? 3 : 1);
      for (const span of processed) {
        expect(span.name).toBe(`process ${topic}`);
        expect(span.kind).toBe(4); // CONSUMER
        if ((otelOptions.consumerSpan ?? "parent") === "parent") {
          expect(span.spanContext().traceId, "one trace").toBe(produced.spanContext().traceId);
          expect(span.parentSpanContext?.spanId, "parented by the producer span").toBe(
            produced.spanContext().spanId,
          );
        } else {
          expect(span.spanContext().traceId).not.toBe(produced.spanContext().traceId);
        }
        expect(span.links.map((l) => l.context.spanId)).toEqual([produced.spanContext().spanId]);
        expect(span.attributes).toMatchObject({
          "messaging.system": target.system,
          "messaging.destination.name": topic,
          "messaging.destination.subscription.name": subscription,
          "messaging.consumer.group.name": subscription,
          "messaging.operation.type": "process",
        });
      }
      const events = processed
        .sort(
          (a, b) =>
            Number(a.attributes["switchyard.delivery.attempt"]) -
            Number(b.attributes["switchyard.delivery.attempt"]),
        )
        .map((s) => s.events.map((e) => e.name).join(","));
      if (n === 0) expect(events).toEqual(["ack"]);
      if (n === 2) expect(events).toEqual(["dead-letter"]);
      if (n === 1) {
        expect(events).toEqual(["exception,nack", "exception,nack", "exception,dead-letter"]);
        const last = processed[2]!;
        expect(last.status.code).toBe(2); // ERROR
        expect(last.events[1]!.attributes).toEqual({ "switchyard.dead_letter.reason": "max-attempts" });
        expect(processed[0]!.events[1]!.attributes!["switchyard.nack.delay_ms"]).toBeGreaterThanOrEqual(0);
        expect(last.attributes["error.type"]).toBe("Error");
      }
    }

    const system = { "messaging.system": target.system, "messaging.destination.name": topic };
    expect(await t.total("messaging.client.sent.messages", system)).toBe(3);
    expect(await t.total("messaging.client.consumed.messages", system)).toBe(5);
    expect(await t.total("messaging.process.duration", system)).toBe(5);
    expect(await t.total("messaging.client.operation.duration", system)).toBe(3);
    expect(
      await t.total("switchyard.messaging.retries", { ...system, "switchyard.retry.cause": "error" }),
    ).toBe(2);
    expect(
      await t.total("switchyard.messaging.dead_letters", { "switchyard.dead_letter.reason": "max-attempts" }),
    ).toBe(1);
    expect(
      await t.total("switchyard.messaging.dead_letters", { "switchyard.dead_letter.reason": "explicit" }),
    ).toBe(1);
    const active = await t.points("switchyard.messaging.process.active");
    expect(active.map((p) => p.value)).toEqual([0]);
    expect(attempts.get(1)).toBe(3);

    // The two dead letters, counted on the broker by the monitor and reported by the depth gauge.
    const monitor = monitorDeadLetters(consumer, { sources: [{ topic, subscription }], intervalMs: 60_000 });
    const stopGauge = deadLetterDepthGauge(monitor, { meterProvider: t.meterProvider });
    try {
      await expect.poll(async () => (await monitor.check())[0]?.depth, { timeout }).toBe(2);
      const depth = await t.points("switchyard.messaging.dead_letter.depth");
      const dlq = deadLetterQueueName({ kind: "topic", name: topic, subscription });
      expect(depth.map((p) => [p.attributes["messaging.destination.name"], p.value])).toEqual([[dlq, 2]]);
    } finally {
      stopGauge();
      monitor.stop();
    }
  } finally {
    await Promise.all(buses.map((bus) => bus.close()));
  }
}

/**
 * A known backlog, read back through `bus.backlog()` and the consumer-lag gauge: one message is
 * consumed (so the subscription exists and its consumers have settled something), five are
 * published while no consumer runs, then all are consumed. A source that does not exist is left
 * out of the gauge.
 */
export async function runBacklogScenario(target: ScenarioTarget): Promise<void> {
  const t = telemetry();
  const topic = `lag-${randomUUID().slice(0, 8)}`;
  const subscription = "svc";
  const timeout = target.timeoutMs ?? 20_000;
  const bus = createBus({ ...target.bus(), source: "lag" });
  const stopGauge = consumerLagGauge(bus, {
    sources: [
      { topic, subscription },
      { topic: `${topic}-none`, subscription },
    ],
    meterProvider: t.meterProvider,
  });
  const lag = async () =>
    (await t.points("switchyard.messaging.consumer.lag")).map((p) => [p.attributes, p.value]);
  const attributes = {
    "messaging.system": target.system,
    "messaging.destination.name": topic,
    "messaging.destination.subscription.name": subscription,
    "messaging.consumer.group.name": subscription,
  };
  try {
    const handled = new Set<number>();
    const start = () =>
      bus
        .subscribe(topic, subscription)
        .on(Job, (message) => {
          handled.add(message.data.n);
        })
        .start();
    let consumer = await start();
    await bus.publish(topic, Job, { n: 0 });
    await expect.poll(() => handled.size, { timeout }).toBe(1);
    await expect.poll(() => bus.backlog(topic, subscription), { timeout }).toBe(0);
    await consumer.stop();

    for (let n = 1; n <= 5; n++) await bus.publish(topic, Job, { n });
    await expect.poll(() => bus.backlog(topic, subscription), { timeout }).toBe(5);
    expect(await lag()).toEqual([[attributes, 5]]);

    consumer = await start();
    await expect.poll(() => handled.size, { timeout }).toBe(6);
    await expect.poll(() => bus.backlog(topic, subscription), { timeout }).toBe(0);
    expect(await lag()).toEqual([[attributes, 0]]);
    await consumer.stop();
  } finally {
    stopGauge();
    await bus.close();
  }
}

function isProcess(span: ReadableSpan): boolean {
  return span.name.startsWith("process ");
}
