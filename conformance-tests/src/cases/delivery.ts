import type { Bus, Consumer, Message } from "@switchyard/core";
import { expect } from "vitest";
import { type ConformanceCase, Recorder, sleep } from "../harness.js";
import { Ordered, Ping } from "../messages.js";

interface Seen {
  consumer: string;
  n: number;
  attempt: number;
  at: number;
}

async function competing(
  bus: Bus,
  queueOrTopic: { queue: string } | { topic: string; subscription: string },
  label: string,
  into: Recorder<Seen>,
) {
  const builder =
    "queue" in queueOrTopic
      ? bus.consume(queueOrTopic.queue)
      : bus.subscribe(queueOrTopic.topic, queueOrTopic.subscription);
  return builder
    .on(Ping, async (msg, ctx) => {
      into.push({ consumer: label, n: msg.data.n, attempt: ctx.attempt, at: Date.now() });
      // A little work, so one consumer cannot drain everything before the other is asked.
      await sleep(2);
    })
    .start({ concurrency: 2, prefetch: 2 });
}

function assertEachOnce(items: Seen[], total: number): void {
  const counts = new Map<number, number>();
  for (const item of items) counts.set(item.n, (counts.get(item.n) ?? 0) + 1);
  const missing = [...Array(total).keys()].filter((n) => !counts.has(n));
  const twice = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
  expect({ missing, twice }).toEqual({ missing: [], twice: [] });
}

