import { randomUUID } from "node:crypto";
import { type Consumer, createBus, deadLetterQueueName, type Transport } from "@switchyard/core";
import { expect } from "vitest";
import { Ping } from "./messages.js";

/**
 * An adapter's own check that `bus.request()` creates the bus's reply queue on the broker with the
 * first request and that `close()` deletes it (Transport.unprovision). `exists` asks the broker
 * itself, with its own client: the suite cannot see topology.
 */
export async function checkReplyQueueLifecycle(options: {
  transport: () => Transport;
  exists: (queue: string) => Promise<boolean>;
  timeoutMs?: number;
}): Promise<void> {
  const id = randomUUID().slice(0, 8);
  const queue = `sy-rr-${id}`;
  const replyQueue = `sy-replies-${id}`;
  const requester = createBus({ transport: options.transport(), replyQueue });
  const responderTransport = options.transport();
  const responder = createBus({ transport: responderTransport });
  let consumer: Consumer | undefined;
  try {
    consumer = await responder
      .consume(queue)
      .on(Ping, (msg, ctx) => ctx.reply(Ping, { n: msg.data.n + 1 }))
      .start();
    expect(await options.exists(replyQueue)).toBe(false);
    const reply = await requester.request(
      queue,
      Ping,
      { n: 41 },
      { timeoutMs: options.timeoutMs ?? 15_000, replyType: Ping },
    );
    expect(reply.data.n).toBe(42);
    expect(await options.exists(replyQueue)).toBe(true);
    await requester.close();
    expect(await options.exists(replyQueue)).toBe(false);
  } finally {
    await requester.close();
    // Then the request queue and its dead-letter queue too, so the check leaves nothing on the broker.
    await consumer?.stop();
    await responderTransport
      .unprovision?.([
        { kind: "queue", name: queue },
        { kind: "queue", name: deadLetterQueueName({ kind: "queue", name: queue, subscription: queue }) },
      ])
      .catch(() => {});
    await responder.close();
  }
}
