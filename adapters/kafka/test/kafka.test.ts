// What the adapter leaves on a real Kafka, read back with a plain kafkajs client: topics and their
// partitions, records in CloudEvents binary mode, retry copies, and dead letters with their origin.
import { randomUUID } from "node:crypto";
import { describeWithBroker } from "@switchyard/broker-stack/available";
import { messages, Recorder } from "@switchyard/conformance";
import { createBus, FAULT, FOREIGN_TYPE, PermanentError } from "@switchyard/core";
import { type Admin, Kafka, type KafkaMessage, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ATTEMPT_HEADER, DUE_HEADER, ORIGIN_HEADERS } from "../src/mapping.js";
import { brokers, deleteTopicsNamed, kafkaTransport, topicNames } from "./helpers.js";

const Order = messages.Ping;

const raw = new Kafka({
  clientId: "kafka-adapter-test",
  brokers: brokers.split(","),
  logLevel: logLevel.NOTHING,
});

/** Every record of a topic, read from the start by a throwaway group. */
async function readAll(topic: string, count: number): Promise<Array<KafkaMessage & { partition: number }>> {
  const consumer = raw.consumer({ groupId: `raw-${randomUUID()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got: Array<KafkaMessage & { partition: number }> = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${got.length} of ${count} records on ${topic}`)),
      15_000,
    );
    void consumer.run({
      eachMessage: async ({ message, partition }) => {
        got.push({ ...message, partition });
        if (got.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return got;
}

const text = (headers: KafkaMessage["headers"], name: string) => headers?.[name]?.toString();

describeWithBroker("kafka", "kafka adapter: what lands on the broker", () => {
  let admin: Admin;
  beforeAll(async () => {
    admin = raw.admin();
    await admin.connect();
  });
  // The topics the cases made (with their .retry/.dlq topics), deleted when done, passed or failed.
  const made = topicNames();
  afterAll(async () => {
    await admin.disconnect();
    await deleteTopicsNamed(made);
  }, 60_000);

  describe.concurrent.each(["platformatic", "kafkajs"] as const)("%s driver", (driver) => {
    it("a publish is one record: key, one content-type header, the CloudEvent as JSON (structured, the default)", async () => {
      const topic = made.unique(`sy-st-${driver}`);
      const bus = createBus({ transport: kafkaTransport(driver), source: "svc" });
      try {
        const sent = await bus.publish(topic, Order, { n: 7 }, { key: "order-7", headers: { tenant: "t1" } });
        const [record] = await readAll(topic, 1);
        expect(record!.key?.toString()).toBe("order-7");
        expect(Object.keys(record!.headers ?? {}).sort()).toEqual(["content-type", "tenant"]);
        expect(text(record!.headers, "content-type")).toBe("application/cloudevents+json");
        expect(JSON.parse(record!.value!.toString())).toEqual({
          specversion: "1.0",
          id: sent.id,
          type: Order.type,
          source: "svc",
          time: sent.time,
          datacontenttype: "application/json",
          schemaversion: 1,
          partitionkey: "order-7",
          data: { n: 7 },
        });
      } finally {
        await bus.close();
      }
    });

    it("with contentMode=binary a publish is one record: key, ce_ headers, JSON value; topics have the configured partitions", async () => {
      const topic = made.unique(`sy-map-${driver}`);
      const bus = createBus({
        transport: kafkaTransport(driver, { partitions: 2, contentMode: "binary" }),
        source: "svc",
      });
      try {
        const sent = await bus.publish(topic, Order, { n: 7 }, { key: "order-7", headers: { tenant: "t1" } });
        const [record] = await readAll(topic, 1);
        expect(record!.key?.toString()).toBe("order-7");
        expect(JSON.parse(record!.value!.toString())).toEqual({ n: 7 });
        expect(text(record!.headers, "ce_id")).toBe(sent.id);
        expect(text(record!.headers, "ce_type")).toBe(Order.type);
        expect(text(record!.headers, "ce_source")).toBe("svc");
        expect(text(record!.headers, "ce_specversion")).toBe("1.0");
        expect(text(record!.headers, "ce_partitionkey")).toBe("order-7");
        expect(text(record!.headers, "tenant")).toBe("t1");
        const meta = await admin.fetchTopicMetadata({ topics: [topic] });
        expect(meta.topics[0]!.partitions).toHaveLength(2);
      } finally {
        await bus.close();
      }
    });

    it("nacks become retry records with attempt and due time; the dead letter names the original offset", async () => {
      const topic = made.unique(`sy-dl-${driver}`);
      const bus = createBus({ transport: kafkaTransport(driver), source: "svc" });
      const attempts = new Recorder<number>();
      const dead = new Recorder<string>();
      const consumerBus = createBus({
        transport: kafkaTransport(driver),
        hooks: { onDeadLetter: (e) => dead.push(e.envelope?.id ?? "?") },
      });
      try {
        await consumerBus
          .subscribe(topic, "billing")
          .on(Order, async (_msg, ctx) => {
            attempts.push(ctx.attempt);
            if (ctx.attempt < 3) throw new Error("not yet");
            throw new PermanentError("give up");
          })
          .start({ retry: { maxAttempts: 5, initialDelayMs: 50, maxDelayMs: 50 } });
        const sent = await bus.publish(topic, Order, { n: 1 }, { key: "k" });
        await dead.count(1, 20_000);
        expect(attempts.items).toEqual([1, 2, 3]);
        const [original] = await readAll(topic, 1);
        const retries = await readAll(`${topic}.billing.retry`, 2);
        expect(retries.map((r) => text(r.headers, ATTEMPT_HEADER)).sort()).toEqual(["2", "3"]);
        for (const retry of retries) {
          expect(Number(text(retry.headers, DUE_HEADER))).toBeGreaterThan(Number(original!.timestamp));
          expect(retry.key?.toString()).toBe("k");
        }
        const [letter] = await readAll(`${topic}.billing.dlq`, 1);
        expect(JSON.parse(letter!.value!.toString()).id).toBe(sent.id); // structured: the id is in the value
        expect(text(letter!.headers, FAULT.reason)).toBe("handler-error");
        expect(text(letter!.headers, FAULT.attempts)).toBe("3");
        expect(text(letter!.headers, FAULT.subscription)).toBe("billing");
        expect(text(letter!.headers, ORIGIN_HEADERS.topic)).toBe(topic);
        expect(text(letter!.headers, ORIGIN_HEADERS.partition)).toBe(String(original!.partition));
        expect(text(letter!.headers, ORIGIN_HEADERS.offset)).toBe(original!.offset);
        expect(text(letter!.headers, ATTEMPT_HEADER)).toBeUndefined();
      } finally {
        await Promise.all([bus.close(), consumerBus.close()]);
      }
    });

    it("a record from a plain Kafka producer is dead-lettered as decode and the consumer goes on", async () => {
      const queue = made.unique(`sy-foreign-${driver}`);
      const bus = createBus({ transport: kafkaTransport(driver) });
      const got = new Recorder<number>();
      try {
        await bus
          .consume(queue)
          .on(Order, async (msg) => got.push(msg.data.n))
          .start();
        const producer = raw.producer();
        await producer.connect();
        await producer.send({ topic: queue, messages: [{ value: "not a cloudevent" }] });
        await producer.disconnect();
        await bus.send(queue, Order, { n: 2 });
        await got.count(1, 15_000);
        const letters = await bus.deadLetters({ queue }).list({ idleMs: 1000 });
        expect(letters.map((l) => [l.reason, Buffer.from(l.message.body).toString()])).toEqual([
          ["decode", "not a cloudevent"],
        ]);
        expect(letters[0]!.id).toMatch(new RegExp(`^kafka:${queue}/\\d/0$`));
      } finally {
        await bus.close();
      }
    });

    it("onAny({ foreign: true }) takes a plain Kafka record as raw bytes, with its key and headers", async () => {
      const queue = made.unique(`sy-raw-${driver}`);
      const bus = createBus({ transport: kafkaTransport(driver) });
      const got = new Recorder<{ id: string; type: string; key?: string; data: unknown; headers: object }>();
      try {
        await bus
          .consume(queue)
          .onAny(async (msg) => got.push(msg), { foreign: true })
          .start();
        const producer = raw.producer();
        await producer.connect();
        await producer.send({
          topic: queue,
          messages: [{ key: "acct-9", value: Buffer.from([1, 2, 3]), headers: { origin: "legacy" } }],
        });
        await producer.disconnect();
        const [msg] = await got.count(1, 15_000);
        expect(msg).toMatchObject({ type: FOREIGN_TYPE, key: "acct-9", headers: { origin: "legacy" } });
        expect([...(msg!.data as Uint8Array)]).toEqual([1, 2, 3]);
        expect(msg!.id).toMatch(new RegExp(`^kafka:${queue}/\\d/0$`));
      } finally {
        await bus.close();
      }
    });

    it("members joining and leaving mid-stream: every message handled, duplicates bounded by what was in flight", async () => {
      const queue = made.unique(`sy-rebalance-${driver}`);
      const producer = createBus({ transport: kafkaTransport(driver) });
      const seen = new Recorder<number>();
      const member = (label: string) => {
        const bus = createBus({ transport: kafkaTransport(driver), source: label });
        const consumer = bus
          .consume(queue)
          .on(Order, async (msg) => {
            seen.push(msg.data.n);
            await new Promise((r) => setTimeout(r, 1));
          })
          .start({ concurrency: 4, prefetch: 8 });
        return { bus, consumer };
      };
      const total = 3000;
      const a = member("a");
      const b = { bus: undefined as ReturnType<typeof createBus> | undefined };
      try {
        await a.consumer;
        let n = 0;
        const publishing = (async () => {
          while (n < total) {
            await Promise.all(Array.from({ length: 50 }, () => producer.send(queue, Order, { n: n++ })));
            await new Promise((r) => setTimeout(r, 5));
          }
        })();
        await seen.count(500, 20_000);
        const joined = member("b"); // a rebalance while a is busy
        b.bus = joined.bus;
        await joined.consumer;
        await seen.count(1500, 20_000);
        await (await a.consumer).stop(); // and another one when a leaves
        await publishing;
        await seen.until((items) => new Set(items).size === total, 30_000, "every message");
        const duplicates = seen.length - total;
        // At most what was fetched but not committed when partitions moved: a few prefetches' worth.
        expect(duplicates).toBeLessThanOrEqual(200);
      } finally {
        await Promise.all([producer.close(), a.bus.close(), b.bus?.close()]);
      }
    });
  });
});
