import { defineConformanceSuite } from "@switchyard/conformance";
import { type ServiceBusEmulator, startEmulator } from "@switchyard/servicebus-emulator";
import { afterAll, beforeAll } from "vitest";
import { createTransport } from "../src/index.js";

// The same suite in sessions mode (`?sessions=true`): every entity requires sessions, a key is a
// session, and the adapter declares ordering "group", so the per-key order case runs too.
const external = process.env.SWITCHYARD_SERVICEBUS_CONNECTION_STRING;
let emulator: ServiceBusEmulator | undefined;

beforeAll(async () => {
  if (!external) emulator = await startEmulator({ port: 0, adminPort: 0 });
});
afterAll(async () => {
  await emulator?.stop();
});

defineConformanceSuite({
  name: external
    ? "azure-servicebus sessions (external namespace)"
    : "azure-servicebus sessions (switchyard emulator)",
  createTransport: () =>
    external
      ? createTransport(new URL("azure-servicebus://external?sessions=true"), {
          connectionString: external,
          provisioning: "azure",
        })
      : createTransport(
          new URL(
            `azure-servicebus://127.0.0.1:${emulator!.port}?emulator=true&sessions=true&sessionIdleMs=300&adminUrl=${emulator!.adminUrl}`,
          ),
        ),
});
