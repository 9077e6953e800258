// The consumer process of the SQS fault test (sqs.fault.ts), which SIGKILLs it mid-stream. It reads
// the queue named by FAULT_QUEUE through the built adapter and reports on stdout, one line each:
// `ready` once consuming, `r N` when a handler starts on message N, `h N` when it has handled it
// (written synchronously, before the ack). Ends cleanly on SIGTERM.

import { SqsTransport } from "@switchyard/aws-sqs";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";

const { Ping } = messages;
const options = JSON.parse(process.env.FAULT_SQS_OPTIONS ?? "{}");
const bus = createBus({ transport: new SqsTransport(options), source: "fault-consumer" });
await bus
  .consume(process.env.FAULT_QUEUE)
  .on(Ping, async (msg) => {
    process.stdout.write(`r ${msg.data.n}\n`);
    // A handler that takes a moment, so the process holds messages when it is killed.
    await new Promise((resolve) => setTimeout(resolve, 50));
    process.stdout.write(`h ${msg.data.n}\n`);
  })
  .start({ concurrency: 64 });
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  bus.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
