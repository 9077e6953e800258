import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { deleteRabbitMqEntitiesNamed } from "@switchyard/broker-stack/cleanup";
import { messages, Recorder, sleep } from "@switchyard/conformance";
import { type Bus, createBus, isSwitchyardError, type WireMessage } from "@switchyard/core";
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport, type RabbitOptions, type RabbitTransport } from "../src/index.js";

const { Ping } = messages;
const url = new URL(brokerEndpoint("rabbitmq").url);
const management = new URL(brokerEndpoint("rabbitmq-management").url);

/** The management HTTP API, for looking at what the adapter declared. */
async function api(path: string, method = "GET"): Promise<any> {
  const auth = Buffer.from(
    `${decodeURIComponent(management.username)}:${decodeURIComponent(management.password)}`,
  ).toString("base64");
  const response = await fetch(`${management.protocol}//${management.host}/api${path}`, {
    method,
    headers: { authorization: `Basic ${auth}` },
  });
  if (!response.ok && response.status !== 404) throw new Error(`${method} ${path}: ${response.status}`);
  return response.status === 204 || method !== "GET" ? undefined : response.json();
}

/** This run's names: what they name (queues, exchanges, delay queues) is deleted when the file is done. */
const made: string[] = [];
const unique = (label: string) => {
  const name = `sy-rmq-${label}-${randomUUID().slice(0, 8)}`;
  made.push(name);
  return name;
};

