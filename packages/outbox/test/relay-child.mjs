// A relay in its own process for the fault test: it takes the leadership of an outbox (a store's
// name, then what opens it, after the RabbitMQ URL), sends one batch to RabbitMQ, says so on stdout,
// and hangs before removing the rows (the parent SIGKILLs it there, mid-batch, still the leader).
import { createBus } from "@switchyard/core";
import * as rabbit from "@switchyard/rabbitmq";
import pg from "pg";
import { createOutbox } from "../dist/index.js";
import { createSqliteOutbox } from "../dist/sqlite.js";

const open = {
  postgres: (pgUrl, table) => createOutbox({ pool: new pg.Pool({ connectionString: pgUrl, max: 2 }), table }),
  sqlite: (path, leaseMs) => createSqliteOutbox({ path, leaseMs: Number(leaseMs) }),
};
const [amqpUrl, store, ...storeArgs] = process.argv.slice(2);
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
    await new Promise(() => {}); // never removed: killed here
  },
};
const bus = createBus({ transport, source: "relay-child" });
const relay = open[store](...storeArgs).relay(bus, { batchSize: 20, intervalMs: 200 });
await relay.elected;
process.stdout.write("leader\n");
