import { randomUUID } from "node:crypto";
import { createBus, deadLetterQueueName, type TopologyEntity, type Transport } from "@switchyard/core";
import { expect } from "vitest";

/**
 * An adapter's own check that `Transport.unprovision` removes a subscription a bus used alone, as
 * `switchyard tail` does with its throwaway one: a consumer starts (the core provisions the topic,
 * the subscription and its dead-letter queue) and stops, then the subscription and its dead-letter
 * queue are unprovisioned; the topic stays until it is unprovisioned itself. `exists` asks the
 * broker with its own client; `undefined` means the broker has no such entity of its own (SQS
 * alone has no topic), and that check is left out.
 */
export async function checkSubscriptionRemoval(options: {
  transport: () => Transport;
  exists: (entity: TopologyEntity) => Promise<boolean | undefined>;
}): Promise<void> {
  const id = randomUUID().slice(0, 8);
  const topic: TopologyEntity = { kind: "topic", name: `sy-unprovision-${id}` };
  const name = `sy-tail-${id}`;
  const deadLetterQueue = deadLetterQueueName({ kind: "topic", name: topic.name, subscription: name });
  const subscription: TopologyEntity = {
    kind: "subscription",
    topic: topic.name,
    name,
    deadLetterQueue,
    maxAttempts: 1,
  };
  const deadLetters: TopologyEntity = { kind: "queue", name: deadLetterQueue };
  const transport = options.transport();
  expect(transport.unprovision, `${transport.name} implements unprovision`).toBeTypeOf("function");
  const bus = createBus({ transport });
  try {
    const consumer = await bus
      .subscribe(topic.name, name)
      .onAny(() => {})
      .start();
    expect(await options.exists(subscription), "the subscription, once its consumer started").toBe(true);
    await consumer.stop();
    await transport.unprovision!([subscription, deadLetters]);
    expect(await options.exists(subscription), "the subscription, unprovisioned").toBe(false);
    expect(await options.exists(deadLetters), "its dead-letter queue, unprovisioned").not.toBe(true);
    // Already gone is not an error.
    await transport.unprovision!([subscription, deadLetters]);
    if ((await options.exists(topic)) === undefined) return;
    expect(await options.exists(topic), "the topic: other subscriptions may read it").toBe(true);
    await transport.unprovision!([topic]);
    expect(await options.exists(topic), "the topic, unprovisioned").toBe(false);
  } finally {
    // Best effort, so a failing check leaves nothing on a shared broker either.
    await transport.unprovision?.([subscription, deadLetters, topic]).catch(() => {});
    await bus.close();
  }
}
