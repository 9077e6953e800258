import { ServiceBusClient } from "@azure/service-bus";
import { createBus, isSwitchyardError, type WireMessage } from "@switchyard/core";
import { type ServiceBusEmulator, startEmulator } from "@switchyard/servicebus-emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport, redactSecrets, resolveOptions } from "../src/index.js";

let emulator: ServiceBusEmulator;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startEmulator({ port: 0, adminPort: 0, config: { queues: [{ name: "declared" }] } });
  client = new ServiceBusClient(emulator.connectionString);
});
afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

const url = () =>
  new URL(`azure-servicebus://127.0.0.1:${emulator.port}?emulator=true&adminUrl=${emulator.adminUrl}`);

describe("options", () => {
  it("builds an emulator connection string, or a SAS one, and never shows the key", () => {
    const sas = resolveOptions(new URL("azure-servicebus://RootKey:s3cr%2Bt@ns.servicebus.windows.net"));
    expect(sas.connectionString).toContain("SharedAccessKey=s3cr+t");
    expect(sas.display).not.toContain("s3cr");
    const emu = resolveOptions(
      new URL("servicebus://127.0.0.1:5673?emulator=true&adminUrl=http://127.0.0.1:5674"),
    );
    expect(emu.connectionString).toContain("UseDevelopmentEmulator=true");
    expect(emu.provisioning).toBe("emulator");
  });

  it("refuses bad input with CONFIG_INVALID", () => {
    for (const bad of [
      "azure-servicebus://ns.servicebus.windows.net", // no credentials
      "azure-servicebus://127.0.0.1:5673?emulator=true&bogus=1",
      "azure-servicebus://127.0.0.1:5673?emulator=true&provisioning=emulator",
    ]) {
      expect(() => resolveOptions(new URL(bad)), bad).toThrow(
        /CONFIG_INVALID|query parameter|adminUrl|credentials/,
      );
    }
    const error = (() => {
      try {
        resolveOptions(new URL("azure-servicebus://x"), { connectionString: "SharedAccessKey=abc" });
      } catch (e) {
        return e;
      }
    })();
    expect(isSwitchyardError(error, "CONFIG_INVALID")).toBe(true);
    expect(String(error)).not.toContain("abc");
  });

  it("masks SAS keys and signatures in error text", () => {
    expect(redactSecrets("Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=abc123")).not.toContain(
      "abc123",
    );
    expect(redactSecrets("SharedAccessSignature sr=x&sig=zzz&se=1")).not.toContain("zzz");
  });
});

describe("against the emulator", () => {
  it("maps the envelope onto native fields and application properties", async () => {
    const bus = createBus({ transport: createTransport(url()), source: "svc/test" });
    await bus.ensure([{ kind: "queue", name: "native-map" }]);
    await bus.publishRaw(
      { kind: "queue", name: "native-map" },
      { type: "demo.created", data: { a: 1 }, correlationId: "corr-9", headers: { tenant: "t1" } },
    );
    const receiver = client.createReceiver("native-map", {
      receiveMode: "receiveAndDelete",
      skipParsingBodyAsJson: true,
    });
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(message).toMatchObject({
      subject: "demo.created",
      correlationId: "corr-9",
      contentType: "application/json",
    });
    expect(message!.applicationProperties).toMatchObject({
      tenant: "t1",
      "cloudEvents:type": "demo.created",
    });
    expect(JSON.parse(Buffer.from(message!.body).toString())).toEqual({ a: 1 });
    await receiver.close();
    await bus.close();
  });

  it("without provisioning, a missing entity is a typed error naming it", async () => {
    const transport = createTransport(new URL(`azure-servicebus://127.0.0.1:${emulator.port}?emulator=true`));
    const error = await transport
      .publish({ kind: "queue", name: "nowhere-queue" }, [{ id: "1", headers: {}, body: new Uint8Array(1) }])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isSwitchyardError(error, "TRANSPORT_ERROR"), String(error)).toBe(true);
    expect(String(error)).toContain("nowhere-queue");
    expect(String(error)).not.toContain("SAS_KEY_VALUE");
    await transport.publish({ kind: "queue", name: "declared" }, [
      { id: "2", headers: {}, body: new Uint8Array(1) },
    ]);
    await transport.close();
  });

  it("a delayed nack schedules a copy that keeps counting attempts", async () => {
    const transport = createTransport(url());
    await transport.provision!([{ kind: "queue", name: "delayed" }]);
    const seen: Array<{ attempt: number; at: number }> = [];
    const done = new Promise<void>((resolve) => {
      void transport.subscribe(
        { kind: "queue", name: "delayed", subscription: "delayed" },
        { prefetch: 1 },
        (d) => {
          seen.push({ attempt: d.attempt, at: Date.now() });
          if (d.attempt < 3) void d.nack({ delayMs: 300 });
          else void d.ack().then(resolve);
        },
      );
    });
    const message: WireMessage = { id: "delayed-1", headers: { h: "v" }, body: new Uint8Array([9]) };
    await transport.publish({ kind: "queue", name: "delayed" }, [message]);
    await done;
    expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(290);
    const info = await (await fetch(`${emulator.adminUrl}/queues/delayed`)).json();
    expect(info).toMatchObject({ activeMessageCount: 0, scheduledMessageCount: 0 });
    await transport.close();
  });

  it("keeps at most prefetch deliveries unsettled", async () => {
    const transport = createTransport(url());
    await transport.provision!([{ kind: "queue", name: "bounded" }]);
    const held: Array<() => Promise<void>> = [];
    await transport.subscribe(
      { kind: "queue", name: "bounded", subscription: "bounded" },
      { prefetch: 3 },
      (d) => {
        held.push(() => d.ack());
      },
    );
    await transport.publish(
      { kind: "queue", name: "bounded" },
      Array.from({ length: 10 }, (_, i) => ({ id: `b${i}`, headers: {}, body: new Uint8Array([i]) })),
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(held).toHaveLength(3);
    await Promise.all(held.splice(0).map((ack) => ack()));
    await new Promise((r) => setTimeout(r, 300));
    expect(held).toHaveLength(3);
    await transport.close();
  });
});

