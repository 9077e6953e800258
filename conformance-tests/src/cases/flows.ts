import { MemoryIdempotencyStore, PermanentError } from "@switchyard/core";
import { expect } from "vitest";
import { type ConformanceCase, Recorder, sleep } from "../harness.js";
import { NoUpcast, Ping, PostReviewed, PostSubmitted, Versioned } from "../messages.js";

/** Request-level flows the example services rely on, end to end across several buses. */
export const flowCases: ConformanceCase[] = [
  {
    name: "blog approval: submitted posts are reviewed once, and every reviewing subscriber gets each decision once",
    applies: (c) => (c.consumerGroups ? undefined : "the adapter has no consumer groups"),
    async run(t) {
      const moderationQueue = t.name("moderation");
      const reviews = t.name("reviews");
      const author = await t.bus({ source: "blog" });
      const moderation = await t.bus({ source: "moderation" });
      const notifier = await t.bus({ source: "notifier" });
      const reviewed = new Recorder<string>();
      await moderation
        .consume(moderationQueue)
        .on(PostSubmitted, async (msg) => {
          reviewed.push(msg.data.postId);
          const approved = !msg.data.title.includes("spam");
          await moderation.publish(
            reviews,
            PostReviewed,
            { postId: msg.data.postId, approved },
            { key: msg.data.postId },
          );
        })
        .start();
      const published = new Recorder<string>();
      const notified = new Recorder<string>();
      await author
        .subscribe(reviews, "blog")
        .on(PostReviewed, async (msg) => {
          expect(msg.source).toBe("moderation");
          published.push(`${msg.data.postId}:${msg.data.approved}`);
        })
        .start();
      await notifier
        .subscribe(reviews, "notifier")
        .on(PostReviewed, async (msg) => notified.push(`${msg.data.postId}:${msg.data.approved}`))
        .start();
      const posts = [
        { postId: "p1", title: "Hello" },
        { postId: "p2", title: "Buy spam now" },
        { postId: "p3", title: "Release notes" },
      ];
      for (const post of posts) await author.send(moderationQueue, PostSubmitted, post);
      const expected = ["p1:true", "p2:false", "p3:true"];
      await published.count(3, t.ms(20_000), "three decisions at the blog");
      await notified.count(3, t.ms(20_000), "three decisions at the notifier");
      await sleep(t.ms(300)); // a duplicate would arrive now
      expect(reviewed.items.sort()).toEqual(["p1", "p2", "p3"]);
      expect(published.items.sort()).toEqual(expected);
      expect(notified.items.sort()).toEqual(expected);
    },
  },
  {
    name: "dual publish through a migration: v1 only, both side by side, consumers move to v2, then v1 is dropped — each message handled once, nothing dead-lettered",
    applies: (c) => (c.consumerGroups ? undefined : "the adapter has no consumer groups"),
    async run(t) {
      const producer = await t.bus();
      const siblings = new Recorder<string>();
      const consumers = await t.bus({
        hooks: { onSkip: (e) => e.why === "sibling" && siblings.push(e.source.subscription) },
      });
      const skipped = (subscription: string, n: number) =>
        siblings.until(
          (items) => items.filter((s) => s === subscription).length >= n,
          t.ms(15_000),
          `${n} sibling copies skipped by ${subscription}`,
        );
      const topic = t.name("migration");
      const key = "migration"; // one key, so brokers that order by key keep the phases in order
      const legacy = new Recorder<string>();
      const modern = new Recorder<string>();
      const record = (recorder: Recorder<string>) => async (msg: { schemaVersion?: number; data: unknown }) =>
        recorder.push(`v${msg.schemaVersion}:${JSON.stringify(msg.data)}`);
      // "legacy" knows only v1; "modern" is on v2 and lifts v1 with the upcaster.
      const oldLegacy = await consumers
        .subscribe(topic, "legacy")
        .on(NoUpcast, { versions: [1] }, record(legacy))
        .start();
      await consumers
        .subscribe(topic, "modern")
        .on(Versioned, { versions: [2] }, record(modern))
        .start();
      const both = (name: string) => ({ 1: { name }, 2: { firstName: name, lastName: "Dual" } });

      // 1. The producer still publishes v1 only.
      await producer.publish(topic, NoUpcast, { name: "Ada One" }, { version: 1, key });
      await legacy.count(1, t.ms(15_000));
      await modern.count(1, t.ms(15_000));
      // 2. Side by side: each consumer takes the one version it handles best.
      await producer.publishVersions(topic, NoUpcast, both("Two"), { key });
      await legacy.count(2, t.ms(15_000));
      await modern.count(2, t.ms(15_000));
      // The other copy is skipped as a sibling (a consumer redeployed before that would take it).
      await skipped("legacy", 1);
      await skipped("modern", 1);
      // 3. The legacy service is redeployed on v2 (still reading v1) while both are published.
      await oldLegacy.stop();
      await consumers
        .subscribe(topic, "legacy")
        .on(NoUpcast, { versions: [1, 2] }, record(legacy))
        .start();
      await producer.publishVersions(topic, NoUpcast, both("Three"), { key });
      await legacy.count(3, t.ms(20_000));
      await modern.count(3, t.ms(15_000));
      await skipped("legacy", 2);
      await skipped("modern", 2);
      // 4. v1 is dropped: the producer publishes v2 only.
      await producer.publish(topic, NoUpcast, { firstName: "Four", lastName: "Only" }, { version: 2, key });
      await legacy.count(4, t.ms(15_000));
      await modern.count(4, t.ms(15_000));
      await sleep(t.ms(300)); // a duplicate (the sibling copy) would arrive now

      expect(legacy.items).toEqual([
        'v1:{"name":"Ada One"}',
        'v1:{"name":"Two"}',
        'v2:{"firstName":"Three","lastName":"Dual"}',
        'v2:{"firstName":"Four","lastName":"Only"}',
      ]);
      expect(siblings.items.sort()).toEqual(["legacy", "legacy", "modern", "modern"]);
      expect(modern.items).toEqual([
        'v2:{"firstName":"Ada","lastName":"One"}',
        'v2:{"firstName":"Two","lastName":"Dual"}',
        'v2:{"firstName":"Three","lastName":"Dual"}',
        'v2:{"firstName":"Four","lastName":"Only"}',
      ]);
      for (const subscription of ["legacy", "modern"]) {
        expect(await producer.deadLetters(topic, subscription).list({ idleMs: t.ms(500) })).toEqual([]);
      }
    },
  },
  {
    name: "a dead letter names the consumer: the service, its subscription and handler, not the producer",
    applies: (c) => (c.consumerGroups ? undefined : "the adapter has no consumer groups"),
    async run(t) {
      const topic = t.name("who");
      const producer = await t.bus({ source: "orders" });
      const dead = new Recorder<string>();
      const billing = await t.bus({ source: "billing", hooks: { onDeadLetter: (e) => dead.push(e.reason) } });
      const shipping = await t.bus({ source: "shipping" });
      const shipped = new Recorder<number>();
      await billing
        .subscribe(topic, "billing")
        .on(Ping, async function chargeCard() {
          throw new PermanentError("card declined");
        })
        .start();
      await shipping
        .subscribe(topic, "shipping")
        .on(Ping, async (msg) => shipped.push(msg.data.n))
        .start();
      const sent = await producer.publish(topic, Ping, { n: 7 });
      await shipped.count(1, t.ms(15_000));
      await dead.count(1, t.ms(15_000), "the dead letter");
      const letters = await producer.deadLetters(topic, "billing").list({ idleMs: t.ms(1000) });
      expect(letters).toHaveLength(1);
      expect(letters[0]).toMatchObject({
        id: sent.id,
        consumer: "billing",
        subscription: "billing",
        handler: "chargeCard",
        reason: "handler-error",
      });
      expect(letters[0]!.envelope?.source).toBe("orders");
      expect(await producer.deadLetters(topic, "shipping").list({ idleMs: t.ms(500) })).toEqual([]);
      expect(shipped.items).toEqual([7]);
    },
  },
  {
    name: "an idempotent consumer across a redelivery: a failed attempt is retried and handled once; a copy redelivered to another instance is skipped",
    async run(t) {
      const queue = t.name("idem-redelivery");
      const producer = await t.bus();
      const store = new MemoryIdempotencyStore(); // shared by both instances, as a database would be
      const effects = new Recorder<string>();
      const skipped = new Recorder<string>();
      const instance = async () => {
        const bus = await t.bus({ hooks: { onSkip: (e) => skipped.push(`${e.why}:${e.envelope.id}`) } });
        await bus
          .consume(queue)
          .on(Ping, async (msg, ctx) => {
            if (msg.data.n === 1 && ctx.attempt === 1) throw new Error("database busy"); // before any effect
            effects.push(`${msg.data.n}`);
          })
          .start({ idempotency: { store }, retry: { initialDelayMs: 50, maxDelayMs: 200 } });
      };
      await instance();
      await instance();
      const first = await producer.send(queue, Ping, { n: 1 });
      const second = await producer.send(queue, Ping, { n: 2 });
      await effects.count(2, t.ms(20_000), "both handled (1 after its retry)");
      // The broker hands a copy of a handled message back (an ack lost on the way): same id.
      await producer.send(queue, Ping, { n: 2 }, { id: second.id });
      await skipped.count(1, t.ms(15_000), "the redelivered copy skipped");
      await producer.send(queue, Ping, { n: 3 });
      await effects.count(3, t.ms(15_000));
      expect(effects.items.sort()).toEqual(["1", "2", "3"]);
      // The copy was skipped (more than once only if the broker redelivered the copy itself).
      expect(skipped.items).toContain(`duplicate:${second.id}`);
      expect(skipped.items.every((s) => s.startsWith("duplicate:"))).toBe(true);
      expect(first.id).not.toBe(second.id);
    },
  },
];
