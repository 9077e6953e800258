// `pnpm bench stomp`: raw stompit against Switchyard on ActiveMQ (STOMP_ACTIVEMQ_URL or
// 127.0.0.1:61614), 1 KiB persistent messages with receipts, in the same run: publish throughput
// (64 in flight), consume-and-ack throughput of a backlog, p50/p99 end-to-end latency at a fixed
// rate. Ends with one JSON line. `--quick` runs fewer messages. Same work? The raw frames carry 1 KiB
// and no headers of their own; Switchyard's carry the ~6 CloudEvents headers as well. The raw
// consumer collects the body and acks; Switchyard's decodes the envelope, runs the handler, acks.
// Three rounds (one with --quick), alternating which side runs first; medians are reported.
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { createBus } from "@switchyard/core";
import { createTransport } from "@switchyard/stomp";
import stompit from "stompit";

const quick = process.argv.includes("--quick");
const COUNT = quick ? 2000 : 10000;
const IN_FLIGHT = 64;
const RATE = 500; // msg/s for the latency run
const LATENCY_SECONDS = quick ? 2 : 5;
const base = new URL(process.env.STOMP_ACTIVEMQ_URL ?? "stomp://127.0.0.1:61614");
const body = Buffer.alloc(1024, 120);

const connectRaw = () =>
  new Promise((resolve, reject) =>
    stompit.connect(
      {
        host: base.hostname,
        port: Number(base.port || 61613),
        // stompit turns Nagle off only when it sends heart-beats; the adapter's connection sends
        // them, so without this the raw side would pay Nagle/delayed-ACK stalls Switchyard does not.
        noDelay: true,
        connectHeaders: { host: "/", "heart-beat": "0,0" },
      },
      (err, client) => (err ? reject(err) : resolve(client)),
    ),
  );

async function pool(count, send) {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < count) await send(next++);
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

const rawSend = (client, destination, payload, headers = {}) =>
  new Promise((resolve) => {
    const frame = client.send(
      { destination, persistent: "true", "content-length": payload.length, ...headers },
      { onReceipt: resolve },
    );
    frame.end(payload);
  });

function rawConsume(client, destination, count, onMessage = () => {}) {
  return new Promise((resolve) => {
    let seen = 0;
    const started = performance.now();
    client.subscribe(
      { destination, ack: "client-individual", "activemq.prefetchSize": "32" },
      (err, message) => {
        if (err) return;
        const chunks = [];
        message.on("data", (c) => chunks.push(c));
        message.on("end", () => {
          onMessage(message, Buffer.concat(chunks));
          client.ack(message);
          if (++seen === count) resolve(count / ((performance.now() - started) / 1000));
        });
      },
    );
  });
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function atRate(send) {
  const total = RATE * LATENCY_SECONDS;
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    void send(i);
  }
  return total;
}

async function raw() {
  const client = await connectRaw();
  const queue = `/queue/bench-raw-${randomUUID().slice(0, 8)}`;
  const publish = await pool(COUNT, () => rawSend(client, queue, body));
  const consumer = await connectRaw();
  const consume = await rawConsume(consumer, queue, COUNT);
  const latencies = [];
  const lq = `/queue/bench-raw-lat-${randomUUID().slice(0, 8)}`;
  const total = RATE * LATENCY_SECONDS;
  const done = rawConsume(consumer, lq, total, (m) =>
    latencies.push(performance.now() - Number(m.headers.sent)),
  );
  await atRate(() => rawSend(client, lq, body, { sent: String(performance.now()) }));
  await done;
  client.disconnect();
  consumer.disconnect();
  return { publish, consume, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function switchyard() {
  const url = new URL(base);
  url.protocol = "stomp+activemq:";
  const bus = createBus({ transport: createTransport(url), source: "bench" });
  const queue = `bench-sy-${randomUUID().slice(0, 8)}`;
  const data = new Uint8Array(body);
  const send = (dest, extra = {}) =>
    bus.publishRaw(
      { kind: "queue", name: dest },
      { type: "bench.bytes", dataContentType: "application/octet-stream", data, headers: extra },
    );
  await bus.ensure([{ kind: "queue", name: queue }]);
  const publish = await pool(COUNT, () => send(queue));
  let seen = 0;
  let started = 0;
  let resolveAll;
  const all = new Promise((r) => {
    resolveAll = r;
  });
  started = performance.now();
  const consumer = await bus
    .consume(queue)
    .onAny(async () => {
      if (++seen === COUNT) resolveAll(COUNT / ((performance.now() - started) / 1000));
    })
    .start({ concurrency: 16, prefetch: 32 });
  const consume = await all;
  await consumer.stop();
  const lq = `bench-sy-lat-${randomUUID().slice(0, 8)}`;
  const latencies = [];
  const total = RATE * LATENCY_SECONDS;
  let resolveLat;
  const lat = new Promise((r) => {
    resolveLat = r;
  });
  await bus
    .consume(lq)
    .onAny(async (msg) => {
      latencies.push(performance.now() - Number(msg.headers.sent));
      if (latencies.length === total) resolveLat();
    })
    .start({ concurrency: 16, prefetch: 32 });
  await atRate(() => send(lq, { sent: String(performance.now()) }));
  await lat;
  await bus.close();
  return { publish, consume, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

// Rounds alternate which side goes first (the second one used to show the worse tail: GC left by
// the first, a warmer or busier broker); figures are the medians over the rounds.
const ROUNDS = quick ? 1 : 3;
const raws = [];
const sys = [];
for (let round = 0; round < ROUNDS; round++) {
  if (round % 2 === 0) {
    raws.push(await raw());
    sys.push(await switchyard());
  } else {
    sys.push(await switchyard());
    raws.push(await raw());
  }
}
const median = (runs, field) =>
  percentile(
    runs.map((run) => run[field]),
    50,
  );
const summary = (runs) => ({
  publish: median(runs, "publish"),
  consume: median(runs, "consume"),
  p50: median(runs, "p50"),
  p99: median(runs, "p99"),
});
const r = summary(raws);
const s = summary(sys);
console.log(
  `raw stompit : publish ${r.publish.toFixed(0)}/s, consume ${r.consume.toFixed(0)}/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`,
);
console.log(
  `switchyard  : publish ${s.publish.toFixed(0)}/s, consume ${s.consume.toFixed(0)}/s, p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms`,
);
console.log(
  JSON.stringify({
    bench: "stomp",
    count: COUNT,
    rounds: ROUNDS,
    rawP99sMs: raws.map((run) => Number(run.p99.toFixed(2))),
    p99sMs: sys.map((run) => Number(run.p99.toFixed(2))),
    rawPublishPerSec: Math.round(r.publish),
    publishPerSec: Math.round(s.publish),
    rawConsumePerSec: Math.round(r.consume),
    consumePerSec: Math.round(s.consume),
    rawP50Ms: Number(r.p50.toFixed(2)),
    rawP99Ms: Number(r.p99.toFixed(2)),
    p50Ms: Number(s.p50.toFixed(2)),
    p99Ms: Number(s.p99.toFixed(2)),
    throughputRatio: Number((s.publish / r.publish).toFixed(3)),
    consumeRatio: Number((s.consume / r.consume).toFixed(3)),
    p99DeltaMs: Number((s.p99 - r.p99).toFixed(2)),
    ratio: Number((s.publish / r.publish).toFixed(3)),
  }),
);
process.exit(0);
