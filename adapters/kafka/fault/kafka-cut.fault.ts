// Fault test (issue 22): every connection between the buses and Kafka is cut through a loopback TCP
// proxy mid-stream, new ones refused for ~2 s, then let through again; Kafka keeps running (unlike
// kafka.fault.ts, this is safe beside other suites). Kafka's CUT listener (127.0.0.1:9094) advertises
// 127.0.0.1:19094, where the proxy listens, so bootstrap and partition-leader connections all pass
// through it. Once per driver, one after the other (one proxy can hold 19094 at a time).
import { randomUUID } from "node:crypto";
import { describeWithBroker } from "@switchyard/broker-stack/available";
import { connectionCutCase, Handled, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, describe, it } from "vitest";
import type { DriverName } from "../src/driver.js";
import { createTransport } from "../src/transport.js";
import { brokers, fastGroups } from "../test/helpers.js";

const { Ping } = messages;
const TOTAL = Number(process.env.FAULT_TOTAL ?? 10_000);
const CUT_LISTENER = { host: "127.0.0.1", port: 9094 };
const ADVERTISED_PORT = 19094;
const PREFIX = `sy-fault-kafka-cut-${randomUUID().slice(0, 8)}`;

describeWithBroker("kafka", "kafka fault: connections cut through a proxy mid-stream", () => {
  afterAll(async () => {
    // Topics left behind accumulate on the shared broker (thousands slowed it down before).
    const admin = new Kafka({
      clientId: "kafka-cut-cleanup",
      brokers: brokers.split(","),
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    try {
      const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(PREFIX));
      if (topics.length > 0) await admin.deleteTopics({ topics });
    } finally {
      await admin.disconnect();
    }
  });

  describe.each<DriverName>(["platformatic", "kafkajs"])("driver %s", (driver) => {
    it("10,000 messages: both sides reconnect on their own, every message is handled in key order", async () => {
      const proxy = await TcpProxy.start(CUT_LISTENER, { port: ADVERTISED_PORT });
      const url = new URL(`kafka://${proxy.hostPort}?driver=${driver}`);
      const queue = `${PREFIX}-${driver}`;
      const producer = createBus({
        transport: createTransport(url, { ...fastGroups }),
        source: "fault-producer",
      });
      const errors: string[] = [];
      const consumer = createBus({
        transport: createTransport(url, { ...fastGroups }),
        source: "fault-consumer",
        hooks: { onError: (event) => errors.push(String(event.error)) },
      });
      const handled = new Handled();
      await consumer
        .consume(queue)
        .on(Ping, async (msg) => handled.add(msg.data.n, msg.key))
        .start({ concurrency: 32 });
      await connectionCutCase({
        broker: `kafka (${driver})`,
        adapter: "adapters/kafka/fault",
        proxy,
        total: TOTAL,
        handled,
        errors,
        producer,
        consumer,
        ordered: true,
        send: (numbers) =>
          producer
            .sendBatch(
              queue,
              Ping,
              numbers.map((n) => ({ data: { n }, options: { id: `${queue}-${n}`, key: `k${n % 16}` } })),
            )
            .then(() => {}),
      });
    });
  });
});