describe("sessions mode", () => {
  const sessionsUrl = () => new URL(`${url().toString()}&sessions=true&sessionIdleMs=200`);

  it("parses sessions=true and claims ordering group only then", () => {
    expect(resolveOptions(sessionsUrl()).sessions).toBe(true);
    expect(createTransport(sessionsUrl()).capabilities.ordering).toBe("group");
    expect(createTransport(url()).capabilities.ordering).toBe("none");
    expect(() => resolveOptions(new URL(`${url().toString()}&sessions=maybe`))).toThrow(/sessions/);
  });

  it("creates session entities (not the .dlq queues) and sends the key as sessionId", async () => {
    const transport = createTransport(sessionsUrl());
    await transport.provision!([
      { kind: "queue", name: "sess-native" },
      { kind: "queue", name: "sess-native.dlq" },
    ]);
    const info = (await (await fetch(`${emulator.adminUrl}/queues/sess-native`)).json()) as {
      requiresSession: boolean;
    };
    expect(info.requiresSession).toBe(true);
    const dlq = (await (await fetch(`${emulator.adminUrl}/queues/sess-native.dlq`)).json()) as {
      requiresSession: boolean;
    };
    expect(dlq.requiresSession).toBe(false);
    await transport.publish({ kind: "queue", name: "sess-native" }, [
      { id: "k1", key: "order-7", headers: {}, body: new Uint8Array([1]) },
      { id: "k2", headers: {}, body: new Uint8Array([2]) },
    ]);
    const keyed = await client.acceptSession("sess-native", "order-7", {
      receiveMode: "receiveAndDelete",
      skipParsingBodyAsJson: true,
    });
    const [m] = await keyed.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(m?.messageId).toBe("k1");
    await keyed.close();
    const keyless = await client.acceptNextSession("sess-native", { receiveMode: "receiveAndDelete" });
    expect(keyless.sessionId).toMatch(/^~keyless-[0-7]$/);
    await keyless.close();
    await transport.close();
  });

  it("delivers a key in order, one at a time; a delayed nack's copy keeps the session", async () => {
    const transport = createTransport(sessionsUrl());
    await transport.provision!([{ kind: "queue", name: "sess-order" }]);
    const seen: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    let nacked = false;
    const done = new Promise<void>((resolve) => {
      void transport.subscribe(
        { kind: "queue", name: "sess-order", subscription: "sess-order" },
        { prefetch: 4 },
        (d) => {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          seen.push(`${d.message.id}#${d.attempt}`);
          setTimeout(() => {
            inFlight--;
            if (d.message.id === "o0" && !nacked) {
              nacked = true;
              void d.nack({ delayMs: 200 });
            } else void d.ack().then(() => seen.length === 6 && resolve());
          }, 20);
        },
      );
    });
    await transport.publish(
      { kind: "queue", name: "sess-order" },
      Array.from({ length: 5 }, (_, i) => ({
        id: `o${i}`,
        key: "one-key",
        headers: {},
        body: new Uint8Array([i]),
      })),
    );
    await done;
    // One key: never two in flight; order kept; the delayed retry comes back in the same session.
    expect(maxInFlight).toBe(1);
    expect(seen).toEqual(["o0#1", "o1#1", "o2#1", "o3#1", "o4#1", "o0#2"]);
    await transport.close();
  });
});
