// Format probe (issue 19): what the wire format costs the raw @platformatic/kafka consumer, apart
// from anything Switchyard does. Backlogs of N records, each read by a raw consumer that parses the
// value: plain JSON; the structured event without its content-type header; the structured event as
// Switchyard writes it; and the binary-mode record (ce_ headers, data as value). Prints CPU µs and
// rate per message for each (medians of PROBE_ROUNDS). Usage after `pnpm build`:
//   node adapters/kafka/bench/format-probe.mjs
import { randomUUID } from "node:crypto";
import os from "node:os";
import { Consumer, ProduceAcks, Producer } from "@platformatic/kafka";
import { createEnvelope, toWire } from "@switchyard/core";
import { Kafka, logLevel } from "kafkajs";

const N = Number(process.env.PROBE_N ?? 50_000);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 3);
const brokers = ["127.0.0.1:9092"];
const NOTE = "x".repeat(1024 - 40);
const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
await admin.connect();
const base = `sy-format-${randomUUID().slice(0, 8)}`;
const formats = ["plain", "structuredNoHeader", "structured", "binary"];
await admin.createTopics({
  waitForLeaders: true,
  topics: formats.map((f) => ({ topic: `${base}-${f}`, numPartitions: 3 })),
});
const producer = new Producer({ clientId: "probe", bootstrapBrokers: brokers, acks: ProduceAcks.ALL });
const headerMap = (headers) =>
  new Map(Object.entries(headers).map(([k, v]) => [Buffer.from(k), Buffer.from(v)]));
let sample;
for (let sent = 0; sent < N; sent += 500) {
  const batches = Object.fromEntries(formats.map((f) => [f, []]));
  for (let i = sent; i < sent + 500; i++) {
    const envelope = createEnvelope(
      { type: "bench.kafka", schemaVersion: 1, data: { id: i, note: NOTE } },
      { source: "probe" },
    );
    const structured = toWire(envelope, {}, "structured");
    const binary = toWire(envelope, {}, "binary");
    sample ??= { structured, binary };
    batches.plain.push({ topic: `${base}-plain`, value: Buffer.from(JSON.stringify({ id: i, note: NOTE })) });
    batches.structuredNoHeader.push({
      topic: `${base}-structuredNoHeader`,
      value: Buffer.from(structured.body),
    });
    batches.structured.push({
      topic: `${base}-structured`,
      value: Buffer.from(structured.body),
      headers: headerMap(structured.headers),
    });
    batches.binary.push({
      topic: `${base}-binary`,
      value: Buffer.from(binary.body),
      headers: headerMap(binary.headers),
    });
  }
  for (const f of formats) await producer.send({ messages: batches[f] });
}
await producer.close();
console.error("structured:", Object.keys(sample.structured.headers), sample.structured.body.length, "bytes");
console.error(
  "binary:",
  Object.keys(sample.binary.headers).length,
  "headers",
  sample.binary.body.length,
  "bytes",
);

async function read(format) {
  const consumer = new Consumer({
    clientId: "probe-raw",
    groupId: `raw-${randomUUID()}`,
    bootstrapBrokers: brokers,
    maxWaitTime: 100,
  });
  const stream = await consumer.consume({
    topics: [`${base}-${format}`],
    mode: "earliest",
    autocommit: false,
  });
  let got = 0;
  let sink = 0;
  let first = 0;
  let before;
  await new Promise((resolve) => {
    stream.on("data", (m) => {
      if (got++ === 0) {
        first = performance.now();
        before = process.cpuUsage();
      }
      const value = JSON.parse(m.value.toString());
      sink += format === "plain" || format === "binary" ? value.id : value.data.id;
      if (format !== "plain") sink += m.headers.size;
      if (got === N) resolve();
    });
  });
  const used = process.cpuUsage(before);
  const ms = performance.now() - first;
  await stream.close();
  await consumer.close(true);
  if (sink < 0) console.log(sink);
  return { perSec: Math.round(N / (ms / 1000)), cpuUs: +((used.user + used.system) / N).toFixed(2) };
}
const results = Object.fromEntries(formats.map((f) => [f, []]));
for (let r = 0; r < ROUNDS; r++) for (const f of formats) results[f].push(await read(f));
const median = (xs, k) => xs.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = {};
for (const f of formats) {
  out[`${f}PerSec`] = median(results[f], "perSec");
  out[`${f}CpuUs`] = median(results[f], "cpuUs");
}
out.load = os.loadavg().map((x) => +x.toFixed(2));
console.log(JSON.stringify(out));
await admin.deleteTopics({ topics: formats.map((f) => `${base}-${f}`) }).catch(() => {});
await admin.disconnect();
process.exit(0);
