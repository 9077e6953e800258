// `pnpm bench aws-sqs [--quick]`: raw AWS SDK calls against Switchyard on the same ElasticMQ, in one
// run. Send: raw SendMessageBatch (10 per call, 8 in flight) vs bus.send (80 in flight; the adapter
// sends one message per call, the bus has no batch publish). Consume: raw receive(10) + delete
// batch (4 loops) vs a Switchyard consumer (concurrency 32). Latency: sequential single sends.
// Ends with one JSON line {"bench":"sqs",...}.
import { randomUUID } from "node:crypto";
import {
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { BYTES_CONTENT_TYPE, createBus } from "@switchyard/core";
import { SqsTransport } from "../dist/index.js";

const quick = process.argv.includes("--quick");
const N = quick ? 1000 : 5000;
const LAT = quick ? 100 : 400;
const endpoint = process.env.SQS_ENDPOINT ?? "http://127.0.0.1:9324";
const aws = { region: "us-east-1", credentials: { accessKeyId: "test", secretAccessKey: "test" } };
const raw = new SQSClient({ endpoint, ...aws });
const body = "x".repeat(1024);
const run = randomUUID().slice(0, 8);
const pct = (xs, p) => xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

async function pool(total, width, task) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < total) await task(next++);
    }),
  );
}

const transport = new SqsTransport({ endpoint, ...aws, waitTimeSeconds: 1 });
const bus = createBus({ transport, source: "bench" });
const rawQueue = `bench-raw-${run}`;
const syQueue = `bench-sy-${run}`;
await bus.ensure([
  { kind: "queue", name: rawQueue },
  { kind: "queue", name: syQueue },
]);
const rawUrl = await transport.base.queues.url(rawQueue);

// send
let t = performance.now();
await pool(N / 10, 8, async (b) => {
  const Entries = Array.from({ length: 10 }, (_, i) => ({ Id: String(i), MessageBody: `${b}-${i}-${body}` }));
  await raw.send(new SendMessageBatchCommand({ QueueUrl: rawUrl, Entries }));
});
const rawSend = N / ((performance.now() - t) / 1000);
const data = new TextEncoder().encode(body);
t = performance.now();
await pool(N, 80, async () => {
  await bus.publishRaw(
    { kind: "queue", name: syQueue },
    { type: "bench", dataContentType: BYTES_CONTENT_TYPE, data },
  );
});
const sySend = N / ((performance.now() - t) / 1000);

// consume
t = performance.now();
let rawGot = 0;
await Promise.all(
  Array.from({ length: 4 }, async () => {
    while (rawGot < N) {
      const out = await raw.send(
        new ReceiveMessageCommand({ QueueUrl: rawUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
      );
      const msgs = out.Messages ?? [];
      if (msgs.length === 0) continue;
      rawGot += msgs.length;
      await raw.send(
        new DeleteMessageBatchCommand({
          QueueUrl: rawUrl,
          Entries: msgs.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
    }
  }),
);
const rawConsume = N / ((performance.now() - t) / 1000);
let syGot = 0;
let done;
const finished = new Promise((r) => {
  done = r;
});
t = performance.now();
const consumer = await bus
  .consume(syQueue)
  .onAny(async () => {
    if (++syGot === N) done();
  })
  .start({ concurrency: 32, prefetch: 40 });
await finished;
const syConsume = N / ((performance.now() - t) / 1000);
await consumer.stop();

// latency of one send
const rawLat = [];
const syLat = [];
for (let i = 0; i < LAT; i++) {
  let s = performance.now();
  await raw.send(new SendMessageCommand({ QueueUrl: rawUrl, MessageBody: body }));
  rawLat.push(performance.now() - s);
  s = performance.now();
  await bus.publishRaw(
    { kind: "queue", name: syQueue },
    { type: "bench", dataContentType: BYTES_CONTENT_TYPE, data },
  );
  syLat.push(performance.now() - s);
}
await bus.close();
raw.destroy();
const r = (x) => Math.round(x * 100) / 100;
console.log(
  `send: raw batched ${Math.round(rawSend)} msg/s, switchyard ${Math.round(sySend)} msg/s; consume: raw ${Math.round(rawConsume)} msg/s, switchyard ${Math.round(syConsume)} msg/s; send p50/p99 raw ${r(pct(rawLat, 0.5))}/${r(pct(rawLat, 0.99))} ms, switchyard ${r(pct(syLat, 0.5))}/${r(pct(syLat, 0.99))} ms`,
);
console.log(
  JSON.stringify({
    bench: "sqs",
    messages: N,
    rawSendPerSec: Math.round(rawSend),
    sendPerSec: Math.round(sySend),
    throughputRatio: r(sySend / rawSend),
    rawConsumePerSec: Math.round(rawConsume),
    consumePerSec: Math.round(syConsume),
    consumeRatio: r(syConsume / rawConsume),
    p99DeltaMs: r(pct(syLat, 0.99) - pct(rawLat, 0.99)),
  }),
);
