// Probe (raw AWS SDK, no Switchyard code): does one message come back from two concurrent
// ReceiveMessage calls, and with which ApproximateReceiveCount on each copy? Sends 20 messages per
// trial to a fresh queue, reads them with 4 concurrent receive loops (what the SQS consumer runs at a
// prefetch over 30), and reports every MessageId that more than one receive returned.
// Usage: node adapters/aws-sqs/bench/moto-receive-race.mjs [trials] [endpoint]
import { randomUUID } from "node:crypto";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";

const trials = Number(process.argv[2] ?? 20);
const endpoint = process.argv[3] ?? "http://127.0.0.1:4566";
const client = new SQSClient({
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
});
const PER_TRIAL = 20;
const LOOPS = 4;

const { QueueUrl } = await client.send(
  new CreateQueueCommand({ QueueName: `sy-probe-race-${randomUUID().slice(0, 8)}` }),
);
const started = Date.now();
/** Every MessageId returned by more than one receive: its copies' counts and the gap between the answers. */
const raced = [];
try {
  for (let trial = 0; trial < trials; trial++) {
    for (let i = 0; i < PER_TRIAL; i += 10) {
      await client.send(
        new SendMessageBatchCommand({
          QueueUrl,
          Entries: Array.from({ length: 10 }, (_, j) => ({
            Id: String(j),
            MessageBody: `t${trial}-${i + j}`,
          })),
        }),
      );
    }
    /** MessageId → the copies received: count, the loop, when its answer came. */
    const copies = new Map();
    const loop = async (index) => {
      while (copies.size < PER_TRIAL) {
        const out = await client.send(
          new ReceiveMessageCommand({
            QueueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
            VisibilityTimeout: 30,
            MessageSystemAttributeNames: ["ApproximateReceiveCount"],
          }),
        );
        const at = Date.now();
        for (const m of out.Messages ?? []) {
          const list = copies.get(m.MessageId) ?? [];
          list.push({
            count: Number(m.Attributes.ApproximateReceiveCount),
            loop: index,
            at,
            handle: m.ReceiptHandle,
          });
          copies.set(m.MessageId, list);
        }
      }
    };
    await Promise.all(Array.from({ length: LOOPS }, (_, i) => loop(i)));
    const handles = [...copies.values()].flatMap((list) => list.map((c) => c.handle));
    for (let i = 0; i < handles.length; i += 10) {
      await client.send(
        new DeleteMessageBatchCommand({
          QueueUrl,
          Entries: handles.slice(i, i + 10).map((ReceiptHandle, j) => ({ Id: String(j), ReceiptHandle })),
        }),
      );
    }
    for (const [id, list] of copies) {
      if (list.length < 2) continue;
      const times = list.map((c) => c.at);
      raced.push({
        trial,
        id,
        counts: list.map((c) => c.count).join(","),
        loops: list.map((c) => c.loop).join(","),
        gapMs: Math.max(...times) - Math.min(...times),
      });
    }
  }
} finally {
  await client.send(new DeleteQueueCommand({ QueueUrl }));
  client.destroy();
}
for (const r of raced)
  console.log(
    `trial ${r.trial}: ${r.id} received by loops ${r.loops} with counts ${r.counts}, answers ${r.gapMs} ms apart`,
  );
const patterns = {};
for (const r of raced) patterns[r.counts] = (patterns[r.counts] ?? 0) + 1;
console.log(
  JSON.stringify({
    endpoint,
    trials,
    messages: trials * PER_TRIAL,
    receivedTwice: raced.length,
    countPatterns: patterns,
    maxGapMs: Math.max(0, ...raced.map((r) => r.gapMs)),
    seconds: (Date.now() - started) / 1000,
  }),
);
