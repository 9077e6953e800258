import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createBus, defineMessage, isSwitchyardError } from "../src/index.js";
import { createTestBus } from "../src/testing.js";

const Job = defineMessage({ type: "job", versions: { 1: z.object({ n: z.number() }) } });
const url = () => `memory://bus-${Math.random()}`;

describe("bus", () => {
  it("never runs more handlers at once than the concurrency", async () => {
    const bus = createBus(url());
    let running = 0;
    let peak = 0;
    let done = 0;
    await bus
      .consume("jobs")
      .on(Job, async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        done++;
      })
      .start({ concurrency: 3, prefetch: 10 });
    await Promise.all(Array.from({ length: 30 }, (_, n) => bus.send("jobs", Job, { n })));
    await expect.poll(() => done, { timeout: 5000 }).toBe(30);
    expect(peak).toBe(3);
    await bus.close();
  });

  it("close() waits for in-flight handlers, then refuses new work", async () => {
    const bus = createBus(url());
    let finished = false;
    let started!: () => void;
    const handlerStarted = new Promise<void>((r) => {
      started = r;
    });
    await bus
      .consume("slow")
      .on(Job, async () => {
        started();
        await new Promise((r) => setTimeout(r, 50));
        finished = true;
      })
      .start();
    await bus.send("slow", Job, { n: 1 });
    await handlerStarted;
    await bus.close();
    expect(finished).toBe(true);
    const error = await bus.send("slow", Job, { n: 2 }).catch((e: unknown) => e);
    expect(isSwitchyardError(error, "CLOSED")).toBe(true);
  });

  it("refuses more headers than the adapter allows, sending nothing", async () => {
    const bus = createBus(url());
    const headers = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`h${i}`, "v"]));
    const error = await bus.send("q", Job, { n: 1 }, { headers }).catch((e: unknown) => e);
    expect(isSwitchyardError(error, "TOO_MANY_HEADERS")).toBe(true);
    await bus.close();
  });

  it("refuses a consumer without handlers and a bad concurrency", async () => {
    const bus = createBus(url());
    await expect(bus.consume("q").start()).rejects.toMatchObject({ code: "CONFIG_INVALID" });
    await expect(
      bus
        .consume("q")
        .on(Job, () => {})
        .start({ concurrency: 0 }),
    ).rejects.toMatchObject({ code: "CONFIG_INVALID" });
    await bus.close();
  });
});