describeWithBroker(["rabbitmq", "rabbitmq-management"], "rabbitmq adapter: on the broker", () => {
  const buses: Bus[] = [];
  let raw: amqp.ChannelModel;
  const bus = (options: RabbitOptions = {}) => {
    const b = createBus({
      transport: createTransport(url, options as Record<string, unknown>),
      source: "test",
    });
    buses.push(b);
    return b;
  };
  beforeAll(async () => {
    raw = await amqp.connect(url.toString());
  });
  afterAll(async () => {
    await Promise.allSettled(buses.map((b) => b.close()));
    await raw.close();
    await deleteRabbitMqEntitiesNamed(made);
  }, 60_000);

  it("maps queues to durable quorum queues, topics to topic exchanges, and the envelope to AMQP", async () => {
    const b = bus();
    const queue = unique("map");
    const sent = await b.send(queue, Ping, { n: 1 }, { key: "k-1", headers: { "x-user": "ü" } });
    const info = await api(`/queues/%2F/${encodeURIComponent(queue)}`);
    expect(info).toMatchObject({ durable: true, type: "quorum" });

    const channel = await raw.createChannel();
    const got = await channel.get(queue, { noAck: true });
    await channel.close();
    expect(got).not.toBe(false);
    const message = got as amqp.GetMessage;
    expect(message.properties).toMatchObject({
      messageId: sent.id,
      deliveryMode: 2,
      type: Ping.type,
      contentType: "application/json", // the binding's home for datacontenttype
    });
    expect(message.properties.headers).not.toHaveProperty("cloudEvents:datacontenttype");
    expect(message.properties.headers).toMatchObject({
      "cloudEvents:id": sent.id,
      "cloudEvents:type": Ping.type,
      "cloudEvents:specversion": "1.0",
      "cloudEvents:partitionkey": "k-1",
      "x-user": "ü",
    });
    expect(JSON.parse(message.content.toString())).toEqual({ n: 1 });

    const topic = unique("topic");
    await b
      .subscribe(topic, "billing")
      .on(Ping, async () => {})
      .start();
    expect(await api(`/exchanges/%2F/${encodeURIComponent(topic)}`)).toMatchObject({
      type: "topic",
      durable: true,
    });
    const bindings = await api(`/exchanges/%2F/${encodeURIComponent(topic)}/bindings/source`);
    expect(bindings.map((x: { destination: string }) => x.destination)).toContain(`${topic}.billing`);
    expect(await api(`/queues/%2F/${encodeURIComponent(`${topic}.billing`)}`)).toMatchObject({
      type: "quorum",
    });
  });

  it("a delayed nack goes through a TTL queue back to the source, and attempts keep counting", async () => {
    const b = bus();
    const queue = unique("delay");
    const seen = new Recorder<{ attempt: number; at: number }>();
    await b
      .consume(queue)
      .on(Ping, async (_msg, ctx) => {
        seen.push({ attempt: ctx.attempt, at: Date.now() });
        if (ctx.attempt === 1) await ctx.nack({ delayMs: 700 });
        else if (ctx.attempt === 2) await ctx.nack();
        else if (ctx.attempt === 3) await ctx.nack({ delayMs: 300 });
      })
      .start();
    await b.send(queue, Ping, { n: 1 });
    const items = await seen.count(4, 15_000);
    expect(items.map((s) => s.attempt)).toEqual([1, 2, 3, 4]);
    expect(items[1]!.at - items[0]!.at).toBeGreaterThanOrEqual(650);
    expect(items[3]!.at - items[2]!.at).toBeGreaterThanOrEqual(250);
    const delayQueue = await api(`/queues/%2F/${encodeURIComponent(`${queue}.delay.700`)}`);
    expect(delayQueue.arguments).toMatchObject({
      "x-message-ttl": 700,
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": queue,
    });
  });

  it("classic queues count attempts themselves", async () => {
    const b = bus({ queueType: "classic" });
    const queue = unique("classic");
    const attempts = new Recorder<number>();
    await b
      .consume(queue)
      .on(Ping, async (_msg, ctx) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt < 3) await ctx.nack();
      })
      .start();
    await b.send(queue, Ping, { n: 1 });
    await attempts.count(3, 10_000);
    await sleep(200);
    expect(attempts.items).toEqual([1, 2, 3]);
    expect(await api(`/queues/%2F/${encodeURIComponent(queue)}`)).toMatchObject({ type: "classic" });
  });

  it("a queue declared elsewhere with other arguments is a typed error; the connection goes on", async () => {
    const queue = unique("conflict");
    const channel = await raw.createChannel();
    await channel.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "classic" } });
    await channel.close();
    const b = bus();
    const error = await b
      .consume(queue)
      .on(Ping, async () => {})
      .start()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isSwitchyardError(error, "CONFIG_INVALID"), String(error)).toBe(true);
    expect((error as Error).message).toContain(queue);
    expect((error as Error).message).toContain("x-queue-type");
    // The same transport still works for other queues.
    const other = unique("after-conflict");
    const got = new Recorder<number>();
    await b
      .consume(other)
      .on(Ping, async (msg) => got.push(msg.data.n))
      .start();
    await b.send(other, Ping, { n: 3 });
    expect(await got.count(1, 10_000)).toEqual([3]);
  });

  it("a foreign message without an id or CloudEvents headers is dead-lettered as decode", async () => {
    const b = bus();
    const queue = unique("foreign");
    const got = new Recorder<number>();
    await b
      .consume(queue)
      .on(Ping, async (msg) => got.push(msg.data.n))
      .start();
    const channel = await raw.createChannel();
    channel.sendToQueue(queue, Buffer.from("hello"), { headers: { origin: "legacy" } });
    await channel.close();
    await b.send(queue, Ping, { n: 8 });
    await got.count(1, 10_000);
    const letters = await b.deadLetters({ queue }).list({ idleMs: 800 });
    expect(letters.map((l) => [l.reason, Buffer.from(l.message.body).toString()])).toEqual([
      ["decode", "hello"],
    ]);
    expect(letters[0]!.message.headers.origin).toBe("legacy");
  });

  it("headers that cannot fit in one AMQP frame are MESSAGE_TOO_LARGE before sending", async () => {
    const transport = createTransport(url);
    try {
      const queue = unique("big-headers");
      await transport.provision?.([{ kind: "queue", name: queue }]);
      const message: WireMessage = {
        id: "big",
        headers: { "x-big": "h".repeat(200_000) },
        body: new Uint8Array(1),
      };
      const error = await transport.publish({ kind: "queue", name: queue }, [message]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isSwitchyardError(error, "MESSAGE_TOO_LARGE"), String(error)).toBe(true);
      expect((await api(`/queues/%2F/${encodeURIComponent(queue)}`)).messages ?? 0).toBe(0);
    } finally {
      await transport.close();
    }
  });

  it("publishing to a queue that does not exist fails instead of vanishing", async () => {
    const transport = createTransport(url);
    try {
      const error = await transport
        .publish({ kind: "queue", name: unique("missing") }, [
          { id: "m", headers: {}, body: new Uint8Array(1) },
        ])
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(isSwitchyardError(error, "TRANSPORT_ERROR"), String(error)).toBe(true);
    } finally {
      await transport.close();
    }
  });

  describe("recovery", () => {
    it("connections closed by the broker mid-stream: both sides reconnect and every message arrives", async () => {
      const name = unique("conn");
      const producer = bus({ connectionName: `${name}-producer` });
      const consumer = bus({ connectionName: `${name}-consumer` });
      const queue = unique("fault");
      const seen = new Set<number>();
      const got = new Recorder<number>();
      await consumer
        .consume(queue)
        .on(Ping, async (msg) => {
          if (!seen.has(msg.data.n)) {
            seen.add(msg.data.n);
            got.push(msg.data.n);
          }
        })
        .start({ concurrency: 16 });
      // The producer streams until 1,000 messages after the connections were dropped.
      let killedAt: number | undefined;
      let sent = 0;
      const sending = (async () => {
        await sleep(0);
        while (killedAt === undefined || sent < killedAt + 1000) {
          const from = sent;
          sent += 50;
          await Promise.all(
            Array.from({ length: 50 }, (_, i) => producer.send(queue, Ping, { n: from + i })),
          );
        }
      })();
      await got.count(500, 20_000);
      // Drop both connections from the broker side, as a broker restart would. The management API
      // lists connections once its statistics caught up (a few seconds).
      let ours: { name: string }[] = [];
      for (let i = 0; i < 100 && ours.length < 2; i++) {
        const connections: { name: string; client_properties?: { connection_name?: string } }[] =
          await api("/connections");
        ours = connections.filter((c) => c.client_properties?.connection_name?.startsWith(name));
        if (ours.length < 2) await sleep(200);
      }
      expect(ours.length).toBeGreaterThanOrEqual(2);
      killedAt = sent;
      for (const c of ours) await api(`/connections/${encodeURIComponent(c.name)}`, "DELETE");
      await sending;
      const total = sent;
      await got.count(total, 60_000, "every message after the reconnect");
      expect(killedAt).toBeLessThan(total);
      expect(((await producer.transport()) as RabbitTransport).reconnects).toBeGreaterThanOrEqual(1);
      expect(((await consumer.transport()) as RabbitTransport).reconnects).toBeGreaterThanOrEqual(1);
      expect(seen.size).toBe(total);
    });
  });
});
