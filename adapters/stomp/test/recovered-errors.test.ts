// A consumer whose STOMP connection is cut (through a loopback proxy; the broker keeps running)
// reports the loss and its refused reconnects to the bus's onError hook (attempt 0, willRetry),
// reconnects and goes on consuming. On both brokers.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { type BusHooks, createBus, isSwitchyardError } from "@switchyard/core";
import { expect, it } from "vitest";
import { createTransport } from "../src/index.js";

const { Ping } = messages;
type ErrorEvent = Parameters<NonNullable<BusHooks["onError"]>>[0];

const brokers = [
  { broker: "activemq", dialect: "activemq" },
  { broker: "rabbitmq-stomp", dialect: "rabbitmq" },
] as const;

for (const { broker, dialect } of brokers) {
  describeWithBroker(broker, `stomp on ${broker}: recovered transport errors reach onError`, () => {
    it("a cut connection and the refused reconnects are reported (attempt 0, willRetry, no password); a later message is handled", async () => {
      const url = new URL(brokerEndpoint(broker).url);
      url.protocol = `stomp+${dialect}:`;
      const proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port) });
      const proxied = new URL(url);
      proxied.host = proxy.hostPort;
      const queue = `sy-stomp-recovered-${randomUUID().slice(0, 8)}`;
      const events: ErrorEvent[] = [];
      let wake = () => {};
      /** Resolves once an event whose error says `what` was reported. */
      const reported = async (what: string) => {
        while (!events.some((event) => String(event.error).includes(what))) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      };
      const handled = new Map<number, () => void>();
      const handledOnce = (n: number) => new Promise<void>((resolve) => handled.set(n, resolve));
      const consumer = createBus({
        transport: createTransport(proxied, { reconnectInitialDelayMs: 50 }),
        source: "recovered-consumer",
        hooks: {
          onError: (event) => {
            events.push(event);
            wake();
          },
        },
      });
      const producer = createBus({ transport: createTransport(url), source: "recovered-producer" });
      try {
        await consumer
          .consume(queue)
          .on(Ping, async (msg) => handled.get(msg.data.n)?.())
          .start();
        const first = handledOnce(1);
        await producer.send(queue, Ping, { n: 1 });
        await first;

        proxy.cut();
        await reported("STOMP connection failed");
        // New connections are refused until the restore: each failed attempt is reported too.
        await reported("STOMP connect failed");
        proxy.restore();
        // The ack of message 1 may have been cut too: reported as a failed ack (its attempt, not 0).
        const recovered = events.filter((event) =>
          /STOMP (connection|connect) failed/.test(String(event.error)),
        );
        for (const event of recovered) {
          expect(event).toMatchObject({ attempt: 0, willRetry: true, source: { name: queue } });
          expect(isSwitchyardError(event.error, "TRANSPORT_ERROR")).toBe(true);
          if (url.password) expect(String(event.error)).not.toContain(url.password);
        }

        const second = handledOnce(2);
        await producer.send(queue, Ping, { n: 2 });
        await second;
      } finally {
        await Promise.allSettled([consumer.close(), producer.close()]);
        await proxy.close();
      }
    });
  });
}
