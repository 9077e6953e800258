import { parseBusUrl, redactUrl } from "@switchyard/core";

/**
 * How a URL scheme shows up in AsyncAPI: the server's protocol, and the bindings that say how
 * Switchyard maps channels onto that broker (Kafka and AMQP have binding specs; for the others
 * the protocol alone is given).
 */
export interface BrokerBindings {
  server?: { host: string; protocol: string; pathname?: string; description: string };
  topicChannel?(topic: string): Record<string, unknown>;
  queueChannel?(queue: string): Record<string, unknown>;
  /** The subscription's receive operation (Kafka: its consumer group). */
  subscriptionOperation?(topic: string, subscription: string): Record<string, unknown>;
  /** Where a subscription's messages are read: its own queue on AMQP, the topic elsewhere. */
  subscriptionAddress(topic: string, subscription: string): string;
  message?(): Record<string, unknown>;
}

const PROTOCOLS: Record<string, string> = {
  kafka: "kafka",
  amqp: "amqp",
  amqps: "amqps",
  sqs: "sqs",
  sns: "sns",
  pubsub: "googlepubsub",
  "gcp-pubsub": "googlepubsub",
  stomp: "stomp",
  "stomp+activemq": "stomp",
  "stomp+rabbitmq": "stomp",
  "http-feed": "http",
  servicebus: "amqp",
  "azure-servicebus": "amqp",
};

const KAFKA = "0.5.0";
const AMQP = "0.3.0";

export function bindingsFor(url: string | undefined): BrokerBindings {
  const parsed = url ? parseBusUrl(url) : undefined; // also kafka://h1:9092,h2:9092
  const scheme = parsed?.protocol.replace(/:$/, "");
  const protocol = scheme ? PROTOCOLS[scheme] : undefined;
  const server =
    parsed && protocol
      ? {
          host: parsed.searchParams.get("hosts")?.split(",")[0] ?? parsed.host,
          protocol,
          ...(parsed.pathname && parsed.pathname !== "/" ? { pathname: parsed.pathname } : {}),
          // Credentials and secret parameters never reach the document.
          description: `Switchyard ${scheme} adapter at ${redactUrl(url!)}`,
        }
      : undefined;
  const base = { ...(server ? { server } : {}), subscriptionAddress: (topic: string) => topic };
  if (scheme === "kafka") {
    return {
      ...base,
      topicChannel: (topic) => ({ kafka: { topic, bindingVersion: KAFKA } }),
      queueChannel: (queue) => ({ kafka: { topic: queue, bindingVersion: KAFKA } }),
      subscriptionOperation: (topic, subscription) => ({
        kafka: { groupId: { type: "string", enum: [`${topic}.${subscription}`] }, bindingVersion: KAFKA },
      }),
      message: () => ({ kafka: { key: { type: "string" }, bindingVersion: KAFKA } }),
    };
  }
  if (scheme === "amqp" || scheme === "amqps") {
    const vhost = decodeURIComponent(parsed!.pathname.slice(1)) || "/";
    const queue = (name: string) => ({
      amqp: {
        is: "queue",
        queue: { name, durable: true, exclusive: false, autoDelete: false, vhost },
        bindingVersion: AMQP,
      },
    });
    return {
      ...base,
      topicChannel: (topic) => ({
        amqp: {
          is: "routingKey",
          exchange: { name: topic, type: "topic", durable: true, autoDelete: false, vhost },
          bindingVersion: AMQP,
        },
      }),
      queueChannel: queue,
      subscriptionAddress: (topic, subscription) => `${topic}.${subscription}`,
    };
  }
  return base;
}
