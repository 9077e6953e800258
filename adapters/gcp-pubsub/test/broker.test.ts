import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { PubSub } from "@google-cloud/pubsub";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { deletePubSubEntitiesNamed } from "@switchyard/broker-stack/cleanup";
import { messages, Recorder } from "@switchyard/conformance";
import {
  type Bus,
  BYTES_CONTENT_TYPE,
  createBus,
  type Delivery,
  isSwitchyardError,
  type Message,
} from "@switchyard/core";
import { afterAll, expect, it } from "vitest";
import * as adapter from "../src/index.js";

const emulator = brokerEndpoint("pubsub").url;
process.env.PUBSUB_EMULATOR_HOST = emulator;
process.env.METADATA_SERVER_DETECTION = "none";
const PROJECT = "switchyard-broker-test";
const URL_ = `pubsub://${PROJECT}?emulator=${emulator}`;

const buses: Bus[] = [];
function bus(url = URL_, adapterOptions: Record<string, unknown> = {}): Bus {
  const b = createBus({ url, adapter, adapterOptions, source: "pubsub-test" });
  buses.push(b);
  return b;
}
const raw = new PubSub({ projectId: PROJECT, apiEndpoint: emulator });
const names = new adapter.Names("sy");
/** The random part of each name, found in every topic and subscription made from it (DLQs too). */
const made: string[] = [];
const unique = (label: string) => {
  const id = randomUUID().slice(0, 8);
  made.push(id);
  return `${label}.${id}`;
};

afterAll(async () => {
  await Promise.allSettled(buses.map((b) => b.close()));
  await raw.close();
  // What the cases made, passed or failed: the emulator keeps every topic until it restarts.
  await deletePubSubEntitiesNamed(PROJECT, made);
}, 60_000);

