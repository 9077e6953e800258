// `tail` on the brokers where the CLI has no broker admin of its own: on exit its throwaway
// subscription and dead-letter queue are gone (the adapter's unprovision), only the topic stays.
// Each broker is asked through its own HTTP API what the tail made, while it runs and after.
import { spawn } from "node:child_process";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { it } from "vitest";
import { BIN, runBin, unique } from "./helpers.js";

const env = {
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
  AWS_REGION: "us-east-1",
  METADATA_SERVER_DETECTION: "none",
};

/** Runs `tail --count 1`, calls `whileTailing` once it listens, publishes one message; its stderr. */
async function tailOnce(url: string, topic: string, whileTailing: () => Promise<void>): Promise<string> {
  const child = spawn(process.execPath, [BIN, "tail", topic, "--url", url, "--count", "1"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  const listening = new Promise<void>((resolve) =>
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      if (stderr.includes("Ctrl-C to stop")) resolve();
    }),
  );
  const closed = new Promise<number | null>((resolve) => child.once("close", resolve));
  await Promise.race([listening, closed]);
  try {
    await whileTailing();
    const sent = await runBin(["publish", topic, "--url", url, "--type", "t.x", "--data", "{}"], { env });
    if (sent.code !== 0) throw new Error(`publish failed: ${sent.stderr}`);
  } catch (error) {
    child.kill();
    throw error;
  }
  const code = await closed;
  if (code !== 0) throw new Error(`tail exited ${code}: ${stderr}`);
  return stderr;
}

async function json(url: string, init?: RequestInit): Promise<any> {
  const response = await fetch(url, init);
  if (!response.ok) throw new Error(`${init?.method ?? "GET"} ${url}: ${response.status}`);
  return response.json();
}

describeWithBroker("elasticmq", "switchyard tail on SQS (ElasticMQ) leaves nothing behind", () => {
  const endpoint = brokerEndpoint("elasticmq").url;
  // The topic has no queue of its own: its subscription queue and the DLQ's both start with its name.
  const queues = async (topic: string): Promise<string[]> =>
    (
      await json(endpoint, {
        method: "POST",
        headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.ListQueues" },
        body: JSON.stringify({ QueueNamePrefix: topic }),
      })
    ).QueueUrls ?? [];

  it("its subscription queue and dead-letter queue are deleted on exit", async ({ expect }) => {
    const topic = unique("cli-tail-sqs");
    const stderr = await tailOnce(`sqs://${new URL(endpoint).host}?region=us-east-1`, topic, async () => {
      expect((await queues(topic)).length).toBe(2);
    });
    expect(stderr).toMatch(/removed subscription tail-[0-9a-f]{8}/);
    expect(await queues(topic)).toEqual([]);
  });
});

describeWithBroker("pubsub", "switchyard tail on the Pub/Sub emulator leaves nothing behind", () => {
  const emulator = brokerEndpoint("pubsub").url;
  const project = "switchyard-cli-tail-test";
  const base = `http://${emulator}/v1/projects/${project}`;
  const ids = async (kind: "topics" | "subscriptions", topic: string): Promise<string[]> =>
    ((await json(`${base}/${kind}?pageSize=1000`))[kind] ?? [])
      .map(({ name }: { name: string }) => name.slice(name.lastIndexOf("/") + 1))
      .filter((id: string) => id.includes(topic));

  it("its subscription and its dead-letter queue's topic and subscription are deleted on exit", async ({
    expect,
  }) => {
    const topic = unique("cli-tail-pubsub");
    try {
      const stderr = await tailOnce(`pubsub://${project}?emulator=${emulator}`, topic, async () => {
        // The tail's subscription and its DLQ's, the topic and the DLQ's topic.
        expect((await ids("subscriptions", topic)).length).toBe(2);
        expect((await ids("topics", topic)).length).toBe(2);
      });
      expect(stderr).toMatch(/removed subscription tail-[0-9a-f]{8}/);
      expect(await ids("subscriptions", topic)).toEqual([]);
      expect(await ids("topics", topic)).toEqual([`sy-t+${topic}`]);
    } finally {
      await fetch(`${base}/topics/${encodeURIComponent(`sy-t+${topic}`)}`, { method: "DELETE" });
    }
  });
});

describeWithBroker("servicebus", "switchyard tail on the Service Bus emulator leaves nothing behind", () => {
  const endpoint = brokerEndpoint("servicebus");
  const adminUrl = `http://${endpoint.host}:${endpoint.port + 1}`;
  const subscriptions = async (topic: string): Promise<string[]> =>
    (await json(`${adminUrl}/topics/${topic}`)).subscriptions;

  it("its subscription (with its $DeadLetterQueue) is deleted on exit", async ({ expect }) => {
    const topic = unique("cli-tail-sb");
    const url = `azure-servicebus://${endpoint.host}:${endpoint.port}?emulator=true&adminUrl=${adminUrl}`;
    try {
      const stderr = await tailOnce(url, topic, async () => {
        expect((await subscriptions(topic)).length).toBe(1);
      });
      expect(stderr).toMatch(/removed subscription tail-[0-9a-f]{8}/);
      expect(await subscriptions(topic)).toEqual([]);
    } finally {
      await fetch(`${adminUrl}/topics/${topic}`, { method: "DELETE" });
    }
  });
});
