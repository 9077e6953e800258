// `pnpm bench servicebus [--quick]`: raw @azure/service-bus against Switchyard on the Switchyard
// Service Bus emulator (SERVICEBUS_EMULATOR_URL's port, admin on port+1; default the broker stack's
// 127.0.0.1:5673 / :5674), in one run, ~1 KiB JSON messages (`{ id, sentAt, note }`):
//   send/s     raw: `createMessageBatch` + `sendMessages` of 100, 4 batches in flight, body is the
//              object (the client JSON-encodes it); Switchyard: `bus.sendBatch` of 100 (schema check,
//              envelope, ~6 CloudEvents application properties each), 4 in flight.
//   consume/s  the backlog read by a raw `receiver.subscribe` (peek-lock, maxConcurrentCalls 100, the
//              handler reads `body.id` and completes) vs a Switchyard consumer (prefetch 100,
//              concurrency 100: decode, validate, handler, complete).
//   latency    p50/p99 send-to-handler at a fixed rate (200 msg/s), one message per send.
// Same work? Switchyard's messages carry ~6 CloudEvents attributes as `cloudEvents:*` application
// properties plus subject and contentType, which the (single-process) emulator encodes and decodes on
// every hop; raw is also measured sending and consuming exactly those (throughputRatioSameHeaders,
// consumeRatioSameHeaders), which separates the adapter's cost from the message's size.
// Runs three interleaved rounds (one with --quick) and reports medians.
// Ends with one JSON line {"bench":"servicebus","throughputRatio":…,"consumeRatio":…,"p99DeltaMs":…}.
import { randomUUID } from "node:crypto";
import { ServiceBusClient } from "@azure/service-bus";
import { createBus, defineMessage } from "@switchyard/core";
import { completion, median, paced, percentile, pool, shapeSchema } from "../../../scripts/bench-kit.mjs";
import { createTransport } from "../dist/index.js";

const quick = process.argv.includes("--quick");
const amqpUrl = new URL(process.env.SERVICEBUS_EMULATOR_URL ?? "amqp://127.0.0.1:5673");
const port = Number(amqpUrl.port || 5673);
const adminUrl = process.env.SERVICEBUS_ADMIN_URL ?? `http://${amqpUrl.hostname}:${port + 1}`;
const connectionString = `Endpoint=sb://${amqpUrl.hostname}:${port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;`;
const N = quick ? 2_000 : 10_000;
const BATCH = 100;
const IN_FLIGHT = 4;
const RATE = 200;
const LATENCY_N = quick ? 400 : 1_500;
const run = randomUUID().slice(0, 8);
const NOTE = "x".repeat(1024 - 80);
const payload = (id) => ({ id, sentAt: performance.now(), note: NOTE });

const schema = shapeSchema({ id: "number", sentAt: "number", note: "string" });
const Bench = defineMessage({ type: "bench.sb", versions: { 1: schema } });

