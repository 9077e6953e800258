// The same run on every real broker: publish in one bus, consume in another (each its own
// connection), the trace context crossing the broker in the message (ce_traceparent / ce_tracestate
// in binary mode, inside the event in structured mode).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SnsTransport } from "@switchyard/aws-sns";
import { SqsTransport } from "@switchyard/aws-sqs";
import { createTransport as serviceBusTransport } from "@switchyard/azure-servicebus";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { createTransport as pubsubTransport } from "@switchyard/gcp-pubsub";
import {
  type FeedServer,
  type FeedStore,
  HttpFeedTransport,
  PostgresStore,
  SqliteStore,
  startFeedServer,
} from "@switchyard/http-feed";
import { createTransport as kafkaTransport } from "@switchyard/kafka";
import { createTransport as rabbitTransport } from "@switchyard/rabbitmq";
import { createTransport as stompTransport } from "@switchyard/stomp";
import { afterAll, beforeAll, describe, it } from "vitest";
import { runBacklogScenario, runScenario } from "./scenario.js";

const TEST = "one trace from publish to process, and the metrics of the run";
const LAG = "the consumer-lag gauge reports the backlog the broker counts";

describeWithBroker("kafka", "otel on Kafka", () => {
  const brokers = brokerEndpoint("kafka").url;
  const fastGroups = {
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 250,
    rebalanceTimeoutMs: 10_000,
    maxWaitMs: 200,
    commitIntervalMs: 50,
  };
  it(TEST, { timeout: 60_000 }, async () => {
    await runScenario({
      system: "kafka",
      bus: () => ({ transport: kafkaTransport(new URL(`kafka://${brokers}`), fastGroups) }),
      timeoutMs: 45_000,
    });
  });
  it.each(["platformatic", "kafkajs"])(`${LAG} (%s driver)`, { timeout: 60_000 }, async (driver) => {
    await runBacklogScenario({
      system: "kafka",
      bus: () => ({ transport: kafkaTransport(new URL(`kafka://${brokers}?driver=${driver}`), fastGroups) }),
      timeoutMs: 45_000,
    });
  });
});

describeWithBroker("rabbitmq", "otel on RabbitMQ", () => {
  const url = new URL(brokerEndpoint("rabbitmq").url);
  it(TEST, { timeout: 60_000 }, async () => {
    await runScenario({
      system: "rabbitmq",
      bus: () => ({ transport: rabbitTransport(url) }),
      timeoutMs: 30_000,
    });
  });
});

describeWithBroker("elasticmq", "otel on SQS (ElasticMQ)", () => {
  const endpoint = brokerEndpoint("elasticmq").url;
  it(TEST, { timeout: 60_000 }, async () => {
    await runScenario({
      system: "sqs",
      // A short long-poll, so closing the consumer (which waits for its receive) is quick.
      bus: () => ({ transport: new SqsTransport({ endpoint, ...localAws, waitTimeSeconds: 1 }) }),
      timeoutMs: 30_000,
    });
  });
  it(LAG, { timeout: 60_000 }, async () => {
    await runBacklogScenario({
      system: "sqs",
      bus: () => ({ transport: new SqsTransport({ endpoint, ...localAws, waitTimeSeconds: 1 }) }),
      timeoutMs: 30_000,
    });
  });
});

describeWithBroker("moto", "otel on SNS + SQS (moto)", () => {
  const endpoint = brokerEndpoint("moto").url;
  it(TEST, { timeout: 90_000 }, async () => {
    await runScenario({
      system: "sns",
      bus: () => ({ transport: new SnsTransport({ endpoint, ...localAws, waitTimeSeconds: 1 }) }),
      timeoutMs: 60_000,
    });
  });
  it(LAG, { timeout: 90_000 }, async () => {
    await runBacklogScenario({
      system: "sns",
      bus: () => ({ transport: new SnsTransport({ endpoint, ...localAws, waitTimeSeconds: 1 }) }),
      timeoutMs: 60_000,
    });
  });
});

