// A consumer whose STOMP connection is cut (through a loopback proxy; the broker keeps running)
// reports the loss and its refused reconnects to the bus's onError hook (attempt 0, willRetry),
// reconnects and goes on consuming. On both brokers.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { TcpProxy } from "@switchyard/broker-stack/fault";
import { checkRecoveredErrors } from "@switchyard/conformance";
import { it } from "vitest";
import { createTransport } from "../src/index.js";

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
      try {
        await checkRecoveredErrors({
          consumerTransport: createTransport(proxied, { reconnectInitialDelayMs: 50 }),
          producerTransport: createTransport(url),
          queue: `sy-stomp-recovered-${randomUUID().slice(0, 8)}`,
          cut: () => proxy.cut(),
          restore: () => proxy.restore(),
          // New connections are refused until the restore: each failed attempt is reported too.
          reports: ["STOMP connection failed", "STOMP connect failed"],
          // The ack of message 1 may have been cut too: reported as a failed ack (its attempt, not 0).
          isTransportReport: (error) => /STOMP (connection|connect) failed/.test(String(error)),
          secret: url.password,
        });
      } finally {
        await proxy.close();
      }
    });
  });
}