async function admin(method, path, body) {
  const res = await fetch(`${adminUrl}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body && JSON.stringify(body),
  });
  if (!res.ok && res.status !== 404) throw new Error(`admin ${method} ${path}: ${res.status}`);
}

let rawRuns = 0;
let syRuns = 0;

/** What Switchyard sends besides the body: the CloudEvents attributes and the native fields. */
const sameHeaders = () => ({
  subject: "bench.sb",
  contentType: "application/json",
  applicationProperties: {
    "cloudEvents:id": randomUUID(),
    "cloudEvents:type": "bench.sb",
    "cloudEvents:source": "bench",
    "cloudEvents:specversion": "1.0",
    "cloudEvents:time": new Date().toISOString(),
    "cloudEvents:datacontenttype": "application/json",
  },
});

async function raw({ headers = false, latency: measureLatency = true } = {}) {
  const queue = `bench-raw${headers ? "h" : ""}-${run}-${++rawRuns}`;
  await admin("PUT", `/queues/${queue}`, { lockDurationMs: 60_000, maxDeliveryCount: 1000 });
  const client = new ServiceBusClient(connectionString);
  const sender = client.createSender(queue);
  let t = performance.now();
  await pool(N / BATCH, IN_FLIGHT, async (b) => {
    const batch = await sender.createMessageBatch();
    for (let i = 0; i < BATCH; i++) {
      const message = { body: payload(b * BATCH + i), messageId: randomUUID() };
      if (!batch.tryAddMessage(headers ? { ...message, ...sameHeaders() } : message))
        throw new Error("batch full");
    }
    await sender.sendMessages(batch);
  });
  const sendRate = N / ((performance.now() - t) / 1000);

  const receiver = client.createReceiver(queue);
  const backlog = completion("raw consume", () => got);
  let got = 0;
  let sink = 0;
  let onMessage = async (m) => {
    sink += m.body.id;
    await receiver.completeMessage(m);
    if (++got === N) backlog.done();
  };
  t = performance.now();
  const sub = receiver.subscribe(
    { processMessage: (m) => onMessage(m), processError: async () => {} },
    { maxConcurrentCalls: 100, autoCompleteMessages: false },
  );
  await backlog.promise;
  const consumeRate = N / ((performance.now() - t) / 1000);
  if (!measureLatency) {
    await sub.close();
    await client.close();
    await admin("DELETE", `/queues/${queue}`);
    if (sink < 0) console.log(sink);
    return { sendRate, consumeRate };
  }

  const latencies = [];
  const latency = completion("raw latency", () => latencies.length);
  onMessage = async (m) => {
    latencies.push(performance.now() - m.body.sentAt);
    await receiver.completeMessage(m);
    if (latencies.length === LATENCY_N) latency.done();
  };
  await paced(LATENCY_N, RATE, (i) => sender.sendMessages({ body: payload(i), messageId: randomUUID() }));
  await latency.promise;
  await sub.close();
  await client.close();
  await admin("DELETE", `/queues/${queue}`);
  if (sink < 0) console.log(sink);
  return { sendRate, consumeRate, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function switchyard({ latency: measureLatency = true } = {}) {
  const queue = `bench-sy-${run}-${++syRuns}`;
  const bus = createBus({
    transport: createTransport(
      new URL(`azure-servicebus://${amqpUrl.hostname}:${port}?emulator=true&adminUrl=${adminUrl}`),
    ),
    source: "bench",
  });
  await bus.ensure([{ kind: "queue", name: queue }]);
  let t = performance.now();
  await pool(N / BATCH, IN_FLIGHT, (b) =>
    bus.sendBatch(
      queue,
      Bench,
      Array.from({ length: BATCH }, (_, i) => ({ data: payload(b * BATCH + i) })),
    ),
  );
  const sendRate = N / ((performance.now() - t) / 1000);

  const backlog = completion("switchyard consume", () => got);
  let got = 0;
  let sink = 0;
  t = performance.now();
  const consumer = await bus
    .consume(queue)
    .on(Bench, async (msg) => {
      sink += msg.data.id;
      if (++got === N) backlog.done();
    })
    .start({ concurrency: 100, prefetch: 100 });
  await backlog.promise;
  const consumeRate = N / ((performance.now() - t) / 1000);
  await consumer.stop();
  if (!measureLatency) {
    await bus.close();
    await admin("DELETE", `/queues/${queue}`);
    if (sink < 0) console.log(sink);
    return { sendRate, consumeRate };
  }

  const latencies = [];
  const latency = completion("switchyard latency", () => latencies.length);
  const latencyConsumer = await bus
    .consume(queue)
    .on(Bench, async (msg) => {
      latencies.push(performance.now() - msg.data.sentAt);
      if (latencies.length === LATENCY_N) latency.done();
    })
    .start({ concurrency: 100, prefetch: 100 });
  await paced(LATENCY_N, RATE, (i) => bus.send(queue, Bench, payload(i)));
  await latency.promise;
  await latencyConsumer.stop();
  await bus.close();
  await admin("DELETE", `/queues/${queue}`);
  if (sink < 0) console.log(sink);
  return { sendRate, consumeRate, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

// The machine is shared: the three variants run interleaved for ROUNDS rounds and each figure is the
// median of its rounds (latency is measured in the first round only).
const ROUNDS = quick ? 1 : 3;
const rounds = { r: [], rh: [], s: [] };
for (let round = 0; round < ROUNDS; round++) {
  rounds.r.push(await raw({ latency: round === 0 }));
  rounds.rh.push(await raw({ headers: true, latency: false }));
  rounds.s.push(await switchyard({ latency: round === 0 }));
}
const summary = (list) => ({
  ...list[0],
  sendRate: median(list.map((x) => x.sendRate)),
  consumeRate: median(list.map((x) => x.consumeRate)),
});
const r = summary(rounds.r);
const rh = summary(rounds.rh);
const s = summary(rounds.s);
const round = (x) => Math.round(x * 100) / 100;
console.log(
  `raw, Switchyard's headers: ${Math.round(rh.sendRate)} sends/s, ${Math.round(rh.consumeRate)} receive+complete/s`,
);
for (const [label, x] of [
  ["raw @azure/service-bus", r],
  ["switchyard            ", s],
]) {
  console.log(
    `${label}: ${Math.round(x.sendRate)} sends/s (batches of ${BATCH}), ${Math.round(x.consumeRate)} receive+complete/s, p50 ${round(x.p50)} ms, p99 ${round(x.p99)} ms`,
  );
}
console.log(
  JSON.stringify({
    bench: "servicebus",
    messages: N,
    rounds: ROUNDS,
    rawSendPerSec: Math.round(r.sendRate),
    sendPerSec: Math.round(s.sendRate),
    throughputRatio: round(s.sendRate / r.sendRate),
    rawSameHeadersSendPerSec: Math.round(rh.sendRate),
    throughputRatioSameHeaders: round(s.sendRate / rh.sendRate),
    rawConsumePerSec: Math.round(r.consumeRate),
    consumePerSec: Math.round(s.consumeRate),
    consumeRatio: round(s.consumeRate / r.consumeRate),
    rawSameHeadersConsumePerSec: Math.round(rh.consumeRate),
    consumeRatioSameHeaders: round(s.consumeRate / rh.consumeRate),
    rawP50Ms: round(r.p50),
    rawP99Ms: round(r.p99),
    p50Ms: round(s.p50),
    p99Ms: round(s.p99),
    p99DeltaMs: round(s.p99 - r.p99),
  }),
);
process.exit(0);
