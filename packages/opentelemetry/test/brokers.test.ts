// The same run on real brokers: publish in one bus, consume in another (each its own connection),
// the trace context crossing the broker in the message's ce_traceparent / ce_tracestate.
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { createTransport as kafkaTransport } from "@switchyard/kafka";
import { createTransport as rabbitTransport } from "@switchyard/rabbitmq";
import { it } from "vitest";
import { runScenario } from "./scenario.js";

describeWithBroker("kafka", "otel on Kafka", () => {
  const brokers = brokerEndpoint("kafka").url;
  const fastGroups = {
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 250,
    rebalanceTimeoutMs: 10_000,
    maxWaitMs: 200,
    commitIntervalMs: 50,
  };
  it("one trace from publish to process, and the metrics of the run", { timeout: 60_000 }, async () => {
    await runScenario({
      system: "kafka",
      bus: () => ({ transport: kafkaTransport(new URL(`kafka://${brokers}`), fastGroups) }),
      timeoutMs: 45_000,
    });
  });
});

describeWithBroker("rabbitmq", "otel on RabbitMQ", () => {
  const url = new URL(brokerEndpoint("rabbitmq").url);
  it("one trace from publish to process, and the metrics of the run", { timeout: 60_000 }, async () => {
    await runScenario({
      system: "rabbitmq",
      bus: () => ({ transport: rabbitTransport(url) }),
      timeoutMs: 30_000,
    });
  });
});
