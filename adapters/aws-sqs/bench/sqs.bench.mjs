// `pnpm bench sqs [--quick]`: raw AWS SDK calls against Switchyard on the same ElasticMQ, in one
// run, ~1 KiB JSON bodies (`{ id, note }`):
//   send/s     raw SendMessageBatch of 10 (JSON.stringify each, no attributes), 8 calls in flight, vs
//              `bus.sendBatch` of 10 (schema check, envelope; the adapter sends one SendMessageBatch
//              with two attributes per message: `sy-headers`, the ~6 CloudEvents headers packed as
//              JSON, and `sy-id`), 8 in flight. Also reported: single `bus.publishRaw` sends, 80 in
//              flight (sendSinglesPerSec). Raw is also measured sending the same two attributes
//              (throughputRatioSameAttributes), which separates the mapping's cost from the code's.
//   consume/s  raw receive(10) + JSON.parse + DeleteMessageBatch, 4 loops, vs a Switchyard consumer
//              (concurrency 32, prefetch 40: decode, schema check, handler, delete). Not the same
//              shape: each raw loop waits for its delete before the next receive, while the adapter's
//              4 receive loops go on and batch the deletes beside them.
//   latency    p50/p99 of one send call, sequential (raw SendMessage vs bus.send), not end to end.
// Send and consume run in three rounds (one with --quick), alternating which side goes first; each
// rate is the median of its rounds.
// Ends with one JSON line {"bench":"sqs",...}.
import { randomUUID } from "node:crypto";
import {
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import {
  BYTES_CONTENT_TYPE,
  createBus,
  createEnvelope,
  defineMessage,
  packHeaders,
  toWire,
} from "@switchyard/core";
import { interleaved, medians, percentile, pool, shapeSchema } from "../../../scripts/bench-kit.mjs";
import { SqsTransport } from "../dist/index.js";

const quick = process.argv.includes("--quick");
const N = quick ? 1000 : 5000;
const LAT = quick ? 100 : 400;
const endpoint = process.env.SQS_ENDPOINT ?? "http://127.0.0.1:9324";
const aws = { region: "us-east-1", credentials: { accessKeyId: "test", secretAccessKey: "test" } };
const raw = new SQSClient({ endpoint, ...aws });
const body = "x".repeat(1024);
const NOTE = "x".repeat(1024 - 40);
const payload = (id) => ({ id, note: NOTE }); // ~1 KiB as JSON
const schema = shapeSchema({ id: "number", note: "string" });
const Bench = defineMessage({ type: "bench.sqs", versions: { 1: schema } });
const run = randomUUID().slice(0, 8);

const transport = new SqsTransport({ endpoint, ...aws, waitTimeSeconds: 1 });
const bus = createBus({ transport, source: "bench" });
const rawQueue = `bench-raw-${run}`;
const syQueue = `bench-sy-${run}`;
await bus.ensure([
  { kind: "queue", name: rawQueue },
  { kind: "queue", name: syQueue },
]);
const rawUrl = await transport.base.queues.url(rawQueue);

let sink = 0;

/**
 * The two message attributes Switchyard's SQS mapping sends with a message (the CloudEvents headers
 * packed as JSON, and the id), built as it builds them: for the raw side that sends the same.
 */
function sameAttributes(data) {
  const wire = toWire(createEnvelope({ type: "bench.sqs", schemaVersion: 1, data }, { source: "bench" }));
  return {
    "sy-headers": { DataType: "String", StringValue: packHeaders(wire.headers) },
    "sy-id": { DataType: "String", StringValue: wire.id },
  };
}

/**
 * Raw: N messages sent (SendMessageBatch of 10, 8 in flight), then read back (4 receive loops).
 * `withAttributes`: each message also carries the attributes Switchyard's would.
 */
async function rawRound(withAttributes = false) {
  let t = performance.now();
  await pool(N / 10, 8, async (b) => {
    const Entries = Array.from({ length: 10 }, (_, i) => {
      const data = payload(b * 10 + i);
      const entry = { Id: String(i), MessageBody: JSON.stringify(data) };
      if (withAttributes) entry.MessageAttributes = sameAttributes(data);
      return entry;
    });
    await raw.send(new SendMessageBatchCommand({ QueueUrl: rawUrl, Entries }));
  });
  const send = N / ((performance.now() - t) / 1000);
  t = performance.now();
  let got = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (got < N) {
        const out = await raw.send(
          new ReceiveMessageCommand({ QueueUrl: rawUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
        );
        const msgs = out.Messages ?? [];
        if (msgs.length === 0) continue;
        got += msgs.length;
        for (const m of msgs) sink += JSON.parse(m.Body).id;
        await raw.send(
          new DeleteMessageBatchCommand({
            QueueUrl: rawUrl,
            Entries: msgs.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
          }),
        );
      }
    }),
  );
  return { send, consume: N / ((performance.now() - t) / 1000) };
}

