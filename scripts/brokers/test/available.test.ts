import { afterEach, describe, expect, it } from "vitest";
import { brokerEndpoint, brokerReachable, missingBrokerMessage } from "../src/available.ts";

describe("brokerEndpoint", () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it("defaults to the loopback ports of pnpm brokers up", () => {
    for (const k of ["KAFKA_BROKERS", "AMQP_URL", "SQS_ENDPOINT", "PG_URL", "PUBSUB_EMULATOR_HOST"])
      delete process.env[k];
    expect(brokerEndpoint("kafka")).toMatchObject({ host: "127.0.0.1", port: 9092, url: "127.0.0.1:9092" });
    expect(brokerEndpoint("rabbitmq").port).toBe(5672);
    expect(brokerEndpoint("rabbitmq-stomp").port).toBe(61613);
    expect(brokerEndpoint("activemq").port).toBe(61614);
    expect(brokerEndpoint("elasticmq").url).toBe("http://127.0.0.1:9324");
    expect(brokerEndpoint("moto").port).toBe(4566);
    expect(brokerEndpoint("pubsub").url).toBe("127.0.0.1:8085");
    expect(brokerEndpoint("postgres").port).toBe(5433);
  });

  it("is overridden by the documented env vars", () => {
    process.env.KAFKA_BROKERS = "kafka.example:19092,other:19092";
    process.env.AMQP_URL = "amqps://u:p@mq.example:5671/vh";
    process.env.PG_URL = "postgres://u@db.example/x";
    expect(brokerEndpoint("kafka")).toMatchObject({ host: "kafka.example", port: 19092 });
    expect(brokerEndpoint("rabbitmq")).toMatchObject({ host: "mq.example", port: 5671, envVar: "AMQP_URL" });
    expect(brokerEndpoint("postgres").port).toBe(5432);
  });

  it("says which broker is missing and how to start it", () => {
    process.env.SQS_ENDPOINT = "http://127.0.0.1:1";
    expect(brokerReachable("elasticmq")).toBe(false);
    expect(missingBrokerMessage("elasticmq")).toContain("pnpm brokers up elasticmq");
  });
});
