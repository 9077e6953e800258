import { hostname } from "node:os";
import { PermanentError } from "@switchyard/core";
import { expect } from "vitest";
import { type ConformanceCase, Recorder } from "../harness.js";
import { Ping } from "../messages.js";

export const deadLetterCases: ConformanceCase[] = [
  {
    name: "a failing handler is retried, then dead-lettered with full metadata, while the rest flows",
    async run(t) {
      const bus = await t.bus();
      const topic = t.name("poison");
      const subscription = "audit";
      const good = new Recorder<number>();
      const poisonAttempts = new Recorder<number>();
      const dead = new Recorder<string>();
      const deadBus = await t.bus({ hooks: { onDeadLetter: (e) => dead.push(e.envelope?.id ?? "?") } });
      await deadBus
        .subscribe(topic, subscription)
        .on(Ping, async function auditPing(msg, ctx) {
          if (msg.data.n === 0) {
            poisonAttempts.push(ctx.attempt);
            throw new RangeError(`poison ${msg.data.n}`);
          }
          good.push(msg.data.n);
        })
        .start({ retry: { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 100 } });
      const poison = await bus.publish(topic, Ping, { n: 0 });
      for (let n = 1; n <= 10; n++) await bus.publish(topic, Ping, { n });
      await good.count(10, t.ms(20_000));
      await dead.count(1, t.ms(20_000), "the dead letter");
      expect(poisonAttempts.items).toEqual([1, 2, 3]);
      const letters = await bus.deadLetters(topic, subscription).list({ idleMs: t.ms(1000) });
      expect(letters).toHaveLength(1);
      const letter = letters[0]!;
      expect(letter).toMatchObject({
        id: poison.id,
        reason: "max-attempts",
        attempts: 3,
        destination: { kind: "topic", name: topic },
        subscription,
        handler: "auditPing",
        messageType: Ping.type,
        schemaVersion: 1,
        host: hostname(),
        pid: process.pid,
        error: { type: "RangeError", message: "poison 0" },
      });
      expect(letter.error?.stack).toContain("RangeError");
      expect(Date.parse(letter.firstFailureAt!)).toBeLessThanOrEqual(Date.parse(letter.lastFailureAt!));
      expect(letter.envelope?.data).toEqual({ n: 0 });
    },
  },
  {
    name: "dead letters can be listed, redriven to the failing subscription only, and are gone after",
    async run(t) {
      const bus = await t.bus();
      const topic = t.name("redrive");
      let healthy = false;
      const handledA = new Recorder<number>();
      const handledB = new Recorder<number>();
      const dead = new Recorder<string>();
      const consumerBus = await t.bus({ hooks: { onDeadLetter: (e) => dead.push(e.envelope!.id) } });
      await consumerBus
        .subscribe(topic, "fragile")
        .on(Ping, async (msg) => {
          if (!healthy) throw new PermanentError("not yet");
          handledA.push(msg.data.n);
        })
        .start();
      await consumerBus
        .subscribe(topic, "sturdy")
        .on(Ping, async (msg) => handledB.push(msg.data.n))
        .start();
      await bus.publish(topic, Ping, { n: 1 });
      await bus.publish(topic, Ping, { n: 2 });
      await dead.count(2, t.ms(15_000));
      await handledB.count(2, t.ms(15_000));
      const dlq = bus.deadLetters(topic, "fragile");
      const listed = await dlq.list({ idleMs: t.ms(1000) });
      expect(listed.map((l) => l.reason)).toEqual(["handler-error", "handler-error"]);
      // Listing does not remove: a second look sees the same letters.
      expect((await dlq.list({ idleMs: t.ms(1000) })).map((l) => l.id).sort()).toEqual(
        listed.map((l) => l.id).sort(),
      );
      healthy = true;
      const first = listed.find((l) => (l.envelope?.data as { n: number } | undefined)?.n === 1)!;
      expect(await dlq.redrive({ ids: [first.id], idleMs: t.ms(1000) })).toBe(1);
      await handledA.count(1, t.ms(15_000));
      expect(await dlq.redrive({ idleMs: t.ms(1000) })).toBe(1);
      await handledA.count(2, t.ms(15_000));
      expect(handledA.items.sort()).toEqual([1, 2]);
      expect(await dlq.list({ idleMs: t.ms(500) })).toEqual([]);
      // The other subscription did not get the redriven copies.
      expect(handledB.items.sort()).toEqual([1, 2]);
    },
  },
  {
    name: "ctx.deadLetter(reason) dead-letters at once with reason explicit",
    async run(t) {
      const dead = new Recorder<string>();
      const bus = await t.bus({ hooks: { onDeadLetter: (e) => dead.push(e.reason) } });
      const queue = t.name("explicit");
      const attempts = new Recorder<number>();
      await bus
        .consume(queue)
        .on(Ping, async (_msg, ctx) => {
          attempts.push(ctx.attempt);
          await ctx.deadLetter("customer unknown");
        })
        .start();
      await bus.send(queue, Ping, { n: 5 });
      await attempts.count(1, t.ms(10_000));
      await dead.count(1, t.ms(10_000), "the dead letter to be written");
      const letters = await bus.deadLetters({ queue }).list({ idleMs: t.ms(1000) });
      expect(letters.map((l) => [l.reason, l.reasonText, l.attempts])).toEqual([
        ["explicit", "customer unknown", 1],
      ]);
      expect(attempts.items).toEqual([1]);
    },
  },
  {
    name: "the adapter's claimed capabilities match what it implements",
    async run(t) {
      const bus = await t.bus();
      const transport = await bus.transport();
      const caps = t.capabilities;
      expect(caps.maxMessageBytes).toBeGreaterThan(1024);
      expect(caps.maxHeaders).toBeGreaterThanOrEqual(1);
      expect(["partition", "key", "group", "none"]).toContain(caps.ordering);
      expect(typeof transport.publish).toBe("function");
      expect(typeof transport.subscribe).toBe("function");
      // Look at a real delivery: what the adapter claims must be there.
      const queue = t.name("caps");
      await bus.ensure([{ kind: "queue", name: queue }]);
      const deliveries = new Recorder<{ hasDeadLetter: boolean; attempt: number }>();
      const subscription = await transport.subscribe(
        { kind: "queue", name: queue, subscription: queue },
        { prefetch: 1 },
        (d) => {
          deliveries.push({ hasDeadLetter: typeof d.deadLetter === "function", attempt: d.attempt });
          void d.ack();
        },
      );
      await bus.send(queue, Ping, { n: 1 });
      const [delivery] = await deliveries.count(1, t.ms(10_000));
      await subscription.close();
      expect(delivery!.attempt).toBe(1);
      if (caps.nativeDeadLetter) {
        expect(
          delivery!.hasDeadLetter,
          "nativeDeadLetter is claimed but deliveries have no deadLetter()",
        ).toBe(true);
      }
    },
  },
];
