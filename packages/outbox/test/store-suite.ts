// The cases every outbox store must pass, written once: each store's test file calls
// describeOutboxStore with a factory of fresh outboxes, and keeps only its own cases.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import {
  type Bus,
  type ConsumerOptions,
  createBus,
  defineMessage,
  SwitchyardError,
  type Transport,
} from "@switchyard/core";
import { MemoryBroker, MemoryTransport } from "@switchyard/core/memory";
import * as rabbit from "@switchyard/rabbitmq";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { OutboxBase } from "../src/index.js";

export const Saved = defineMessage({
  type: "blog.saved",
  versions: { 1: z.object({ blogId: z.string(), n: z.number() }) },
});

export const uniq = (p: string) => `${p}_${randomUUID().replaceAll("-", "").slice(0, 12)}`;

// Registered while the importing test file is collected: its buses close after its tests.
const buses: Bus[] = [];
afterAll(() => Promise.all(buses.splice(0).map((bus) => bus.close())));

/** A bus on `transport`, or on a memory broker of its own. */
export function memoryBus(transport?: Transport): Bus {
  const bus = transport
    ? createBus({ transport, source: "relay" })
    : createBus({ url: `memory://${uniq("m")}`, source: "relay" });
  buses.push(bus);
  return bus;
}

/** A bus on RabbitMQ, or on `transport` (a wrapped RabbitMQ transport). */
export function rabbitBus(amqpUrl: string, transport?: Transport): Bus {
  const bus = transport
    ? createBus({ transport, source: "relay" })
    : createBus({ url: amqpUrl, adapter: rabbit, source: "relay" });
  buses.push(bus);
  return bus;
}

/** Consumes the queue "jobs" on `bus`: the `n` of each message, in the order handled. */
export async function handleJobs(bus: Bus, options: ConsumerOptions = {}): Promise<number[]> {
  const handled: number[] = [];
  await bus
    .consume("jobs")
    .on(Saved, (m) => void handled.push(m.data.n))
    .start(options);
  return handled;
}

/** One consumer of `queue` on RabbitMQ, in order, dropping duplicates by envelope id and counting them. */
export async function dedupingConsumer(amqpUrl: string, queue: string) {
  const bus = rabbitBus(amqpUrl);
  const seen = { handled: [] as number[], duplicates: 0 };
  bus.hooks.onSkip = (e) => {
    if (e.why === "duplicate") seen.duplicates++;
  };
  await bus
    .consume(queue)
    .on(Saved, (m) => void seen.handled.push(m.data.n))
    .start({ idempotency: true, concurrency: 1 });
  return seen;
}

/** A fresh, installed outbox of one store, and how the application writes to it. */
export interface StoreUnderTest<Tx> {
  outbox: OutboxBase<Tx>;
  /** Runs `body` in an application transaction; rolls back when asked or on error. */
  tx<T>(body: (tx: Tx) => Promise<T>, rollback?: boolean): Promise<T>;
  /** What relay-child.mjs needs after the RabbitMQ URL to open this outbox: the store's name, then its own. */
  childArgs: string[];
  /**
   * Called when a relay process that led this outbox was SIGKILLed: checks what its leadership left
   * behind, and returns the check to make once the next relay leads.
   */
  leaderKilled(): Promise<() => void>;
}

/** `leaseMs`: how long a SQLite relay's lease lasts; PostgreSQL's lock has none and ignores it. */
export type FreshStore<Tx> = (options?: { leaseMs?: number }) => Promise<StoreUnderTest<Tx>>;

