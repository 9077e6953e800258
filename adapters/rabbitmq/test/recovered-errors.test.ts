// A consumer whose AMQP connection is cut (through a loopback proxy; RabbitMQ keeps running)
// reports the loss to the bus's onError hook (attempt 0, willRetry), reconnects and goes on consuming.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { TcpProxy } from "@switchyard/broker-stack/fault";
import { checkRecoveredErrors } from "@switchyard/conformance";
import amqp from "amqplib";
import { it } from "vitest";
import { createTransport } from "../src/index.js";

describeWithBroker("rabbitmq", "rabbitmq: recovered transport errors reach onError", () => {
  it("a cut connection and the refused reconnects are reported (attempt 0, willRetry, no password); a later message is handled", async () => {
    const url = new URL(brokerEndpoint("rabbitmq").url);
    const proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 5672) });
    const proxied = new URL(url);
    proxied.host = proxy.hostPort;
    const queue = `sy-rmq-recovered-${randomUUID().slice(0, 8)}`;
    try {
      await checkRecoveredErrors({
        consumerTransport: createTransport(proxied, { reconnectInitialDelayMs: 50 }),
        producerTransport: createTransport(url),
        queue,
        cut: () => proxy.cut(),
        restore: () => proxy.restore(),
        // New connections are refused until the restore: the reconnect loop reports its failures too.
        reports: ["connection lost", "reconnecting failed"],
        // The ack of message 1 may have been cut too: reported as a failed ack (its attempt, not 0).
        isTransportReport: (error) => String(error).includes(`queue "${queue}"`),
        secret: url.password,
      });
    } finally {
      await proxy.close();
      const raw = await amqp.connect(url.href);
      await (await raw.createChannel()).deleteQueue(queue);
      await raw.close();
    }
  });
});