export const deliveryCases: ConformanceCase[] = [
  {
    name: "queue: competing consumers each take a share, every message handled exactly once",
    async run(t) {
      const queue = t.name("competing");
      const seen = new Recorder<Seen>();
      const [a, b] = [await t.bus(), await t.bus()];
      await competing(a, { queue }, "a", seen);
      await competing(b, { queue }, "b", seen);
      const total = 40;
      for (let n = 0; n < total; n++) await a.send(queue, Ping, { n });
      await seen.count(total, t.ms(20_000));
      await sleep(t.ms(200)); // a duplicate would show up here
      assertEachOnce(seen.items, total);
      if (t.capabilities.balancedConsumers) {
        expect(new Set(seen.items.map((s) => s.consumer))).toEqual(new Set(["a", "b"]));
      }
    },
  },
  {
    name: "pub/sub: two subscriptions each get every message; consumers inside one compete",
    applies: (c) => (c.consumerGroups ? undefined : "the adapter has no consumer groups"),
    async run(t) {
      const topic = t.name("fanout");
      const billing = new Recorder<Seen>();
      const shipping = new Recorder<Seen>();
      const buses = [await t.bus(), await t.bus(), await t.bus(), await t.bus()];
      await competing(buses[0]!, { topic, subscription: "billing" }, "billing-1", billing);
      await competing(buses[1]!, { topic, subscription: "billing" }, "billing-2", billing);
      await competing(buses[2]!, { topic, subscription: "shipping" }, "shipping-1", shipping);
      await competing(buses[3]!, { topic, subscription: "shipping" }, "shipping-2", shipping);
      const total = 30;
      for (let n = 0; n < total; n++) await buses[0]!.publish(topic, Ping, { n });
      await Promise.all([billing.count(total, t.ms(20_000)), shipping.count(total, t.ms(20_000))]);
      await sleep(t.ms(200));
      assertEachOnce(billing.items, total);
      assertEachOnce(shipping.items, total);
      if (t.capabilities.balancedConsumers) {
        expect(new Set(billing.items.map((s) => s.consumer)).size).toBe(2);
        expect(new Set(shipping.items.map((s) => s.consumer)).size).toBe(2);
      }
    },
  },
  {
    name: "per-key order holds under concurrency",
    applies: (c) => (c.ordering === "none" ? "the adapter does not order by key" : undefined),
    async run(t) {
      const topic = t.name("ordered");
      const bus = await t.bus();
      const seen = new Recorder<{ key: string; seq: number }>();
      await bus
        .subscribe(topic, "ordered")
        .on(Ordered, async (msg) => {
          await sleep((msg.data.seq * 7) % 5); // uneven work, so unordered processing would show
          seen.push(msg.data);
        })
        .start({ concurrency: 8 });
      const keys = ["k-a", "k-b", "k-c"];
      const perKey = 15;
      for (let seq = 0; seq < perKey; seq++) {
        await Promise.all(keys.map((key) => bus.publish(topic, Ordered, { key, seq }, { key })));
      }
      await seen.count(keys.length * perKey, t.ms(20_000));
      for (const key of keys) {
        expect(
          seen.items.filter((s) => s.key === key).map((s) => s.seq),
          key,
        ).toEqual([...Array(perKey).keys()]);
      }
    },
  },
  {
    name: "nack redelivers, and the handler sees the attempt count",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("nack");
      const attempts = new Recorder<number>();
      await bus
        .consume(queue)
        .on(Ping, async (_msg, ctx) => {
          attempts.push(ctx.attempt);
          if (ctx.attempt < 3) await ctx.nack();
        })
        .start();
      await bus.send(queue, Ping, { n: 1 });
      await attempts.count(3, t.ms(15_000));
      await sleep(t.ms(100));
      expect(attempts.items).toEqual([1, 2, 3]);
    },
  },
  {
    name: "nack with a delay is not redelivered early",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("delay");
      const seen = new Recorder<number>();
      const delayMs = 1500;
      await bus
        .consume(queue)
        .on(Ping, async (_msg, ctx) => {
          seen.push(Date.now());
          if (ctx.attempt === 1) await ctx.nack({ delayMs });
        })
        .start();
      await bus.send(queue, Ping, { n: 1 });
      const [first, second] = await seen.count(2, t.ms(15_000) + delayMs);
      // Brokers round delays to their own clock (SQS to whole seconds): allow 100 ms of slack.
      expect(second! - first!).toBeGreaterThanOrEqual(delayMs - 100);
    },
  },
  {
    name: "a burst of 1,000 messages arrives complete",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("burst");
      const seen = new Recorder<number>();
      await bus
        .consume(queue)
        .on(Ping, async (msg) => seen.push(msg.data.n))
        .start({ concurrency: 16 });
      const total = 1000;
      const batches = 10;
      for (let b = 0; b < batches; b++) {
        const per = total / batches;
        await Promise.all(Array.from({ length: per }, (_, i) => bus.send(queue, Ping, { n: b * per + i })));
      }
      // At-least-once: a slow broker may redeliver a few (a visibility timeout lapsing under load);
      // what must hold is that every one of them arrives.
      await seen.until((items) => new Set(items).size === total, t.ms(60_000), `${total} distinct messages`);
      expect(new Set(seen.items).size).toBe(total);
    },
  },
  {
    name: "closing a consumer during in-flight work loses nothing",
    async run(t) {
      const queue = t.name("close");
      const first = await t.bus();
      const handled = new Recorder<number>();
      const finished: number[] = [];
      let consumer: Consumer | undefined;
      consumer = await first
        .consume(queue)
        .on(Ping, async (msg) => {
          handled.push(msg.data.n);
          await sleep(50);
          finished.push(msg.data.n);
        })
        .start({ concurrency: 4 });
      const total = 30;
      for (let n = 0; n < total; n++) await first.send(queue, Ping, { n });
      await handled.count(4, t.ms(10_000));
      await consumer.stop();
      // Every handler that started has finished before stop() resolved.
      expect(new Set(finished)).toEqual(new Set(handled.items));
      consumer = undefined;
      const second = await t.bus();
      const rest = new Recorder<number>();
      await second
        .consume(queue)
        .on(Ping, async (msg) => rest.push(msg.data.n))
        .start();
      const done = new Set(finished);
      await rest.until(
        (items) => new Set([...done, ...items]).size === total,
        t.ms(20_000),
        "the remaining messages",
      );
    },
  },
  {
    name: "a late subscription reads messages published before it existed",
    applies: (c) => (c.replayFromStart ? undefined : "the adapter does not replay from the start"),
    async run(t) {
      const topic = t.name("replay");
      const bus = await t.bus();
      await bus.publish(topic, Ping, { n: 99 });
      const seen = new Recorder<Message>();
      await bus
        .subscribe(topic, "late")
        .on(Ping, async (msg) => seen.push(msg))
        .start();
      await seen.count(1, t.ms(10_000));
      expect(seen.items.map((m) => (m.data as { n: number }).n)).toEqual([99]);
    },
  },
  {
    name: "batch handlers: messages arrive in batches; only a message reported failed is retried",
    async run(t) {
      // Retries the core scheduled (a nack after a failure), by message number.
      const retried: number[] = [];
      const bus = await t.bus({
        hooks: {
          onError: (e) => {
            if (e.willRetry && e.envelope) retried.push((e.envelope.data as { n: number }).n);
          },
        },
      });
      const queue = t.name("batches");
      const seen = new Recorder<{ n: number; attempt: number; batch: number }>();
      let batches = 0;
      await bus
        .consume(queue)
        .onBatch(Ping, { maxMessages: 10, maxWaitMs: 20 }, async (messages, ctx) => {
          const batch = ++batches;
          for (const message of messages) {
            seen.push({ n: message.data.n, attempt: ctx.attempt(message), batch });
            if (message.data.n === 7 && ctx.attempt(message) === 1) ctx.fail(message, new Error("row 7"));
          }
        })
        .start({ concurrency: 16, retry: { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 100 } });
      const total = 20;
      await bus.sendBatch(
        queue,
        Ping,
        Array.from({ length: total }, (_, n) => ({ data: { n } })),
      );
      // Wait for every message and the retry of 7: on ordered brokers (SQS FIFO groups, Service Bus
      // sessions) the messages after 7 may only arrive once 7 has been settled.
      await seen.until(
        (items) =>
          items.some((s) => s.n === 7 && s.attempt === 2) && new Set(items.map((s) => s.n)).size === total,
        t.ms(20_000),
        "every message and the retry of 7",
      );
      const attemptsOf = (n: number) => seen.items.filter((s) => s.n === n).map((s) => s.attempt);
      expect(attemptsOf(7).slice(0, 2)).toEqual([1, 2]);
      // Every other message was handled at its first delivery and acked: the core retried only 7.
      // (At-least-once: a broker may still redeliver an acked message; the core never asks it to.)
      for (let n = 0; n < total; n++) if (n !== 7) expect(attemptsOf(n)[0], `message ${n}`).toBe(1);
      expect(retried).toEqual([7]);
      // Batched: fewer handler calls than messages, none over maxMessages.
      const sizes = new Map<number, number>();
      for (const s of seen.items) sizes.set(s.batch, (sizes.get(s.batch) ?? 0) + 1);
      expect(sizes.size).toBeLessThan(total + 1);
      expect(Math.max(...sizes.values())).toBeLessThanOrEqual(10);
    },
  },
];
