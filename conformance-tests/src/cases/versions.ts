import { isSwitchyardError, type Message } from "@switchyard/core";
import { expect } from "vitest";
import { type ConformanceCase, Recorder, sleep } from "../harness.js";
import { NoUpcast, Ping, Versioned, VersionedNext } from "../messages.js";

async function settle<T>(promise: Promise<T>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

export const versionCases: ConformanceCase[] = [
  {
    name: "invalid data, an unknown version or an unknown type is refused at publish and nothing is sent",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("refuse");
      const got = new Recorder<Message>();
      await bus
        .consume(queue)
        .onAny(async (msg) => got.push(msg))
        .start();
      const invalid = await settle(bus.send(queue, Versioned, { firstName: 1 } as never));
      expect(isSwitchyardError(invalid, "VALIDATION_FAILED"), String(invalid)).toBe(true);
      expect(String((invalid as Error).message)).toContain("firstName");
      const unknownVersion = await settle(
        bus.send(queue, Versioned, { name: "x" } as never, { version: 9 as never }),
      );
      expect(isSwitchyardError(unknownVersion, "UNKNOWN_VERSION"), String(unknownVersion)).toBe(true);
      const unknownType = await settle(bus.send(queue, "conformance.nope", {} as never));
      expect(isSwitchyardError(unknownType, "UNKNOWN_MESSAGE_TYPE"), String(unknownType)).toBe(true);
      await bus.send(queue, Ping, { n: 1 });
      await got.count(1, t.ms(10_000));
      expect(got.items.map((m) => m.type)).toEqual([Ping.type]);
    },
  },
  {
    name: "an upcaster lifts an old version for a consumer of the new one",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("upcast");
      const got = new Recorder<{ data: unknown; version?: number; published?: number }>();
      await bus
        .consume(queue)
        .on(Versioned, { versions: [2] }, async (msg, ctx) => {
          got.push({ data: msg.data, version: msg.schemaVersion, published: ctx.publishedVersion });
        })
        .start();
      await bus.send(queue, Versioned, { name: "Ada Lovelace" }, { version: 1 });
      await bus.send(queue, Versioned, { firstName: "Alan", lastName: "Turing" });
      await got.count(2, t.ms(10_000));
      // Two messages without a key: brokers that partition may hand them over in either order.
      const byName = (a: { data: unknown }, b: { data: unknown }) =>
        JSON.stringify(a.data).localeCompare(JSON.stringify(b.data));
      expect([...got.items].sort(byName)).toEqual([
        { data: { firstName: "Ada", lastName: "Lovelace" }, version: 2, published: 1 },
        { data: { firstName: "Alan", lastName: "Turing" }, version: 2, published: 2 },
      ]);
    },
  },
  {
    name: "unknown versions follow the policy: skip, dead-letter, or fail (retry, then dead-letter)",
    async run(t) {
      const producer = await t.bus();
      const results: Record<string, Recorder<string>> = {};
      const queues: Record<string, string> = {};
      for (const policy of ["skip", "dead-letter", "fail"] as const) {
        const queue = t.name(`policy-${policy}`);
        queues[policy] = queue;
        const seen = new Recorder<string>();
        results[policy] = seen;
        const bus = await t.bus({
          hooks: {
            onSkip: (e) => seen.push(`skip:${e.why}`),
            onDeadLetter: (e) => seen.push(`dead:${e.reason}`),
            // Errors about a message only: a transport error the subscription recovered from has none.
            onError: (e) => {
              if (e.envelope) seen.push("error");
            },
          },
        });
        await bus
          .consume(queue)
          .on(NoUpcast, { versions: [2] }, async () => {
            seen.push("handled");
          })
          .start({ unknownVersion: policy, retry: { maxAttempts: 2, initialDelayMs: 10 } });
        // v3 comes from a newer producer: this consumer does not know it.
        await producer.send(queue, VersionedNext, { fullName: "Grace Hopper" }, { version: 3 });
      }
      await results.skip!.count(1, t.ms(10_000));
      expect(results.skip!.items).toEqual(["skip:unknown-version"]);
      await results["dead-letter"]!.count(1, t.ms(10_000));
      expect(results["dead-letter"]!.items).toEqual(["dead:unknown-version"]);
      await results.fail!.count(2, t.ms(15_000));
      expect(results.fail!.items).toEqual(["error", "dead:unknown-version"]);
      const letters = await producer
        .deadLetters({ queue: queues["dead-letter"]! })
        .list({ idleMs: t.ms(1000) });
      expect(letters.map((l) => [l.reason, l.schemaVersion])).toEqual([["unknown-version", 3]]);
    },
  },
  {
    name: "versions published side by side: each consumer handles exactly one, the best it can",
    applies: (c) => (c.consumerGroups ? undefined : "the adapter has no consumer groups"),
    async run(t) {
      const bus = await t.bus();
      const topic = t.name("dual");
      const seen: Record<string, Recorder<string>> = {
        v1: new Recorder(),
        v2: new Recorder(),
        both: new Recorder(),
      };
      for (const [name, versions] of [
        ["v1", [1]],
        ["v2", [2]],
        ["both", [1, 2]],
      ] as const) {
        await bus
          .subscribe(topic, `dual-${name}`)
          .on(NoUpcast, { versions }, async (msg) => {
            seen[name]!.push(`v${msg.schemaVersion}:${JSON.stringify(msg.data)}`);
          })
          .on(Ping, async () => seen[name]!.push("marker"))
          .start();
      }
      // One key for all three, so brokers that order by key deliver the marker last.
      const key = "dual";
      const envelopes = await bus.publishVersions(
        topic,
        NoUpcast,
        { 1: { name: "Ada Lovelace" }, 2: { firstName: "Ada", lastName: "Lovelace" } },
        { key },
      );
      expect(envelopes.map((e) => e.schemaVersion)).toEqual([1, 2]);
      // A marker after the pair: once it is handled, the pair has been (per-subscription order).
      await bus.publish(topic, Ping, { n: 0 }, { key });
      for (const recorder of Object.values(seen)) {
        await recorder.until((items) => items.includes("marker"), t.ms(10_000), "the marker");
      }
      if (t.capabilities.ordering === "none") await sleep(t.ms(500));
      const pair = (r: Recorder<string>) => r.items.filter((i) => i !== "marker");
      expect(pair(seen.v1!)).toEqual(['v1:{"name":"Ada Lovelace"}']);
      expect(pair(seen.v2!)).toEqual(['v2:{"firstName":"Ada","lastName":"Lovelace"}']);
      expect(pair(seen.both!)).toEqual(['v2:{"firstName":"Ada","lastName":"Lovelace"}']);
    },
  },
  {
    name: "invalid data at consume goes to the DLQ as validation; the consumer stays alive",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("invalid");
      const got = new Recorder<number>();
      await bus
        .consume(queue)
        .on(Ping, async (msg) => got.push(msg.data.n))
        .start();
      // A producer that skipped validation: right type and version, wrong data.
      await bus.publishRaw(
        { kind: "queue", name: queue },
        { type: Ping.type, schemaVersion: 1, data: { n: "nope" } },
      );
      await bus.send(queue, Ping, { n: 3 });
      await got.count(1, t.ms(10_000));
      const letters = await bus.deadLetters({ queue }).list({ idleMs: t.ms(1000) });
      expect(letters.map((l) => l.reason)).toEqual(["validation"]);
      expect(letters[0]!.error?.message).toMatch(/n:/);
      expect(got.items).toEqual([3]);
    },
  },
  {
    name: "with idempotency on, duplicate ids are handled once",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("idempotent");
      const got = new Recorder<string>();
      const skipped = new Recorder<string>();
      const consumerBus = await t.bus({ hooks: { onSkip: (e) => skipped.push(e.why) } });
      await consumerBus
        .consume(queue)
        .on(Ping, async (msg) => got.push(msg.id))
        .start({ idempotency: true });
      const id = `dup-${t.runId}`;
      for (let i = 0; i < 3; i++) await bus.send(queue, Ping, { n: i }, { id });
      await bus.send(queue, Ping, { n: 9 });
      await skipped.count(2, t.ms(10_000), "two duplicates skipped");
      await got.count(2, t.ms(10_000));
      expect(got.items.filter((x) => x === id)).toHaveLength(1);
      expect(skipped.items).toEqual(["duplicate", "duplicate"]);
    },
  },
];
