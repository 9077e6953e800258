// Compacted topics on a real Kafka: the adapter creates the topic with cleanup.policy=compact, the
// envelope key is the record key, a tombstone is a null value, and once the log cleaner has run a
// late subscriber reads only the latest value of each key.
import { randomUUID } from "node:crypto";
import { describeWithBroker } from "@switchyard/broker-stack/available";
import { messages, Recorder } from "@switchyard/conformance";
import { createBus, isSwitchyardError, type Message } from "@switchyard/core";
import { type Admin, ConfigResourceTypes, Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseKafkaConfig, topicConfigs } from "../src/options.js";
import { brokers, deleteTopicsNamed, kafkaTransport, topicNames } from "./helpers.js";

const Profile = messages.Ping; // { n, text }: `text` is the profile's value, the key its user

const raw = new Kafka({
  clientId: "kafka-compaction-test",
  brokers: brokers.split(","),
  logLevel: logLevel.NOTHING,
});

/** The key and value of every record now in the topic (one partition), read from the start. */
async function recordsNow(
  admin: Admin,
  topic: string,
): Promise<Array<{ key: string; value: string | null }>> {
  const [end] = await admin.fetchTopicOffsets(topic);
  const last = BigInt(end!.high) - 1n;
  const consumer = raw.consumer({ groupId: `raw-${randomUUID()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got: Array<{ key: string; value: string | null }> = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`could not read ${topic} to offset ${last}`)), 20_000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        got.push({ key: message.key?.toString() ?? "", value: message.value?.toString() ?? null });
        if (BigInt(message.offset) >= last) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return got;
}

describe("compacted topic options", () => {
  it("a compacted topic gets cleanup.policy=compact over the global topicConfig; its own configs win", () => {
    const config = parseKafkaConfig(new URL("kafka://127.0.0.1:9092"), {
      topicConfig: { "cleanup.policy": "delete", "retention.ms": "1000" },
      topics: { profiles: { compacted: true, configs: { "min.cleanable.dirty.ratio": "0.1" } } },
    });
    expect(topicConfigs(config, "profiles")).toMatchObject({
      "cleanup.policy": "compact",
      "retention.ms": "1000",
      "min.cleanable.dirty.ratio": "0.1",
    });
    expect(topicConfigs(config, "orders")["cleanup.policy"]).toBe("delete");
  });

  it("refuses bad per-topic settings with CONFIG_INVALID", () => {
    const bad = [
      { "no spaces allowed": { compacted: true } },
      { profiles: { compacted: "yes" } },
      { profiles: { compact: true } },
      { profiles: { configs: { "segment.ms": 100 } } },
      { profiles: null },
    ];
    for (const topics of bad) {
      const error = (() => {
        try {
          parseKafkaConfig(new URL("kafka://127.0.0.1:9092"), { topics } as never);
        } catch (e) {
          return e;
        }
      })();
      expect(isSwitchyardError(error, "CONFIG_INVALID"), JSON.stringify(topics)).toBe(true);
    }
  });
});

describeWithBroker("kafka", "kafka adapter: compacted topics", () => {
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
    it("refuses a message without a key on a compacted topic with CONFIG_INVALID", async () => {
      const topic = made.unique(`sy-compact-nokey-${driver}`);
      const bus = createBus({
        transport: kafkaTransport(driver, { topics: { [topic]: { compacted: true } } }),
      });
      try {
        const error = await bus.publish(topic, Profile, { n: 1 }).catch((e: unknown) => e);
        expect(isSwitchyardError(error, "CONFIG_INVALID"), String(error)).toBe(true);
      } finally {
        await bus.close();
      }
    });

    it("after compaction a late subscriber reads only the latest value of each key", async () => {
      const topic = made.unique(`sy-compact-${driver}`);
      // A cleaner that runs as soon as it can: tiny segments that roll every 100 ms, any dirty
      // share is worth cleaning, and tombstones are kept only briefly once cleaned.
      const topics = {
        [topic]: {
          compacted: true,
          configs: {
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.001",
            "delete.retention.ms": "100",
            "min.compaction.lag.ms": "0",
          },
        },
      };
      const producer = createBus({
        transport: kafkaTransport(driver, { partitions: 1, topics }),
        source: "profiles",
      });
      const reader = createBus({ transport: kafkaTransport(driver, { partitions: 1, topics }) });
      try {
        for (let version = 1; version <= 5; version++) {
          await producer.publish(topic, Profile, { n: version, text: `alice v${version}` }, { key: "alice" });
        }
        for (let version = 1; version <= 3; version++) {
          await producer.publish(topic, Profile, { n: version, text: `bob v${version}` }, { key: "bob" });
        }
        await producer.publish(topic, Profile, { n: 1, text: "carol v1" }, { key: "carol" });
        await producer.publish(topic, Profile, null, { key: "carol", tombstone: true });

        const described = await admin.describeConfigs({
          resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ["cleanup.policy"] }],
          includeSynonyms: false,
        });
        expect(described.resources[0]!.configEntries[0]!.configValue).toBe("compact");

        // The cleaner only compacts closed segments: a filler record now and then rolls the
        // segment holding the data, until the log shows one record per key (the cleaner wakes up
        // every 15 s by default, so this takes a while).
        const deadline = Date.now() + 100_000;
        let filler = 0;
        for (;;) {
          await producer.publish(topic, Profile, { n: ++filler, text: "filler" }, { key: "filler" });
          const records = await recordsNow(admin, topic);
          const count = (key: string) => records.filter((r) => r.key === key).length;
          if (count("alice") === 1 && count("bob") === 1 && count("carol") <= 1) break;
          if (Date.now() > deadline) throw new Error(`not compacted in time: ${JSON.stringify(records)}`);
          await new Promise((r) => setTimeout(r, 1_000));
        }

        // The late subscriber: a new group that starts at the earliest offset.
        const end = `end-${randomUUID()}`;
        const got = new Recorder<Message<{ n: number; text?: string }>>();
        await reader
          .subscribe(topic, "late-reader")
          .on(Profile, (msg) => got.push(msg))
          .start();
        await producer.publish(topic, Profile, { n: 0, text: end }, { key: "end" });
        await got.until((items) => items.some((m) => m.data?.text === end), 30_000, "the end marker");
        const byKey = (key: string) => got.items.filter((m) => m.key === key);
        expect(byKey("alice").map((m) => m.data.text)).toEqual(["alice v5"]);
        expect(byKey("bob").map((m) => m.data.text)).toEqual(["bob v3"]);
        // carol was deleted: her value is gone; the tombstone itself may still be there (it is kept
        // for delete.retention.ms after the cleaning that reached it), as null data.
        expect(byKey("carol").every((m) => m.tombstone === true && m.data === null)).toBe(true);
      } finally {
        await Promise.all([producer.close(), reader.close()]);
      }
    }, 180_000);
  });
});
