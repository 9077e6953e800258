// Fault test (issue 22): every HTTP connection between the buses and moto (SNS and the subscription's
// SQS queue) is cut through a loopback TCP proxy mid-stream, new ones refused for ~2 s, then let
// through again; moto keeps running. A request on a dead connection fails (the SDK's timeouts, then
// its retries or the consumer's receive loop), so both sides recover on their own (no new bus), every
// message is handled at least once, no ack or nack is lost to the cut (the consumer retries them),
// and the only duplicates are re-sent copies of failed publishes. Runs only in the fault phase.
import { randomUUID } from "node:crypto";
import { DeleteTopicCommand } from "@aws-sdk/client-sns";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { connectionCutCase, Handled, SettlementAudit, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { it } from "vitest";
import { SnsTransport } from "../src/index.js";

const { Ping } = messages;
// Not 10,000: on this machine's shared moto a subscription queue drains at ~8 messages/s (moto scans
// every queued message on each call), so 10,000 would take ~20 min. The cut falls at 30% as elsewhere.
const TOTAL = Number(process.env.FAULT_TOTAL ?? 600);

describeWithBroker("moto", "aws-sns fault: connections cut through a proxy mid-stream", () => {
  it("600 messages: both sides reconnect on their own and every message is handled", async () => {
    const moto = new URL(brokerEndpoint("moto").url);
    const proxy = await TcpProxy.start({ host: moto.hostname, port: Number(moto.port) });
    // moto answers slowly under load (tens of seconds seen): a client timeout would abort receives
    // that moto still serves, hiding their messages for the visibility timeout. The cut itself resets
    // the connections, which fails requests at once whatever the timeout.
    const options = {
      endpoint: `http://${proxy.hostPort}`,
      ...localAws,
      waitTimeSeconds: 1,
      requestTimeoutMs: 60_000,
    };
    const topic = `sy-fault-sns-cut-${randomUUID().slice(0, 8)}`;
    const producer = createBus({ transport: new SnsTransport(options), source: "fault-producer" });
    const audit = new SettlementAudit();
    const consumer = createBus({
      transport: new SnsTransport(options),
      source: "fault-consumer",
      hooks: { onError: audit.onError },
    });
    const handled = new Handled();
    await consumer
      .subscribe(topic, "fault")
      .on(Ping, async (msg, ctx) => audit.handle(handled, msg.data.n, ctx.attempt))
      .start({ concurrency: 32, prefetch: 200 });
    try {
      await connectionCutCase({
        broker: "moto (sns)",
        adapter: "adapters/aws-sns/fault",
        proxy,
        total: TOTAL,
        handled,
        errors: audit.errors,
        producer,
        consumer,
        send: (numbers) =>
          audit.sent(
            numbers.length,
            producer.publishBatch(
              topic,
              Ping,
              numbers.map((n) => ({ data: { n }, options: { id: `${topic}-${n}` } })),
            ),
          ),
        figures: audit.figures,
      });
      // Retried deletes and visibility changes: no settlement lost to the cut.
      audit.check(handled);
    } finally {
      // moto slows down with every message it holds (it scans them on each call): leave nothing.
      const direct = new SnsTransport({ ...options, endpoint: moto.origin });
      await direct.base.queues.delete(direct.base.subscriptionQueue(topic, "fault"));
      await direct.sns.send(new DeleteTopicCommand({ TopicArn: await direct.topicArn(topic) }));
      await direct.close();
    }
  });
});
