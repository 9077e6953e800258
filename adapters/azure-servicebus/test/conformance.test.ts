import { defineConformanceSuite } from "@switchyard/conformance";
import { type ServiceBusEmulator, startEmulator } from "@switchyard/servicebus-emulator";
import { afterAll, beforeAll, expect } from "vitest";
import { createTransport } from "../src/index.js";
import { deleteEntitiesNamed, entitiesLeft } from "./teardown.js";

// The emulator runs in-process on free ports; SWITCHYARD_SERVICEBUS_CONNECTION_STRING points the same
// suite at real Azure (or Microsoft's emulator) with management rights instead.
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
  name: external ? "azure-servicebus (external namespace)" : "azure-servicebus (switchyard emulator)",
  ...(external ? {} : { teardown: ({ names }) => deleteEntitiesNamed(emulator!, names) }),
  createTransport: () =>
    external
      ? createTransport(new URL("azure-servicebus://external"), {
          connectionString: external,
          provisioning: "azure",
        })
      : createTransport(
          new URL(
            `azure-servicebus://127.0.0.1:${emulator!.port}?emulator=true&adminUrl=${emulator!.adminUrl}`,
          ),
        ),
});