/** The same through Switchyard: `bus.sendBatch` of 10, 8 in flight; then a consumer reads them. */
async function switchyardRound() {
  let t = performance.now();
  await pool(N / 10, 8, async (b) => {
    await bus.sendBatch(
      syQueue,
      Bench,
      Array.from({ length: 10 }, (_, i) => ({ data: payload(b * 10 + i) })),
    );
  });
  const send = N / ((performance.now() - t) / 1000);
  let got = 0;
  let done;
  const finished = new Promise((r) => {
    done = r;
  });
  t = performance.now();
  const consumer = await bus
    .consume(syQueue)
    .on(Bench, async (msg) => {
      sink += msg.data.id;
      if (++got === N) done();
    })
    .start({ concurrency: 32, prefetch: 40 });
  await finished;
  const consume = N / ((performance.now() - t) / 1000);
  await consumer.stop();
  return { send, consume };
}

const ROUNDS = quick ? 1 : 3;
const rounds = await interleaved(ROUNDS, {
  raw: () => rawRound(),
  rawSame: () => rawRound(true),
  switchyard: switchyardRound,
});
const { send: rawSend, consume: rawConsume } = medians(rounds.raw);
const { send: rawSameSend, consume: rawSameConsume } = medians(rounds.rawSame);
const { send: sySend, consume: syConsume } = medians(rounds.switchyard);

// single sends to a second queue (not consumed)
const data = new TextEncoder().encode(body);
const singlesQueue = `bench-sy1-${run}`;
await bus.ensure([{ kind: "queue", name: singlesQueue }]);
const t = performance.now();
await pool(N, 80, async () => {
  await bus.publishRaw(
    { kind: "queue", name: singlesQueue },
    { type: "bench", dataContentType: BYTES_CONTENT_TYPE, data },
  );
});
const sySingles = N / ((performance.now() - t) / 1000);

// latency of one send
const rawLat = [];
const syLat = [];
for (let i = 0; i < LAT; i++) {
  let s = performance.now();
  await raw.send(new SendMessageCommand({ QueueUrl: rawUrl, MessageBody: JSON.stringify(payload(i)) }));
  rawLat.push(performance.now() - s);
  s = performance.now();
  await bus.send(syQueue, Bench, payload(i));
  syLat.push(performance.now() - s);
}
const queueUrls = await Promise.all(
  [rawQueue, syQueue, singlesQueue].map((q) => transport.base.queues.url(q)),
);
await bus.close();
for (const QueueUrl of queueUrls) await raw.send(new DeleteQueueCommand({ QueueUrl })).catch(() => {});
if (sink < 0) console.log(sink);
raw.destroy();
const r = (x) => Math.round(x * 100) / 100;
console.log(
  `send: raw batched ${Math.round(rawSend)} msg/s, switchyard sendBatch ${Math.round(sySend)} msg/s (single sends ${Math.round(sySingles)} msg/s); consume: raw ${Math.round(rawConsume)} msg/s, switchyard ${Math.round(syConsume)} msg/s; send p50/p99 raw ${r(percentile(rawLat, 50))}/${r(percentile(rawLat, 99))} ms, switchyard ${r(percentile(syLat, 50))}/${r(percentile(syLat, 99))} ms`,
);
console.log(
  JSON.stringify({
    bench: "sqs",
    messages: N,
    rounds: ROUNDS,
    rawSendPerSec: Math.round(rawSend),
    sendPerSec: Math.round(sySend),
    sendSinglesPerSec: Math.round(sySingles),
    throughputRatio: r(sySend / rawSend),
    rawSameAttributesSendPerSec: Math.round(rawSameSend),
    throughputRatioSameAttributes: r(sySend / rawSameSend),
    throughputRatioByRound: rounds.raw.map((x, i) => r(rounds.switchyard[i].send / x.send)),
    rawConsumePerSec: Math.round(rawConsume),
    consumePerSec: Math.round(syConsume),
    consumeRatio: r(syConsume / rawConsume),
    consumeRatioSameAttributes: r(syConsume / rawSameConsume),
    consumeRatioByRound: rounds.raw.map((x, i) => r(rounds.switchyard[i].consume / x.consume)),
    rawSendP50Ms: r(percentile(rawLat, 50)),
    rawSendP99Ms: r(percentile(rawLat, 99)),
    sendP50Ms: r(percentile(syLat, 50)),
    sendP99Ms: r(percentile(syLat, 99)),
    p99DeltaMs: r(percentile(syLat, 99) - percentile(rawLat, 99)),
  }),
);
