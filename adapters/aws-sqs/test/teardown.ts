import { DeleteQueueCommand, ListQueuesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { localAws } from "@switchyard/broker-stack/available";

/**
 * The conformance suites' teardown on SQS-compatible brokers: deletes the queues of the names the
 * cases made (a case's queue, its `_ddlq`, a topic's `_s…` subscription queues all start with the
 * name, which SQS escaping leaves as it is). Emulators keep every queue, and moto gets slower with
 * each one (later suites on the same broker, the fault tests among them, pay for the leftovers).
 */
export async function deleteQueuesNamed(endpoint: string, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const sqs = new SQSClient({ endpoint, region: localAws.region, credentials: localAws.credentials });
  try {
    const listed = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: "sy-", MaxResults: 1000 }));
    const ours = (listed.QueueUrls ?? []).filter((url) => {
      const queue = url.slice(url.lastIndexOf("/") + 1);
      return names.some((name) => queue.startsWith(name));
    });
    // A few at a time: the emulator shares its cores with the suites still running.
    for (let i = 0; i < ours.length; i += 8) {
      await Promise.all(
        ours
          .slice(i, i + 8)
          .map((QueueUrl) => sqs.send(new DeleteQueueCommand({ QueueUrl })).catch(() => {})),
      );
    }
  } finally {
    sqs.destroy();
  }
}
