// Fault test (issue 22): every HTTP connection between the buses and ElasticMQ is cut through a
// loopback TCP proxy mid-stream, new ones refused for ~2 s, then let through again; ElasticMQ keeps
// running. A request on a dead connection fails (the SDK's timeouts, then its retries or the
// consumer's receive loop), so both sides recover on their own (no new bus), every message is
// handled at least once, no ack or nack is lost to the cut (the consumer retries them), and the only
// duplicates are re-sent copies of failed publishes. Runs only in the fault phase.
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { connectionCutCase, Handled, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { expect, it } from "vitest";
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
    const errors: string[] = [];
    const consumer = createBus({
      transport: new SqsTransport(options),
      source: "fault-consumer",
      hooks: {
        // With the cause: a failed ack says why its delete failed.
        onError: ({ error }) =>
          errors.push(`${error}${error instanceof Error && error.cause ? ` (${error.cause})` : ""}`),
      },
    });
    const handled = new Handled();
    // Numbers handled again on a redelivery (attempt > 1), not as a re-sent copy, each with the ms
    // since its first handling: which ones, and how late, says why.
    const firstHandledAt = new Map<number, number>();
    const redelivered: [number, number][] = [];
    // Messages in publishes that failed and were sent again: each may have been stored twice.
    let resent = 0;
    // An ack (delete) that failed leaves a handled message to come back after its visibility timeout,
    // often after the test has ended: counted here, where duplicates alone would miss it.
    const failedSettlements = () => errors.filter((e) => /\b(?:ack|nack) of message/.test(e));
    await consumer
      .consume(queue)
      .on(Ping, async (msg, ctx) => {
        const first = firstHandledAt.get(msg.data.n);
        if (first === undefined) firstHandledAt.set(msg.data.n, Date.now());
        else if (ctx.attempt > 1) redelivered.push([msg.data.n, Date.now() - first]);
        handled.add(msg.data.n);
      })
      .start({ concurrency: 32, prefetch: 200 });
    await connectionCutCase({
      broker: "elasticmq (sqs)",
      adapter: "adapters/aws-sqs/fault",
      proxy,
      total: TOTAL,
      handled,
      errors,
      producer,
      consumer,
      send: (numbers) =>
        producer
          .sendBatch(
            queue,
            Ping,
            numbers.map((n) => ({ data: { n }, options: { id: `${queue}-${n}` } })),
          )
          .then(
            () => {},
            (error: unknown) => {
              resent += numbers.length;
              throw error;
            },
          ),
      figures: () => ({ failedSettlements: failedSettlements().length, redelivered }),
    });
    // Retried deletes and visibility changes: no settlement lost to the cut, so the only duplicates
    // are copies of publishes that failed in the cut and were sent again (at-least-once publishing).
    expect(failedSettlements().slice(0, 5)).toEqual([]);
    expect(handled.calls - handled.ids.size).toBeLessThanOrEqual(resent);
  });
});
