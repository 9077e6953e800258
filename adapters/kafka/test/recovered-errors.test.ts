// A consumer whose connections to Kafka are cut reports the errors it recovers from to the bus's
// onError hook (attempt 0, willRetry) and goes on consuming. Kafka's CUT listener (127.0.0.1:9094)
// advertises 127.0.0.1:19094, where the proxy listens, so every connection of the consumer passes
// through it; one driver after the other (one proxy can hold 19094 at a time).
import { randomUUID } from "node:crypto";
import { describeWithBroker } from "@switchyard/broker-stack/available";
import { TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { type BusHooks, createBus, isSwitchyardError } from "@switchyard/core";
import { afterAll, describe, expect, it } from "vitest";
import type { DriverName } from "../src/driver.js";
import { createTransport } from "../src/transport.js";
import { deleteTopicsNamed, fastGroups, kafkaTransport } from "./helpers.js";

const { Ping } = messages;
type ErrorEvent = Parameters<NonNullable<BusHooks["onError"]>>[0];
const queues: string[] = [];

describeWithBroker("kafka", "kafka: recovered transport errors reach onError", () => {
  afterAll(() => deleteTopicsNamed({ names: queues }));

  describe.each<DriverName>(["platformatic", "kafkajs"])("driver %s", (driver) => {
    it("a cut connection is reported with attempt 0, willRetry, and a later message is handled", async () => {
      const queue = `sy-recovered-${driver}-${randomUUID().slice(0, 8)}`;
      queues.push(queue);
      const proxy = await TcpProxy.start({ host: "127.0.0.1", port: 9094 }, { port: 19094 });
      let reported: (event: ErrorEvent) => void = () => {};
      const firstError = new Promise<ErrorEvent>((resolve) => {
        reported = resolve;
      });
      const handled = new Map<number, () => void>();
      const handledOnce = (n: number) => new Promise<void>((resolve) => handled.set(n, resolve));
      const consumer = createBus({
        transport: createTransport(new URL(`kafka://${proxy.hostPort}?driver=${driver}`), { ...fastGroups }),
        source: "recovered-consumer",
        hooks: { onError: (event) => reported(event) },
      });
      const producer = createBus({ transport: kafkaTransport(driver), source: "recovered-producer" });
      try {
        await consumer
          .consume(queue)
          .on(Ping, async (msg) => handled.get(msg.data.n)?.())
          .start();
        const first = handledOnce(1);
        await producer.send(queue, Ping, { n: 1 });
        await first;

        proxy.cut();
        const event = await firstError;
        proxy.restore();
        expect(event).toMatchObject({ attempt: 0, willRetry: true, source: { name: queue } });
        expect(isSwitchyardError(event.error, "TRANSPORT_ERROR")).toBe(true);

        const second = handledOnce(2);
        await producer.send(queue, Ping, { n: 2 });
        await second;
      } finally {
        await Promise.allSettled([consumer.close(), producer.close()]);
        await proxy.close();
      }
    });
  });
});
