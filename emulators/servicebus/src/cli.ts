#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { NamespaceConfig } from "./namespace.js";
import { ServiceBusEmulator } from "./server.js";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: process.env.SERVICEBUS_EMULATOR_PORT ?? "5673" },
    "admin-port": { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    config: { type: "string", default: process.env.SERVICEBUS_EMULATOR_CONFIG },
    verbose: { type: "boolean", default: false },
  },
});

const config: NamespaceConfig = values.config ? JSON.parse(readFileSync(values.config, "utf8")) : {};
const emulator = new ServiceBusEmulator({
  port: Number(values.port),
  ...(values["admin-port"] ? { adminPort: Number(values["admin-port"]) } : {}),
  host: values.host,
  config,
  ...(values.verbose ? { log: (line: string) => console.error(`[servicebus-emulator] ${line}`) } : {}),
});
await emulator.start();
console.log(
  `servicebus emulator: amqp on ${values.host}:${emulator.port}, admin on ${emulator.adminUrl}; connection string: ${emulator.connectionString}`,
);
const stop = async () => {
  await emulator.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
