import { defineConformanceSuite } from "@switchyard/conformance";
import { type ServiceBusEmulator, startEmulator } from "@switchyard/servicebus-emulator";
import { afterAll, beforeAll, expect } from "vitest";
import { createTransport } from "../src/index.js";
import { deleteEntitiesNamed, entitiesLeft } from "./teardown.js";

// The same suite in sessions mode (`?sessions=true`): every entity requires sessions, a key is a
// session, and the adapter declares ordering "group", so the per-key order case runs too.
const external = process.env.SWITCHYARD_SERVICEBUS_CONNECTION_STRING;
let emulator: ServiceBusEmulator | undefined;

beforeAll(async () => {
  if (!external) emulator = await startEmulator({ port: 0, adminPort: 0 });
});
// After the suite's teardown: the emulator must hold nothing the cases made.
afterAll(async () => {
  const left = emulator ? entitiesLeft(emulator) : [];
  await emulator?.stop();
  expect(left).toEqual([]);
});

defineConformanceSuite({
  name: external
    ? "azure-servicebus sessions (external namespace)"
    : "azure-servicebus sessions (switchyard emulator)",
  ...(external ? {} : { teardown: ({ names }) => deleteEntitiesNamed(emulator!, names) }),
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
