import { ServiceBusClient } from "@azure/service-bus";
import { createBus, isSwitchyardError } from "@switchyard/core";
import { type ServiceBusEmulator, startEmulator } from "@switchyard/servicebus-emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport, resolveOptions } from "../src/index.js";

let emulator: ServiceBusEmulator;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startEmulator({ port: 0, adminPort: 0 });
  client = new ServiceBusClient(emulator.connectionString);
});
afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

const url = () =>
  new URL(`azure-servicebus://127.0.0.1:${emulator.port}?emulator=true&adminUrl=${emulator.adminUrl}`);

describe("subscription rules (options.rules)", () => {
  it("refuses a rule that is not keyed topic/subscription or has no filter", () => {
    for (const rules of [{ orders: { sql: "1=1" } }, { "orders/eu": {} }, { "orders/eu": { sql: " " } }]) {
      let error: unknown;
      try {
        resolveOptions(url(), { rules: rules as never });
      } catch (e) {
        error = e;
      }
      expect(isSwitchyardError(error, "CONFIG_INVALID"), JSON.stringify(rules)).toBe(true);
    }
  });

  it("a subscription the adapter creates takes only what its SQL or correlation filter matches", async () => {
    const topic = "ruled-orders";
    const bus = createBus({
      transport: createTransport(url(), {
        rules: {
          [`${topic}/eu`]: { sql: "region = 'eu' AND sys.Label = 'order.placed'" },
          [`${topic}/vip`]: {
            correlation: { subject: "order.placed", applicationProperties: { tier: "gold" } },
          },
        },
      }),
      source: "svc/rules",
    });
    const seen: Record<string, string[]> = { eu: [], vip: [], all: [] };
    for (const sub of ["eu", "vip", "all"]) {
      await bus
        .subscribe(topic, sub)
        .onAny(
          async (msg) => {
            seen[sub]!.push(String((msg.data as { n: number }).n));
          },
          { foreign: true },
        )
        .start();
    }
    const send = (n: number, type: string, headers: Record<string, string>) =>
      bus.publishRaw({ kind: "topic", name: topic }, { type, data: { n }, headers });
    await send(1, "order.placed", { region: "eu", tier: "gold" });
    await send(2, "order.placed", { region: "us", tier: "gold" });
    await send(3, "order.placed", { region: "eu", tier: "silver" });
    await send(4, "order.cancelled", { region: "eu", tier: "gold" });
    await expect.poll(() => [...seen.all!].sort(), { timeout: 10_000 }).toEqual(["1", "2", "3", "4"]);
    // Fan-out is done once `all` has them: what the filtered subscriptions did not take is not there.
    await expect.poll(() => [...seen.eu!].sort()).toEqual(["1", "3"]);
    await expect.poll(() => [...seen.vip!].sort()).toEqual(["1", "2"]);
    // The rule is visible to the raw client's rule manager too.
    const listed: unknown[] = [];
    for await (const rule of client.createRuleManager(topic, "eu").listRules()) listed.push(rule.filter);
    expect(listed).toEqual([{ sqlExpression: "region = 'eu' AND sys.Label = 'order.placed'" }]);
    // Closed (in-flight settled), nothing more arrived and nothing waits in the filtered subscriptions.
    await bus.close();
    expect([...seen.eu!].sort()).toEqual(["1", "3"]);
    expect([...seen.vip!].sort()).toEqual(["1", "2"]);
    for (const sub of ["eu", "vip"]) {
      const info = (await (
        await fetch(`${emulator.adminUrl}/topics/${topic}/subscriptions/${sub}`)
      ).json()) as {
        activeMessageCount: number;
        rules: Array<{ name: string }>;
      };
      expect(info.activeMessageCount).toBe(0);
      expect(info.rules.map((r) => r.name)).toEqual(["$Default"]);
    }
  });
});