describeWithBroker("pubsub", "gcp-pubsub adapter: on the emulator", () => {
  it("creates the mapping on the broker: ordered subscription with a dead-letter policy and a listable DLQ", async () => {
    const b = bus();
    const topic = unique("orders.created");
    const consumer = await b
      .subscribe(topic, "billing")
      .on(messages.Ping, async () => {})
      .start({ retry: { maxAttempts: 3 } });
    const [meta] = await raw.subscription(names.subscription(topic, "billing")).getMetadata();
    expect(meta.topic).toBe(raw.topic(names.topic(topic)).name);
    expect(meta.enableMessageOrdering).toBe(true);
    // maxAttempts 3 is below what the service allows: the policy is clamped to 5, the core dead-letters at 3.
    expect(meta.deadLetterPolicy).toMatchObject({
      deadLetterTopic: raw.topic(names.queueTopic(`${topic}.billing.dlq`)).name,
      maxDeliveryAttempts: 5,
    });
    const [dlq] = await raw.subscription(names.queueSubscription(`${topic}.billing.dlq`)).exists();
    expect(dlq).toBe(true);
    await consumer.stop();
  });

  it("refuses a conflicting existing subscription with a typed error naming it", async () => {
    const topic = unique("conflict");
    const [created] = await raw.createTopic(names.topic(topic));
    await created.createSubscription(names.subscription(topic, "s"), { enableMessageOrdering: false });
    const error = await bus()
      .subscribe(topic, "s")
      .on(messages.Ping, async () => {})
      .start()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isSwitchyardError(error, "CONFIG_INVALID"), String(error)).toBe(true);
    expect(String((error as Error).message)).toContain(names.subscription(topic, "s"));
    expect(String((error as Error).message)).toContain("ordering");
  });

  // Without ordering: the emulator's dead-letter forwarding fails on ordered subscriptions (README).
  it("reports the service's deliveryAttempt, and its dead-letter policy moves a message the core kept retrying", async () => {
    const b = bus(URL_, { queueMaxDeliveryAttempts: 5, ordering: false });
    const queue = unique("backstop");
    const attempts = new Recorder<number>();
    await b
      .consume(queue)
      .on(messages.Ping, async (_msg, ctx) => {
        attempts.push(ctx.attempt);
        await ctx.nack();
      })
      .start({ retry: { maxAttempts: 50 } });
    const sent = await b.send(queue, messages.Ping, { n: 1 });
    await attempts.count(5, 20_000);
    const letters = await b.deadLetters({ queue }).list({ idleMs: 3000 });
    expect(letters.map((l) => [l.id, l.reason, l.attempts])).toEqual([[sent.id, "max-attempts", 5]]);
    expect(attempts.items).toEqual([1, 2, 3, 4, 5]);
  });

  // On the emulator the client's flow control is off (README, "Dead streams"): the bound is the adapter's.
  it("keeps at most prefetch deliveries unsettled itself, handing out the next one as one settles", async () => {
    const transport = adapter.createTransport(new URL(URL_), { ordering: false });
    const queue = unique("prefetch");
    await transport.provision?.([{ kind: "queue", name: queue }]);
    const total = 30;
    await transport.publish(
      { kind: "queue", name: queue },
      Array.from({ length: total }, (_, n) => ({ id: `m${n}`, headers: {}, body: Buffer.from(String(n)) })),
    );
    const unsettled: Delivery[] = [];
    const seen = new Set<string>();
    let mostUnsettled = 0;
    let waiters: Array<() => void> = [];
    const until = (check: () => boolean) =>
      new Promise<void>((resolve) => {
        const waiter = () => (check() ? resolve() : waiters.push(waiter));
        waiter();
      });
    const subscription = await transport.subscribe(
      { kind: "queue", name: queue, subscription: queue },
      { prefetch: 4 },
      (delivery) => {
        unsettled.push(delivery);
        seen.add(delivery.message.id);
        mostUnsettled = Math.max(mostUnsettled, unsettled.length);
        const woken = waiters;
        waiters = [];
        for (const waiter of woken) waiter();
      },
    );
    try {
      await until(() => unsettled.length === 4);
      // Nothing more while four are held, though the client has read the rest.
      await sleep(1000);
      expect(seen.size).toBe(4);
      while (seen.size < total) {
        const expected = seen.size + 1;
        await unsettled.shift()!.ack();
        await until(() => seen.size === expected);
      }
      expect(mostUnsettled).toBe(4);
      await Promise.all(unsettled.map((d) => d.ack()));
    } finally {
      await subscription.close();
      await transport.close();
    }
  });

  it("a foreign publisher's message (only data, or only attributes) is dead-lettered as decode; the consumer goes on", async () => {
    const b = bus();
    const queue = unique("foreign");
    const got = new Recorder<number>();
    await b
      .consume(queue)
      .on(messages.Ping, async (msg) => got.push(msg.data.n))
      .start();
    const topic = raw.topic(names.queueTopic(queue));
    await topic.publishMessage({ data: Buffer.from("plain data") });
    await topic.publishMessage({ data: Buffer.alloc(0), attributes: { only: "attributes" } });
    await b.send(queue, messages.Ping, { n: 3 });
    await got.count(1, 10_000);
    const letters = await b.deadLetters({ queue }).list({ idleMs: 2000 });
    expect(letters.map((l) => l.reason)).toEqual(["decode", "decode"]);
    const bodies = letters.map((l) => Buffer.from(l.message.body).toString()).sort();
    expect(bodies).toEqual(["", "plain data"]);
  });

  it("packs over-limit attributes (150 headers, a 3 KB value) and an empty raw message round-trips", async () => {
    const b = bus();
    const queue = unique("packed");
    const got = new Recorder<Message>();
    const wires = new Recorder<{ headers: Record<string, string>; body: Uint8Array }>();
    await b
      .consume(queue)
      .onAny(async (msg, ctx) => {
        got.push(msg);
        wires.push(ctx.wire);
      })
      .start();
    const headers: Record<string, string> = { big: "x".repeat(3000) };
    for (let i = 0; i < 150; i++) headers[`h-${i}`] = `v-${i}`;
    const sent = await b.publishRaw(
      { kind: "queue", name: queue },
      { type: "t.packed", dataContentType: BYTES_CONTENT_TYPE, data: new Uint8Array([1, 2, 3]), headers },
    );
    const [received] = await got.count(1, 10_000);
    expect(received!.id).toBe(sent.id);
    expect(received!.headers).toEqual(headers);
    expect([...(received!.data as Uint8Array)]).toEqual([1, 2, 3]);
  });

  it("header values containing {{projectId}} arrive unchanged (the client's request path would rewrite them)", async () => {
    const b = bus();
    const queue = unique("token");
    const got = new Recorder<Message>();
    await b
      .consume(queue)
      .onAny(async (msg) => got.push(msg))
      .start();
    const headers = { template: "projects/{{projectId}}/x", plain: "p" };
    await b.publishRaw(
      { kind: "queue", name: queue },
      { type: "t.token", dataContentType: BYTES_CONTENT_TYPE, data: new Uint8Array([1]), headers },
    );
    const [received] = await got.count(1, 10_000);
    expect(received!.headers).toEqual(headers);
  });

  it("an empty message without attributes travels (Pub/Sub alone would refuse it)", async () => {
    const b = bus();
    const queue = unique("empty");
    await b.ensure([{ kind: "queue", name: queue }]);
    const transport = await b.transport();
    await transport.publish({ kind: "queue", name: queue }, [
      { id: "e", headers: {}, body: new Uint8Array(0) },
    ]);
    const seen = new Recorder<{ headers: Record<string, string>; size: number }>();
    const sub = await transport.subscribe(
      { kind: "queue", name: queue, subscription: queue },
      { prefetch: 1 },
      (d) => {
        seen.push({ headers: d.message.headers, size: d.message.body.byteLength });
        void d.ack();
      },
    );
    const [delivery] = await seen.count(1, 10_000);
    await sub.close();
    expect(delivery).toEqual({ headers: {}, size: 0 });
  });

  it("a message near the 9 MiB declared limit is accepted by the emulator", async () => {
    const b = bus();
    const queue = unique("huge");
    const got = new Recorder<number>();
    await b
      .consume(queue)
      .onAny(async (msg) => got.push((msg.data as Uint8Array).byteLength))
      .start();
    const size = 9 * 1024 * 1024 - 4096;
    await b.publishRaw(
      { kind: "queue", name: queue },
      { type: "t.huge", dataContentType: BYTES_CONTENT_TYPE, data: new Uint8Array(size).fill(7) },
    );
    expect(await got.count(1, 30_000)).toEqual([size]);
  });

  it("an unreachable emulator fails with a typed error within a bounded time", async () => {
    const b = bus(`pubsub://${PROJECT}?emulator=127.0.0.1:1&connectTimeoutMs=1500`);
    const started = Date.now();
    const error = await b.send("q", messages.Ping, { n: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSwitchyardError(error, "TRANSPORT_ERROR"), String(error)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
