// A relay in its own process for the fault test: it sends one batch to RabbitMQ, says so on stdout,
// and then hangs before marking the rows (the parent SIGKILLs it there, mid-batch).
import { createBus } from "@switchyard/core";
import * as rabbit from "@switchyard/rabbitmq";
import pg from "pg";
import { createOutbox } from "../dist/index.js";

const [pgUrl, amqpUrl, table] = process.argv.slice(2);
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
    await new Promise(() => {}); // never marked: killed here
  },
};
const bus = createBus({ transport, source: "relay-child" });
const pool = new pg.Pool({ connectionString: pgUrl, max: 2 });
const relay = createOutbox({ pool, table }).relay(bus, { batchSize: 20, intervalMs: 200 });
await relay.elected;
process.stdout.write("leader\n");
