// `pnpm bench memory`: end to end through the core and the memory adapter, 1 KiB JSON messages,
// validation on. Compared in the same run with a bare loop that only JSON-encodes and decodes the
// same messages, in three interleaved rounds (one with --quick) whose medians are reported. Ends with
// one JSON line of figures.
//
// `--telemetry=off|noop|on` (or SWITCHYARD_BENCH_TELEMETRY): `off` (default) is a bus without
// `instrumentation`, exactly what runs when @switchyard/opentelemetry is not installed (the core never
// imports it); `noop` wires `otel()` to OpenTelemetry's no-op providers (the package installed, no SDK
// started); `on` wires it to SDK providers: every span through a BatchSpanProcessor to an exporter
// that drops them, metrics aggregated by a reader (so what is measured is Switchyard's and the SDK's
// cost, not an exporter's network I/O).
import { performance } from "node:perf_hooks";
import { createBus, defineMessage } from "@switchyard/core";
import { z } from "zod";
import { interleaved, median, profiled } from "../../../scripts/bench-kit.mjs";

const Order = defineMessage({
  type: "bench.order",
  versions: { 1: z.object({ id: z.number(), sentAt: z.number(), customer: z.string(), note: z.string() }) },
});
const NOTE = "x".repeat(1024 - 80); // the encoded payload is ~1 KiB
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const payload = (id) => ({ id, sentAt: performance.now(), customer: `customer-${id % 1000}`, note: NOTE });

function bareLoop(count) {
  const started = performance.now();
  let sink = 0;
  for (let i = 0; i < count; i++) {
    const bytes = encoder.encode(JSON.stringify(payload(i)));
    sink += JSON.parse(decoder.decode(bytes)).id;
  }
  if (sink < 0) console.log(sink);
  return count / ((performance.now() - started) / 1000);
}

/** Publishes `count` messages as fast as the handlers keep up (bounded in flight). */
async function throughput(bus, queue, count, onHandled) {
  let handled = 0;
  let resolveDone;
  const done = new Promise((r) => {
    resolveDone = r;
  });
  const consumer = await bus
    .consume(queue)
    .on(Order, async (msg) => {
      onHandled?.(msg);
      if (++handled === count) resolveDone();
    })
    .start({ concurrency: 64, prefetch: 256 });
  const started = performance.now();
  const window = 2000;
  for (let sent = 0; sent < count; ) {
    const batch = [];
    for (let i = 0; i < window && sent < count; i++, sent++)
      batch.push(bus.send(queue, Order, payload(sent)));
    await Promise.all(batch);
    // Keep the backlog bounded: wait until the handlers are within one window of the producer.
    while (sent - handled > window * 2) await new Promise((r) => setImmediate(r));
  }
  await done;
  const seconds = (performance.now() - started) / 1000;
  await consumer.stop();
  return count / seconds;
}

/** Publishes at a fixed rate and records publish-to-handler latency. */
async function latency(bus, queue, rate, seconds) {
  const samples = [];
  const total = Math.floor(rate * seconds);
  let handled = 0;
  let resolveDone;
  const done = new Promise((r) => {
    resolveDone = r;
  });
  const consumer = await bus
    .consume(queue)
    .on(Order, async (msg) => {
      samples.push(performance.now() - msg.data.sentAt);
      if (++handled === total) resolveDone();
    })
    .start({ concurrency: 64, prefetch: 256 });
  const started = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
    while (sent < due) void bus.send(queue, Order, payload(sent++));
    await new Promise((r) => setImmediate(r));
  }
  await done;
  await consumer.stop();
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  return { p50Ms: at(0.5), p99Ms: at(0.99) };
}

const quick = process.argv.includes("--quick");
const telemetry =
  process.argv.find((a) => a.startsWith("--telemetry="))?.slice("--telemetry=".length) ??
  process.env.SWITCHYARD_BENCH_TELEMETRY ??
  "off";
const instrumentation = await instrumentationFor(telemetry);
const bus = createBus({ url: "memory://bench", source: "bench", instrumentation });

