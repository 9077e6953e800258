import { describe, expect, it } from "vitest";
import { backoffDelay, defaultRetry, MemoryIdempotencyStore } from "../src/index.js";

describe("retry backoff", () => {
  it("grows exponentially up to the cap", () => {
    const noJitter = { ...defaultRetry, jitter: 0, initialDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, noJitter))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
  });

  it("jitters within the configured fraction", () => {
    const options = { ...defaultRetry, jitter: 0.5, initialDelayMs: 1000 };
    expect(backoffDelay(1, options, () => 0)).toBe(1000);
    expect(backoffDelay(1, options, () => 0.999)).toBeGreaterThanOrEqual(500);
    expect(backoffDelay(1, options, () => 0.999)).toBeLessThan(502);
  });
});

describe("in-memory idempotency store", () => {
  it("claims once until released or expired", async () => {
    let now = 0;
    const store = new MemoryIdempotencyStore({ now: () => now });
    expect(await store.claim("a", 100)).toBe(true);
    expect(await store.claim("a", 100)).toBe(false);
    await store.release("a");
    expect(await store.claim("a", 100)).toBe(true);
    now = 101;
    expect(await store.claim("a", 100)).toBe(true);
  });

  it("forgets expired keys, so memory stays bounded", async () => {
    let now = 0;
    const store = new MemoryIdempotencyStore({ now: () => now });
    for (let i = 0; i < 1000; i++) await store.claim(`k${i}`, 10);
    now = 11;
    await store.claim("fresh", 10);
    expect(store.size).toBe(1);
  });
});

describe("idempotent consumers and stop()", () => {
  it("a message abandoned by stop() is handled by the next consumer sharing the store, not skipped as a duplicate", async () => {
    const { createBus, defineMessage } = await import("../src/index.js");
    const { z } = await import("zod");
    const Job = defineMessage({ type: "job", versions: { 1: z.object({ n: z.number() }) } });
    const url = `memory://idempotent-abandon-${Math.random()}`;
    const store = new MemoryIdempotencyStore();
    const first = createBus(url);
    const second = createBus(url);
    let hungStarted!: () => void;
    const started = new Promise<void>((resolve) => {
      hungStarted = resolve;
    });
    let letGo!: () => void;
    const hung = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    const consumer = await first
      .consume("jobs")
      .on(Job, async () => {
        hungStarted();
        await hung;
      })
      .start({ idempotency: { store }, stopTimeoutMs: 50 });
    await first.send("jobs", Job, { n: 1 });
    await started;
    await consumer.stop(); // gives up on the handler after 50 ms: the message goes back to the queue
    const handled: number[] = [];
    const skipped: string[] = [];
    second.hooks.onSkip = (event) => skipped.push(event.why);
    await second
      .consume("jobs")
      .on(Job, (msg) => {
        handled.push(msg.data.n);
      })
      .start({ idempotency: { store } });
    await expect.poll(() => handled, { timeout: 5000 }).toEqual([1]);
    expect(skipped).toEqual([]);
    letGo();
    await Promise.all([first.close(), second.close()]);
  });
});

describe("idempotency leases", () => {
  it("a claim is a short lease until complete() keeps it for the TTL", async () => {
    let now = 0;
    const store = new MemoryIdempotencyStore({ now: () => now });
    expect(await store.claim("k", 100)).toBe(true);
    now = 101; // the claimer died in its handler: the lease runs out, the redelivery is taken
    expect(await store.claim("k", 100)).toBe(true);
    await store.complete("k", 10_000);
    now = 5_000;
    expect(await store.claim("k", 100)).toBe(false);
  });

  it("a message whose handler never completed blocks its redelivery only for the lease; a handled one for the TTL", async () => {
    const { createBus, defineMessage } = await import("../src/index.js");
    const { z } = await import("zod");
    const Job = defineMessage({ type: "job", versions: { 1: z.object({ n: z.number() }) } });
    let now = 0;
    const store = new MemoryIdempotencyStore({ now: () => now });
    const bus = createBus(`memory://idempotent-lease-${Math.random()}`);
    const handled: number[] = [];
    const skipped: number[] = [];
    bus.hooks.onSkip = (event) => skipped.push((event.envelope.data as { n: number }).n);
    let letGo!: () => void;
    const hung = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    await bus
      .consume("jobs")
      .on(Job, async (msg) => {
        handled.push(msg.data.n);
        if (msg.data.n === 1) await hung; // as if its process died in the handler
      })
      .start({ concurrency: 2, idempotency: { store, ttlMs: 10_000, leaseMs: 100 } });
    // The same envelope id again stands for the broker's redelivery after the consumer died.
    const send = (n: number) =>
      bus.publishEnvelopes({ kind: "queue", name: "jobs" }, [
        { id: "job-1", type: "job", schemaVersion: 1, data: { n } },
      ]);
    await send(1);
    await expect.poll(() => handled).toEqual([1]);
    now = 101; // the hung handler's lease ran out: the redelivery is handled
    await send(2);
    await expect.poll(() => handled).toEqual([1, 2]);
    now = 5_000; // handled, so the claim lasts the TTL: a later copy is a duplicate
    await send(3);
    await expect.poll(() => skipped).toEqual([3]);
    expect(handled).toEqual([1, 2]);
    letGo();
    await bus.close();
  });
});
