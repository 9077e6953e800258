// Fault test (issue 22): every HTTP connection between the buses and ElasticMQ is cut through a
// loopback TCP proxy mid-stream, new ones refused for ~2 s, then let through again; ElasticMQ keeps
// running. A request on a dead connection fails (the SDK's timeouts, then its retries or the
// consumer's receive loop), so both sides recover on their own (no new bus), every message is
// handled at least once, no ack or nack is lost to the cut (the consumer retries them), and the only
// duplicates are re-sent copies of failed publishes. Runs only in the fault phase.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { connectionCutCase, Handled, SettlementAudit, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { it } from "vitest";
import { SqsTransport } from "../src/index.js";

const { Ping } = messages;
const TOTAL = Number(process.env.FAULT_TOTAL ?? 10_000);

describeWithBroker("elasticmq", "aws-sqs fault: connections cut through a proxy mid-stream", () => {
  it("10,000 messages: both sides reconnect on their own and every message is handled", async () => {
    const elasticmq = new URL(brokerEndpoint("elasticmq").url);
    const proxy = await TcpProxy.start({ host: elasticmq.hostname, port: Number(elasticmq.port) });
    const options = { endpoint: `http://${proxy.hostPort}`, ...localAws, waitTimeSeconds: 1 };
    const queue = `sy-fault-sqs-cut-${randomUUID().slice(0, 8)}`;
    const producer = createBus({ transport: new SqsTransport(options), source: "fault-producer" });
    const audit = new SettlementAudit();
    const consumer = createBus({
      transport: new SqsTransport(options),
      source: "fault-consumer",
      hooks: { onError: audit.onError },
    });
    const handled = new Handled();
    await consumer
      .consume(queue)
      .on(Ping, async (msg, ctx) => audit.handle(handled, msg.data.n, ctx.attempt))
      .start({ concurrency: 32, prefetch: 200 });
    await connectionCutCase({
      broker: "elasticmq (sqs)",
      adapter: "adapters/aws-sqs/fault",
      proxy,
      total: TOTAL,
      handled,
      errors: audit.errors,
      producer,
      consumer,
      send: (numbers) =>
        audit.sent(
          numbers.length,
          producer.sendBatch(
            queue,
            Ping,
            numbers.map((n) => ({ data: { n }, options: { id: `${queue}-${n}` } })),
          ),
        ),
      figures: audit.figures,
    });
    // Retried deletes and visibility changes: no settlement lost to the cut.
    audit.check(handled);
  });
});