/** The bus's `instrumentation` for a telemetry mode; `off` loads nothing. */
async function instrumentationFor(mode) {
  if (mode === "off") return undefined;
  const { otel } = await import("@switchyard/opentelemetry");
  if (mode === "noop") return otel();
  if (mode !== "on") throw new Error(`--telemetry must be off, noop or on, not ${mode}`);
  const { BasicTracerProvider, BatchSpanProcessor } = await import("@opentelemetry/sdk-trace-base");
  const { MeterProvider, PeriodicExportingMetricReader, AggregationTemporality } = await import(
    "@opentelemetry/sdk-metrics"
  );
  let spans = 0;
  const spanExporter = {
    export(batch, done) {
      spans += batch.length;
      done({ code: 0 });
    },
    shutdown: () => Promise.resolve(),
  };
  const metricExporter = {
    export: (_metrics, done) => done({ code: 0 }),
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
    selectAggregationTemporality: () => AggregationTemporality.CUMULATIVE,
  };
  process.once("beforeExit", () => console.error(`telemetry on: ${spans} spans exported`));
  return otel({
    tracerProvider: new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(spanExporter)] }),
    meterProvider: new MeterProvider({
      readers: [
        new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 10_000 }),
      ],
    }),
  });
}
const N = quick ? 50_000 : 200_000;

bareLoop(20_000); // warm-up
await throughput(bus, "warmup", 20_000);
const rounds = await interleaved(quick ? 1 : 3, {
  bare: async () => bareLoop(N),
  switchyard: async (round) => {
    // CPU time per message (user + system, GC and telemetry timers included) is steadier than the
    // rate on a shared machine: other processes take wall-clock time from the bench, not CPU time.
    const cpuBefore = process.cpuUsage();
    const rate = await profiled("memory-throughput", () => throughput(bus, `throughput-${round}`, N));
    const cpu = process.cpuUsage(cpuBefore);
    return { rate, cpuUsPerMsg: (cpu.user + cpu.system) / N };
  },
});
const bareMsgPerSec = median(rounds.bare);
const msgPerSec = median(rounds.switchyard.map((r) => r.rate));
const cpuUsPerMsg = median(rounds.switchyard.map((r) => r.cpuUsPerMsg));
// The core's cost against the bare loop, per round (both sides ran minutes apart at most).
const coreCostRatio = median(rounds.switchyard.map((r, i) => rounds.bare[i] / r.rate));
const { p50Ms, p99Ms } = await latency(bus, "latency", Math.round(msgPerSec / 2), quick ? 1 : 3);

// Memory over 1,000,000 messages: RSS after warm-up vs at the end.
const soak = quick ? 200_000 : 1_000_000;
let rssAfterWarmup = 0;
let seen = 0;
global.gc?.();
await throughput(bus, "soak", soak, () => {
  if (++seen === Math.floor(soak / 10)) {
    global.gc?.();
    rssAfterWarmup = process.memoryUsage().rss;
  }
});
global.gc?.();
const rssEnd = process.memoryUsage().rss;
await bus.close();

const result = {
  bench: "memory",
  telemetry,
  msgPerSec: Math.round(msgPerSec),
  cpuUsPerMsg: Number(cpuUsPerMsg.toFixed(2)),
  p50Ms: Number(p50Ms.toFixed(3)),
  p99Ms: Number(p99Ms.toFixed(3)),
  bareMsgPerSec: Math.round(bareMsgPerSec),
  coreCostRatio: Number(coreCostRatio.toFixed(2)),
  rounds: rounds.bare.length,
  coreCostRatioByRound: rounds.switchyard.map((r, i) => Number((rounds.bare[i] / r.rate).toFixed(2))),
  rssGrowthPct: Number((((rssEnd - rssAfterWarmup) / rssAfterWarmup) * 100).toFixed(1)),
  rssEndMiB: Math.round(rssEnd / 1024 / 1024),
  messages: soak,
  node: process.version,
};
console.log(
  `memory: ${result.msgPerSec} msg/s end to end, ${result.cpuUsPerMsg} µs CPU per message (bare encode+decode loop ${result.bareMsgPerSec} msg/s, ` +
    `core costs ${result.coreCostRatio}× the bare loop, telemetry ${telemetry}); latency at ${Math.round(msgPerSec / 2)} msg/s ` +
    `p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms; RSS growth after warm-up over ${soak} messages ${result.rssGrowthPct}%`,
);
console.log(JSON.stringify(result));