describe("test harness", () => {
  it("waits for a handled message and records what was published and dead-lettered", async () => {
    const harness = createTestBus();
    await harness.bus
      .consume("jobs")
      .on(Job, async (msg, ctx) => {
        if (msg.data.n < 0) await ctx.deadLetter("negative");
      })
      .start();
    await harness.bus.send("jobs", Job, { n: 1 });
    await harness.bus.send("jobs", Job, { n: -1 });
    const [handled] = await harness.handled(Job);
    expect(handled!.data).toEqual({ n: 1 });
    const [dead] = await harness.deadLetteredOf(Job);
    expect(dead!.reason).toBe("explicit");
    expect(harness.publishedOf(Job)).toHaveLength(2);
    await harness.close();
  });

  it("fails clearly when the awaited message never comes", async () => {
    const harness = createTestBus();
    const error = await harness.handled("never.sent", { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(isSwitchyardError(error, "TIMEOUT")).toBe(true);
    expect((error as Error).message).toContain('"never.sent" to be handled');
    await harness.close();
  });
});

describe("batch publish", () => {
  it("sends a validated batch in one transport call, or nothing when one item is invalid", async () => {
    const { MemoryTransport, MemoryBroker } = await import("../src/memory/index.js");
    const transport = new MemoryTransport({ broker: new MemoryBroker() });
    const calls: number[] = [];
    const publish = transport.publish.bind(transport);
    transport.publish = async (destination, messages) => {
      calls.push(messages.length);
      return publish(destination, messages);
    };
    const bus = createBus({ transport });
    const seen: number[] = [];
    await bus
      .consume("batch")
      .on(Job, async (msg) => {
        seen.push(msg.data.n);
      })
      .start();
    const envelopes = await bus.sendBatch("batch", Job, [
      { data: { n: 1 }, options: { key: "a" } },
      { data: { n: 2 } },
    ]);
    expect(envelopes.map((e) => e.key)).toEqual(["a", undefined]);
    const error = await bus
      .sendBatch("batch", Job, [{ data: { n: 3 } }, { data: { n: "x" } as never }])
      .catch((e) => e);
    expect(isSwitchyardError(error, "VALIDATION_FAILED")).toBe(true);
    await expect.poll(() => seen.sort()).toEqual([1, 2]);
    expect(calls).toEqual([2]);
    await bus.close();
  });
});

describe("foreign producers", () => {
  it("dead-letters non-CloudEvents by default, and hands them to onAny({ foreign: true }) as bytes", async () => {
    const { FOREIGN_TYPE } = await import("../src/index.js");
    const bus = createBus(url());
    const transport = await bus.transport();
    const seen: Array<[string, string, string | undefined]> = [];
    await bus
      .consume("legacy")
      .onAny(
        async (msg) => {
          seen.push([msg.type, new TextDecoder().decode(msg.data as Uint8Array), msg.headers.origin]);
        },
        { foreign: true },
      )
      .start();
    await transport.publish({ kind: "queue", name: "legacy" }, [
      { id: "raw-1", headers: { origin: "cobol" }, body: new TextEncoder().encode("PAYROLL 42") },
    ]);
    await expect.poll(() => seen).toEqual([[FOREIGN_TYPE, "PAYROLL 42", "cobol"]]);
    expect(await bus.deadLetters({ queue: "legacy" }).list({ idleMs: 20 })).toEqual([]);
    await bus.close();
  });
});

describe("publish coalescing", () => {
  async function countingTransport(fail?: () => Error | undefined) {
    const { MemoryTransport, MemoryBroker } = await import("../src/memory/index.js");
    const transport = new MemoryTransport({ broker: new MemoryBroker() });
    const calls: number[][] = [];
    const publish = transport.publish.bind(transport);
    transport.publish = async (destination, messages) => {
      calls.push(messages.map((m) => JSON.parse(Buffer.from(m.body).toString()).n));
      const error = fail?.();
      if (error) throw error;
      return publish(destination, messages);
    };
    return { transport, calls };
  }

  it("publishes made in one turn go out as one batch, in call order, each resolving to its envelope", async () => {
    const { transport, calls } = await countingTransport();
    const bus = createBus({ transport });
    await bus.send("warm", Job, { n: -1 }); // connect and provision first
    calls.length = 0;
    const sent = await Promise.all([
      bus.send("c", Job, { n: 1 }, { key: "k" }),
      bus.sendBatch("c", Job, [{ data: { n: 2 } }, { data: { n: 3 } }]),
      bus.send("c", Job, { n: 4 }, { key: "k" }),
      bus.send("other", Job, { n: 5 }),
    ]);
    expect(calls).toEqual([[1, 2, 3, 4], [5]]);
    expect((sent[0] as { key?: string }).key).toBe("k");
    expect((sent[1] as unknown[]).length).toBe(2);
    await bus.close();
  });

  it("caps a batch at maxMessages, and coalesce: false sends each publish alone", async () => {
    const capped = await countingTransport();
    const bus = createBus({ transport: capped.transport, coalesce: { maxMessages: 3 } });
    await bus.send("warm", Job, { n: -1 });
    capped.calls.length = 0;
    await Promise.all(Array.from({ length: 7 }, (_, n) => bus.send("c", Job, { n })));
    expect(capped.calls).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    await bus.close();

    const single = await countingTransport();
    const alone = createBus({ transport: single.transport, coalesce: false });
    await alone.send("warm", Job, { n: -1 });
    single.calls.length = 0;
    await Promise.all([alone.send("c", Job, { n: 1 }), alone.send("c", Job, { n: 2 })]);
    expect(single.calls).toEqual([[1], [2]]);
    await alone.close();
  });

  it("a refused batch rejects every publish in it; the next batch goes out", async () => {
    let refuse = true;
    const { transport, calls } = await countingTransport(() =>
      refuse ? new Error("broker said no") : undefined,
    );
    const bus = createBus({ transport });
    const results = await Promise.allSettled([bus.send("c", Job, { n: 1 }), bus.send("c", Job, { n: 2 })]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect((results[0] as PromiseRejectedResult).reason.message).toBe("broker said no");
    refuse = false;
    await bus.send("c", Job, { n: 3 });
    expect(calls).toEqual([[1, 2], [3]]);
    await bus.close();
  });

  it("lingers up to lingerMs to gather publishes from later turns; close() sends what is gathering", async () => {
    const { transport, calls } = await countingTransport();
    const bus = createBus({ transport, coalesce: { lingerMs: 50 } });
    await bus.send("warm", Job, { n: -1 });
    calls.length = 0;
    const first = bus.send("c", Job, { n: 1 });
    await new Promise((r) => setImmediate(r));
    const second = bus.send("c", Job, { n: 2 });
    const third = bus.send("c", Job, { n: 3 });
    await bus.close(); // well before the 50 ms are up
    await Promise.all([first, second, third]);
    expect(calls).toEqual([[1, 2, 3]]);
  });

  it("refuses bad coalescing options", () => {
    for (const coalesce of [
      { lingerMs: -1 },
      { maxMessages: 0 },
      { lingerMs: Number.NaN },
      { maxMessages: 1.5 },
    ]) {
      let error: unknown;
      try {
        createBus({ url: url(), coalesce });
      } catch (e) {
        error = e;
      }
      expect(isSwitchyardError(error, "CONFIG_INVALID"), JSON.stringify(coalesce)).toBe(true);
    }
  });
});