describeWithBroker("pubsub", "otel on Pub/Sub (emulator)", () => {
  const emulator = brokerEndpoint("pubsub").url;
  beforeAll(() => {
    process.env.PUBSUB_EMULATOR_HOST = emulator;
    process.env.METADATA_SERVER_DETECTION = "none";
  });
  // Message ordering off: with it on (the default), the emulator hands n=2 back after n=1 (no key
  // either) was nacked, although n=2 was already dead-lettered (published to the DLQ and acked), so
  // it is dead-lettered twice. Not checked against the real service.
  it(TEST, { timeout: 60_000 }, async () => {
    await runScenario({
      system: "pubsub",
      bus: () => ({
        transport: pubsubTransport(new URL(`pubsub://switchyard-otel?emulator=${emulator}&ordering=false`)),
      }),
      timeoutMs: 45_000,
    });
  });
});

describeWithBroker("servicebus", "otel on Service Bus (Switchyard's emulator)", () => {
  const { host, port } = brokerEndpoint("servicebus");
  // The emulator's management API listens on the port after its AMQP port.
  const url = new URL(`azure-servicebus://${host}:${port}?emulator=true&adminUrl=http://${host}:${port + 1}`);
  it(TEST, { timeout: 60_000 }, async () => {
    await runScenario({ system: "azure-servicebus", bus: () => ({ transport: serviceBusTransport(url) }) });
  });
  it(LAG, { timeout: 60_000 }, async () => {
    await runBacklogScenario({
      system: "azure-servicebus",
      bus: () => ({ transport: serviceBusTransport(url) }),
    });
  });
});

function stompUrl(broker: "activemq" | "rabbitmq-stomp", dialect: "activemq" | "rabbitmq"): URL {
  const url = new URL(brokerEndpoint(broker).url);
  url.protocol = `stomp+${dialect}:`;
  return url;
}

describeWithBroker("activemq", "otel on STOMP (ActiveMQ Classic)", () => {
  it(TEST, { timeout: 60_000 }, async () => {
    const url = stompUrl("activemq", "activemq");
    await runScenario({ system: "stomp+activemq", bus: () => ({ transport: stompTransport(url) }) });
  });
});

describeWithBroker("rabbitmq-stomp", "otel on STOMP (RabbitMQ's plugin)", () => {
  it(TEST, { timeout: 60_000 }, async () => {
    const url = stompUrl("rabbitmq-stomp", "rabbitmq");
    await runScenario({ system: "stomp+rabbitmq", bus: () => ({ transport: stompTransport(url) }) });
  });
});

/** An HTTP feed server over `serverStore`; every bus writes to `store` and polls the server. */
function feedScenario(store: string, serverStore: () => FeedStore): void {
  let server: FeedServer;
  let feedStore: FeedStore;
  beforeAll(async () => {
    feedStore = serverStore();
    server = await startFeedServer({ store: feedStore, basePath: "/feeds" });
  });
  afterAll(async () => {
    await server?.close();
    await feedStore?.close();
  });
  it(TEST, { timeout: 60_000 }, async () => {
    await runScenario({
      system: "http-feed",
      bus: () => ({ transport: new HttpFeedTransport({ store, feedUrl: server.url, pollTimeoutMs: 5000 }) }),
    });
  });
}

describeWithBroker("postgres", "otel on an HTTP feed (PostgreSQL store)", () => {
  const store = brokerEndpoint("postgres").url;
  feedScenario(store, () => new PostgresStore({ url: store }));
});

describe("otel on an HTTP feed (SQLite store)", () => {
  const dir = mkdtempSync(join(tmpdir(), "otel-feed-"));
  const file = join(dir, "feed.db");
  feedScenario(`sqlite://${file}`, () => new SqliteStore({ path: file }));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
});
