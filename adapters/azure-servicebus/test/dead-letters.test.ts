import { ServiceBusClient, type ServiceBusReceivedMessage } from "@azure/service-bus";
import { messages } from "@switchyard/conformance";
import { createBus, PermanentError } from "@switchyard/core";
import { type ServiceBusEmulator, startEmulator } from "@switchyard/servicebus-emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const { Ping } = messages;

let emulator: ServiceBusEmulator;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startEmulator({
    port: 0,
    adminPort: 0,
    config: { queues: [{ name: "dl-ttl", deadLetteringOnMessageExpiration: true }] },
  });
  client = new ServiceBusClient(emulator.connectionString);
});
afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

const url = (query = "") =>
  new URL(
    `azure-servicebus://127.0.0.1:${emulator.port}?emulator=true&adminUrl=${emulator.adminUrl}${query}`,
  );

/** Receives (peek-lock) until `count` messages came or `timeoutMs` passed, then abandons them. */
async function browse(path: string, count: number, timeoutMs = 5000): Promise<ServiceBusReceivedMessage[]> {
  const receiver = client.createReceiver(path, { receiveMode: "peekLock", skipParsingBodyAsJson: true });
  const got: ServiceBusReceivedMessage[] = [];
  const until = Date.now() + timeoutMs;
  while (got.length < count && Date.now() < until) {
    got.push(
      ...(await receiver.receiveMessages(count - got.length, { maxWaitTimeInMs: until - Date.now() })),
    );
  }
  for (const message of got) await receiver.abandonMessage(message);
  await receiver.close();
  return got;
}

describe("native dead-lettering", () => {
  it("handler and broker dead letters share the $DeadLetterQueue; the core lists and redrives both", async () => {
    // maxDeliveryCount=2 on the entities the adapter creates, so the broker's own dead-lettering shows.
    const bus = createBus({ transport: createTransport(url("&maxDeliveryCount=2")), source: "svc/dl" });
    const topic = "dl-orders";
    const sub = "billing";
    await bus.ensure([
      { kind: "topic", name: topic },
      { kind: "subscription", topic, name: sub, deadLetterQueue: `${topic}.${sub}.dlq`, maxAttempts: 5 },
    ]);
    const entity = `${topic}/Subscriptions/${sub}`;

    // B: received and abandoned twice by a raw receiver: Service Bus dead-letters it itself.
    const sentB = await bus.publish(topic, Ping, { n: 2, text: "B" });
    const raw = client.createReceiver(topic, sub, { receiveMode: "peekLock", skipParsingBodyAsJson: true });
    for (let i = 0; i < 2; i++) {
      const [message] = await raw.receiveMessages(1, { maxWaitTimeInMs: 5000 });
      expect(message?.messageId).toBe(sentB.id);
      await raw.abandonMessage(message!);
    }
    await raw.close();

    // A: the handler fails for good: the core dead-letters it natively.
    let failing = true;
    const handled: string[] = [];
    await bus
      .subscribe(topic, sub)
      .on(Ping, async (msg) => {
        if (failing && msg.data.text === "A") throw new PermanentError("card declined");
        handled.push(msg.data.text!);
      })
      .start();
    const sentA = await bus.publish(topic, Ping, { n: 1, text: "A" });

    const letters = await browse(`${entity}/$DeadLetterQueue`, 2);
    const byId = new Map(letters.map((m) => [String(m.messageId), m]));
    expect([...byId.keys()].sort()).toEqual([sentA.id, sentB.id].sort());
    const a = byId.get(sentA.id)!;
    expect(a.deadLetterReason).toBe("handler-error");
    expect(a.deadLetterErrorDescription).toBe("PermanentError: card declined");
    expect(a.deadLetterSource).toBe(entity);
    expect(a.applicationProperties).toMatchObject({
      "cloudEvents:dlreason": "handler-error",
      "cloudEvents:dlsubscription": sub,
      "cloudEvents:dldestination": `topic:${topic}`,
      "cloudEvents:dlmessagetype": "conformance.ping",
      "cloudEvents:dlattempts": "1",
    });
    const b = byId.get(sentB.id)!;
    expect(b.deadLetterReason).toBe("MaxDeliveryCountExceeded");
    // Nothing went to the core's generic DLQ queue.
    const generic = (await (await fetch(`${emulator.adminUrl}/queues/${topic}.${sub}.dlq`)).json()) as {
      activeMessageCount?: number;
    };
    expect(generic.activeMessageCount ?? 0).toBe(0);

    const dlq = bus.deadLetters(topic, sub);
    const listed = await dlq.list({ idleMs: 300 });
    const records = new Map(listed.map((l) => [l.id, l]));
    expect(records.size).toBe(2);
    expect(records.get(sentA.id)).toMatchObject({
      reason: "handler-error",
      error: { type: "PermanentError", message: "card declined" },
      subscription: sub,
      destination: { kind: "topic", name: topic },
    });
    expect(records.get(sentB.id)).toMatchObject({
      reason: "max-attempts",
      subscription: sub,
      destination: { kind: "topic", name: topic },
    });
    expect(records.get(sentB.id)!.reasonText).toMatch(/^MaxDeliveryCountExceeded: /);
    expect(records.get(sentB.id)!.attempts).toBeGreaterThanOrEqual(2);
    expect(records.get(sentB.id)!.envelope?.data).toEqual({ n: 2, text: "B" });
    // Service Bus' own dead-letter properties are not part of the message that would be redriven.
    expect(records.get(sentB.id)!.message.headers).not.toHaveProperty("DeadLetterReason");

    failing = false;
    expect(await dlq.redrive({ idleMs: 300 })).toBe(2);
    await expect.poll(() => [...handled].sort(), { timeout: 10_000 }).toEqual(["A", "B"]);
    expect(await dlq.list({ idleMs: 300 })).toEqual([]);
    const info = (await (
      await fetch(`${emulator.adminUrl}/topics/${topic}/subscriptions/${sub}`)
    ).json()) as {
      deadLetterMessageCount: number;
    };
    expect(info.deadLetterMessageCount).toBe(0);
    await bus.close();
  });

  it("a message Service Bus dead-lettered on expiry is listed as expired", async () => {
    const bus = createBus({ transport: createTransport(url("&provisioning=none")), source: "svc/dl" });
    const sender = client.createSender("dl-ttl");
    await sender.sendMessages({ messageId: "ttl-1", body: Buffer.from("{}"), timeToLive: 50 });
    await sender.close();
    // A time to live is time: outlive it. Expiry is applied when the queue is next looked at (the
    // client's first peek of the entity starts at its first message).
    await new Promise((r) => setTimeout(r, 150));
    const peeker = client.createReceiver("dl-ttl");
    expect(await peeker.peekMessages(1)).toEqual([]);
    await peeker.close();
    const [letter] = await bus.deadLetters({ queue: "dl-ttl" }).list({ idleMs: 300 });
    expect(letter).toMatchObject({
      id: "ttl-1",
      reason: "expired",
      destination: { kind: "queue", name: "dl-ttl" },
    });
    expect(letter!.reasonText).toMatch(/^TTLExpiredException/);
    await bus.close();
  });
});