export function describeOutboxStore<Tx>(name: string, fresh: FreshStore<Tx>): void {
  describe(`outbox store suite: ${name}`, () => {
    it("refuses invalid data with VALIDATION_FAILED and writes nothing; a rollback sends nothing; a committed publish wakes the relay", async () => {
      const { outbox, tx } = await fresh();
      await expect(
        tx((t) => outbox.publish(t, "blogs", Saved, { blogId: "b1", n: "one" } as any)),
      ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
      await tx((t) => outbox.publish(t, "blogs", Saved, { blogId: "b1", n: 1 }), true);
      expect(await outbox.lag()).toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });

      const bus = memoryBus();
      const seen: number[] = [];
      await bus
        .subscribe("blogs", "reader")
        .on(Saved, (m) => void seen.push(m.data.n))
        .start();
      const relay = outbox.relay(bus, { intervalMs: 5000 });
      await relay.elected;
      await tx((t) => outbox.publish(t, "blogs", Saved, { blogId: "b1", n: 2 }));
      // Woken by the publish (the poll interval is 5 s): the committed one only.
      await expect.poll(() => seen, { timeout: 3000 }).toEqual([2]);
      await expect.poll(() => outbox.lag()).toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });
      await relay.stop();
      expect(relay.stats).toMatchObject({ sent: 1, leader: false });
    });

    it("sends every committed row once, in order per key, with the envelope the publish built", async () => {
      const { outbox, tx } = await fresh();
      const bus = memoryBus();
      const got = new Map<string, number[]>();
      const received = new Map<string, { id: string; source: string; time: string; key?: string }>();
      await bus
        .subscribe("blogs", "reader")
        .on(Saved, (m) => {
          got.set(m.data.blogId, [...(got.get(m.data.blogId) ?? []), m.data.n]);
          received.set(m.id, m);
        })
        .start({ concurrency: 4 });
      const publish = (t: Tx, blogId: string, n: number) =>
        outbox.publish(t, "blogs", Saved, { blogId, n }, { key: blogId, headers: { h: "v" } });
      // A backlog from concurrent transactions, one key each (a store may run them one at a time)…
      const written = (
        await Promise.all(
          ["a", "b", "c"].map((blogId) =>
            tx(async (t) => {
              const out = [];
              for (let n = 0; n < 5; n++) out.push(await publish(t, blogId, n));
              return out;
            }),
          ),
        )
      ).flat();
      // …and from one transaction per round, the keys interleaved.
      for (let n = 5; n < 10; n++) {
        await tx(async (t) => {
          for (const blogId of ["a", "b", "c"]) written.push(await publish(t, blogId, n));
        });
      }
      expect((await outbox.lag()).unsent).toBe(30);
      const relay = outbox.relay(bus, { batchSize: 7, intervalMs: 5000 });
      await expect.poll(() => received.size).toBe(30);
      // Woken by the publish (the poll interval is 5 s): more rows go out at once.
      await tx((t) => publish(t, "a", 10));
      await expect.poll(() => received.size, { timeout: 3000 }).toBe(31);
      expect(got.get("a")).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      for (const blogId of ["b", "c"]) expect(got.get(blogId)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      for (const sent of written) {
        expect(received.get(sent.id)).toMatchObject({
          id: sent.id,
          source: "blog-service",
          time: sent.time,
          key: sent.key,
          headers: { h: "v" },
        });
      }
      await expect.poll(() => outbox.lag()).toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });
      expect(relay.stats).toMatchObject({ sent: 31, leader: true });
      expect(relay.stats.batches).toBeGreaterThanOrEqual(6); // 30 rows, 7 a batch, then 1
      await relay.stop();
    });

    it("two relays: only the leader sends; the standby takes over at once when it stops", async () => {
      const { outbox, tx } = await fresh({ leaseMs: 3000 });
      const bus = memoryBus();
      let count = 0;
      await bus
        .consume("jobs")
        .on(Saved, () => void count++)
        .start();
      const first = outbox.relay(bus, { intervalMs: 50 });
      await first.elected;
      const second = outbox.relay(bus, { intervalMs: 50 });
      await tx(async (t) => {
        for (let n = 0; n < 20; n++) await outbox.send(t, "jobs", Saved, { blogId: "x", n });
      });
      await expect.poll(() => count).toBe(20);
      await expect.poll(() => first.stats).toMatchObject({ leader: true, sent: 20 });
      expect(second.stats).toMatchObject({ leader: false, sent: 0 });
      await first.stop(); // gives the leadership back: no wait for a lease to expire
      const handover = Date.now();
      await second.elected;
      expect(Date.now() - handover).toBeLessThan(3000);
      await tx((t) => outbox.send(t, "jobs", Saved, { blogId: "x", n: 20 }));
      await expect.poll(() => count).toBe(21);
      await expect.poll(() => second.stats).toMatchObject({ leader: true, sent: 1 });
      await second.stop();
    });

    /**
     * A relay whose bus refuses one row of key "a" (until `allowPoison()`), run until that row is
     * parked: the checks both ways out of parking (retry, discard) start from.
     */
    async function parkPoison() {
      const { outbox, tx } = await fresh();
      let poisonAllowed = false;
      const transport = new MemoryTransport({ broker: new MemoryBroker() });
      const publish = transport.publish.bind(transport);
      transport.publish = async (destination, messages) => {
        if (!poisonAllowed && messages.some((m) => m.headers.poison === "yes"))
          throw new SwitchyardError("MESSAGE_TOO_LARGE", "refused by the broker");
        return publish(destination, messages);
      };
      const bus = memoryBus(transport);
      const handled: string[] = [];
      await bus
        .consume("jobs")
        .on(Saved, (m) => void handled.push(`${m.data.blogId}${m.data.n}`))
        .start({ concurrency: 1 });
      const poison = await tx(async (t) => {
        await outbox.send(t, "jobs", Saved, { blogId: "a", n: 0 }, { key: "a" });
        const bad = await outbox.send(
          t,
          "jobs",
          Saved,
          { blogId: "a", n: 1 },
          { key: "a", headers: { poison: "yes" } },
        );
        await outbox.send(t, "jobs", Saved, { blogId: "a", n: 2 }, { key: "a" });
        for (let n = 0; n < 3; n++) await outbox.send(t, "jobs", Saved, { blogId: "b", n }, { key: "b" });
        await outbox.send(t, "jobs", Saved, { blogId: "z", n: 0 }); // no key
        return bad;
      });
      const errors: unknown[] = [];
      const relay = outbox.relay(bus, { intervalMs: 20, maxAttempts: 3, onError: (e) => errors.push(e) });
      await expect.poll(() => relay.stats.parked).toBe(1);
      // Across keys no order is promised: sorted.
      await expect.poll(() => [...handled].sort()).toEqual(["a0", "b0", "b1", "b2", "z0"]);
      expect(handled.filter((h) => h.startsWith("b"))).toEqual(["b0", "b1", "b2"]);
      const [parked] = await outbox.parked();
      expect(parked).toMatchObject({
        id: poison.id,
        key: "a",
        destination: "jobs",
        kind: "queue",
        attempts: 3,
      });
      expect(parked!.error).toContain("refused by the broker");
      expect(parked!.failedAt).toBeInstanceOf(Date);
      expect(await outbox.lag()).toMatchObject({ unsent: 1, parked: 1 }); // a2, held behind the parked row
      // Later rounds: a new row of another key goes out, a2 still waits behind the parked row.
      await tx((t) => outbox.send(t, "jobs", Saved, { blogId: "b", n: 3 }, { key: "b" }));
      await expect.poll(() => handled).toContain("b3");
      expect(handled).not.toContain("a2");
      const allowPoison = () => {
        poisonAllowed = true;
      };
      return { outbox, relay, handled, errors, poison, allowPoison };
    }

    it("parks a row the bus refuses after maxAttempts; other keys go on, its key waits behind it; retried, it goes out", async () => {
      const { outbox, relay, handled, errors, poison, allowPoison } = await parkPoison();
      // Once the broker takes it, a retried row goes out, and the row of its key held behind it after it.
      allowPoison();
      expect(await outbox.retry("no-such-id")).toBe(false);
      expect(await outbox.retry(poison.id)).toBe(true);
      await expect.poll(() => handled.filter((h) => h.startsWith("a"))).toEqual(["a0", "a1", "a2"]);
      await expect.poll(() => outbox.lag()).toMatchObject({ unsent: 0, parked: 0 });
      expect(errors.every((e) => (e as SwitchyardError).code === "MESSAGE_TOO_LARGE")).toBe(true);
      await relay.stop();
    });

    it("parks a row the bus refuses after maxAttempts; discarded, the row of its key held behind it goes on", async () => {
      const { outbox, relay, handled, errors, poison } = await parkPoison();
      expect(await outbox.discard("no-such-id")).toBe(false);
      expect(await outbox.discard(poison.id)).toBe(true);
      await expect.poll(() => handled.filter((h) => h.startsWith("a"))).toEqual(["a0", "a2"]);
      expect(await outbox.parked()).toEqual([]);
      await expect.poll(() => outbox.lag()).toMatchObject({ unsent: 0, parked: 0 });
      expect(errors.every((e) => (e as SwitchyardError).code === "MESSAGE_TOO_LARGE")).toBe(true);
      await relay.stop();
    });

    it("a broker outage (TRANSPORT_ERROR) is no attempt: nothing is parked, all is sent when it is back", async () => {
      const { outbox, tx } = await fresh();
      const transport = new MemoryTransport({ broker: new MemoryBroker() });
      const publish = transport.publish.bind(transport);
      let failures = 6;
      transport.publish = async (destination, messages) => {
        if (failures-- > 0) throw new SwitchyardError("TRANSPORT_ERROR", "broker away");
        return publish(destination, messages);
      };
      const bus = memoryBus(transport);
      let count = 0;
      await bus
        .consume("jobs")
        .on(Saved, () => void count++)
        .start();
      await tx(async (t) => {
        for (let n = 0; n < 3; n++) await outbox.send(t, "jobs", Saved, { blogId: "k", n }, { key: "k" });
      });
      const relay = outbox.relay(bus, { intervalMs: 20, maxAttempts: 2 });
      await expect.poll(() => count).toBe(3);
      await expect.poll(() => relay.stats).toMatchObject({ parked: 0, sent: 3, errors: 6 });
      expect(await outbox.parked()).toEqual([]);
      await relay.stop();
    });

    describeWithBroker("rabbitmq", "relay to RabbitMQ under faults", () => {
      const amqpUrl = brokerEndpoint("rabbitmq").url;
      let child: ChildProcess | undefined;
      afterAll(() => {
        child?.kill("SIGKILL");
      });

      it("a relay SIGKILLed mid-batch loses nothing: the next leader sends it all again; duplicates are dropped", async () => {
        const store = await fresh({ leaseMs: 1500 });
        const { outbox, tx } = store;
        const queue = uniq("outbox_q");
        const consumer = await dedupingConsumer(amqpUrl, queue);
        await tx(async (t) => {
          for (let n = 0; n < 50; n++) await outbox.send(t, queue, Saved, { blogId: "k", n }, { key: "k" });
        });

        // A relay in a child process sends its first batch (20) and is SIGKILLed before removing it.
        child = spawn(
          process.execPath,
          [fileURLToPath(new URL("./relay-child.mjs", import.meta.url)), amqpUrl, ...store.childArgs],
          { stdio: ["ignore", "pipe", "inherit"] },
        );
        let out = "";
        await new Promise<void>((resolve, reject) => {
          child!.stdout!.on("data", (chunk) => {
            out += chunk;
            if (out.includes("published")) resolve();
          });
          child!.on("exit", (code) => reject(new Error(`child exited early (${code}): ${out}`)));
        });
        const exited = new Promise((resolve) => child!.on("exit", (_code, signal) => resolve(signal)));
        child.kill("SIGKILL");
        expect(await exited).toBe("SIGKILL");
        const checkNextLeader = await store.leaderKilled();
        await expect.poll(() => consumer.handled.length).toBe(20);
        expect((await outbox.lag()).unsent).toBe(50); // nothing was removed

        const relay = outbox.relay(rabbitBus(amqpUrl), { batchSize: 20, intervalMs: 100 });
        await relay.elected;
        checkNextLeader();
        await expect
          .poll(() => outbox.lag(), { timeout: 15_000 })
          .toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });
        await expect.poll(() => consumer.handled.length).toBe(50);
        expect(consumer.handled).toEqual(Array.from({ length: 50 }, (_, n) => n)); // each once, in order
        await expect.poll(() => consumer.duplicates).toBe(20); // the killed child's batch, again
        expect(relay.stats).toMatchObject({ leader: true, sent: 50 });
        await relay.stop();
      });
    });
  });
}
