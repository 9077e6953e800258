// A consumer whose connections to Kafka are cut reports the errors it recovers from to the bus's
// onError hook (attempt 0, willRetry) and goes on consuming. Kafka's CUT listener (127.0.0.1:9094)
// advertises 127.0.0.1:19094, where the proxy listens, so every connection of the consumer passes
// through it; one driver after the other (one proxy can hold 19094 at a time).
import { randomUUID } from "node:crypto";
import { describeWithBroker } from "@switchyard/broker-stack/available";
import { TcpProxy } from "@switchyard/broker-stack/fault";
import { checkRecoveredErrors } from "@switchyard/conformance";
import { afterAll, describe, it } from "vitest";
import type { DriverName } from "../src/driver.js";
import { createTransport } from "../src/transport.js";
import { deleteTopicsNamed, fastGroups, kafkaTransport } from "./helpers.js";

const queues: string[] = [];

describeWithBroker("kafka", "kafka: recovered transport errors reach onError", () => {
  afterAll(() => deleteTopicsNamed({ names: queues }));

  describe.each<DriverName>(["platformatic", "kafkajs"])("driver %s", (driver) => {
    it("a cut connection is reported with attempt 0, willRetry, and a later message is handled", async () => {
      const queue = `sy-recovered-${driver}-${randomUUID().slice(0, 8)}`;
      queues.push(queue);
      const proxy = await TcpProxy.start({ host: "127.0.0.1", port: 9094 }, { port: 19094 });
      try {
        await checkRecoveredErrors({
          consumerTransport: createTransport(new URL(`kafka://${proxy.hostPort}?driver=${driver}`), {
            ...fastGroups,
          }),
          producerTransport: kafkaTransport(driver),
          queue,
          cut: () => proxy.cut(),
          restore: () => proxy.restore(),
        });
      } finally {
        await proxy.close();
      }
    });
  });
});
