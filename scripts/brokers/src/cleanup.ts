// Teardowns for the conformance suites (ConformanceTarget.teardown): delete what the cases made on a
// shared broker, found by listing it with the broker's own management API.
//
//   import { deleteSqsQueuesNamed } from "@switchyard/broker-stack/cleanup";
//   defineConformanceSuite({ …, teardown: ({ names }) => deleteSqsQueuesNamed(endpoint, names) });
//
// `names` are the suite's `t.name()` names (`sy-<label>-<run id>`, unique per case): an entity is the
// run's when its broker name contains one of them, which covers the names adapters derive from them
// (`<queue>.dlq`, `<topic>.<subscription>`, `Consumer.<subscription>.<topic>`, `PREFIX-q+<queue>`…).
import { DeleteQueueCommand, ListQueuesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { brokerEndpoint, localAws } from "./available.js";

/** Whether a broker entity's name was derived from one of `names`. */
export function madeFrom(names: string[]): (entity: string) => boolean {
  return (entity) => names.some((name) => entity.includes(name));
}

/** Runs `work` on each item, a few at a time: the broker shares its cores with suites still running. */
async function fewAtATime<T>(items: T[], work: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += 8) await Promise.all(items.slice(i, i + 8).map(work));
}

/**
 * SQS-compatible brokers (ElasticMQ, moto): the queues of `names` (a case's queue, its `.dlq`, a
 * topic's subscription queues). Emulators keep every queue, and moto gets slower with each one.
 */
export async function deleteSqsQueuesNamed(endpoint: string, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const sqs = new SQSClient({ endpoint, region: localAws.region, credentials: localAws.credentials });
  try {
    const ours = madeFrom(names);
    const listed = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: "sy-", MaxResults: 1000 }));
    const queues = (listed.QueueUrls ?? []).filter((url) => ours(url.slice(url.lastIndexOf("/") + 1)));
    await fewAtATime(queues, (QueueUrl) => sqs.send(new DeleteQueueCommand({ QueueUrl })).catch(() => {}));
  } finally {
    sqs.destroy();
  }
}

/**
 * RabbitMQ, through its management API (the AMQP and STOMP adapters' queues and exchanges): the
 * queues and exchanges of `names` in the default vhost, delay queues (`<queue>.delay.<ms>`) and
 * STOMP subscription queues (`Consumer.<subscription>.<topic>`) included.
 */
export async function deleteRabbitMqEntitiesNamed(names: string[]): Promise<void> {
  if (names.length === 0) return;
  const api = rabbitMqManagement();
  const ours = madeFrom(names);
  for (const kind of ["queues", "exchanges"] as const) {
    const listed = (await api.get(`/api/${kind}/%2F?columns=name`)) as Array<{ name: string }>;
    const doomed = listed.map(({ name }) => name).filter(ours);
    await fewAtATime(doomed, (name) => api.delete(`/api/${kind}/%2F/${encodeURIComponent(name)}`));
  }
}

function rabbitMqManagement() {
  const endpoint = new URL(brokerEndpoint("rabbitmq-management").url);
  const authorization = `Basic ${Buffer.from(`${decodeURIComponent(endpoint.username)}:${decodeURIComponent(endpoint.password)}`).toString("base64")}`;
  const base = `${endpoint.protocol}//${endpoint.host}`;
  const call = async (method: string, path: string) => {
    const response = await fetch(`${base}${path}`, { method, headers: { authorization } });
    // Gone already (a case's own unprovision, another teardown) is what we wanted.
    if (!response.ok && response.status !== 404)
      throw new Error(`RabbitMQ management: ${method} ${path} answered ${response.status}`);
    return response.status === 204 || method === "DELETE" ? undefined : response.json();
  };
  return { get: (path: string) => call("GET", path), delete: (path: string) => call("DELETE", path) };
}

/**
 * The Pub/Sub emulator, through its REST API: the subscriptions, then the topics, of `names` in
 * `projectId` (a queue is a topic and a subscription, a topic's subscription and dead-letter topic
 * carry the names too). The emulator keeps them all until it restarts.
 */
export async function deletePubSubEntitiesNamed(projectId: string, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const base = `http://${brokerEndpoint("pubsub").url}/v1/projects/${encodeURIComponent(projectId)}`;
  const ours = madeFrom(names);
  for (const kind of ["subscriptions", "topics"] as const) {
    const doomed = (await listPubSub(base, kind)).filter(ours);
    await fewAtATime(doomed, async (id) => {
      const response = await fetch(`${base}/${kind}/${encodeURIComponent(id)}`, { method: "DELETE" });
      if (!response.ok && response.status !== 404)
        throw new Error(`Pub/Sub emulator: deleting ${kind} ${id} answered ${response.status}`);
    });
  }
}

/** The ids (the part after `…/topics/` or `…/subscriptions/`) of a project's topics or subscriptions. */
async function listPubSub(base: string, kind: "topics" | "subscriptions"): Promise<string[]> {
  const ids: string[] = [];
  let pageToken = "";
  do {
    const response = await fetch(
      `${base}/${kind}?pageSize=1000${pageToken ? `&pageToken=${pageToken}` : ""}`,
    );
    if (!response.ok) throw new Error(`Pub/Sub emulator: listing ${kind} answered ${response.status}`);
    const page = (await response.json()) as Record<string, Array<{ name: string }> | string | undefined>;
    for (const { name } of (page[kind] as Array<{ name: string }> | undefined) ?? [])
      ids.push(name.slice(name.lastIndexOf("/") + 1));
    pageToken = encodeURIComponent((page.nextPageToken as string | undefined) ?? "");
  } while (pageToken);
  return ids;
}
