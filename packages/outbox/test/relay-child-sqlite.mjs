// A SQLite outbox relay in its own process for the fault test: it takes the lease, sends one batch
// to RabbitMQ, says so on stdout, and hangs before deleting the rows (the parent SIGKILLs it there,
// mid-batch, with the lease still held).
import { createBus } from "@switchyard/core";
import * as rabbit from "@switchyard/rabbitmq";
import { createSqliteOutbox } from "../dist/sqlite.js";

const [path, amqpUrl, leaseMs] = process.argv.slice(2);
const real = rabbit.createTransport(new URL(amqpUrl));
const transport = {
  name: real.name,
  capabilities: real.capabilities,
  contentMode: real.contentMode,
  connect: () => real.connect?.(),
  provision: (entities) => real.provision?.(entities),
  subscribe: (...args) => real.subscribe(...args),
  close: () => real.close(),
  async publish(destination, messages) {
    await real.publish(destination, messages);
    process.stdout.write(`published ${messages.length}\n`);
    await new Promise(() => {}); // never deleted: killed here
  },
};
const bus = createBus({ transport, source: "relay-child" });
const outbox = createSqliteOutbox({ path, leaseMs: Number(leaseMs) });
const relay = outbox.relay(bus, { batchSize: 20, intervalMs: 200 });
await relay.elected;
process.stdout.write("leader\n");
