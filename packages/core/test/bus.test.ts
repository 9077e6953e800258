import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createBus, defineMessage, isSwitchyardError, SwitchyardError } from "../src/index.js";
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

  it("reports a transport error the subscription recovered from through onError and the logger", async () => {
    let report: ((error: unknown) => void) | undefined;
    const events: { error: unknown; attempt: number; willRetry: boolean; queue: string }[] = [];
    const warnings: string[] = [];
    const silent = () => {};
    const bus = createBus({
      transport: {
        name: "recovering",
        capabilities: {},
        publish: async () => {},
        subscribe: async (_source, options) => {
          report = options.onError;
          return { close: async () => {} };
        },
        close: async () => {},
      },
      hooks: {
        onError: ({ error, attempt, willRetry, source }) =>
          events.push({ error, attempt, willRetry, queue: source.name }),
      },
      logger: {
        warn: (_fields, message) => warnings.push(message),
        info: silent,
        error: silent,
        debug: silent,
      },
    });
    await bus
      .consume("jobs")
      .on(Job, async () => {})
      .start();
    const error = new SwitchyardError("TRANSPORT_ERROR", "receive failed");
    report?.(error);
    expect(events).toEqual([{ error, attempt: 0, willRetry: true, queue: "jobs" }]);
    expect(warnings).toEqual(["transport error, recovering"]);
    await bus.close();
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

  it("publishes made together go out as one batch, in call order, each resolving to its envelope", async () => {
    const { transport, calls } = await countingTransport();
    const bus = createBus({ transport });
    // connect and provision first (the first publish to a destination waits for its provisioning)
    await Promise.all([bus.send("c", Job, { n: -1 }), bus.send("other", Job, { n: -1 })]);
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
    await bus.send("c", Job, { n: -1 });
    capped.calls.length = 0;
    await Promise.all(Array.from({ length: 7 }, (_, n) => bus.send("c", Job, { n })));
    expect(capped.calls).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    await bus.close();

    const single = await countingTransport();
    const alone = createBus({ transport: single.transport, coalesce: false });
    await alone.send("c", Job, { n: -1 });
    single.calls.length = 0;
    await Promise.all([alone.send("c", Job, { n: 1 }), alone.send("c", Job, { n: 2 })]);
    expect(single.calls).toEqual([[1], [2]]);
    await alone.close();
  });

  it("caps a batch at the transport's publishBatchSize unless coalesce.maxMessages is given", async () => {
    const preferring = await countingTransport();
    Object.assign(preferring.transport, { publishBatchSize: 2 });
    const bus = createBus({ transport: preferring.transport });
    await bus.send("c", Job, { n: -1 });
    preferring.calls.length = 0;
    await Promise.all(Array.from({ length: 5 }, (_, n) => bus.send("c", Job, { n })));
    expect(preferring.calls).toEqual([[0, 1], [2, 3], [4]]);
    await bus.close();

    const overridden = await countingTransport();
    Object.assign(overridden.transport, { publishBatchSize: 2 });
    const chosen = createBus({ transport: overridden.transport, coalesce: { maxMessages: 4 } });
    await chosen.send("c", Job, { n: -1 });
    overridden.calls.length = 0;
    await Promise.all(Array.from({ length: 5 }, (_, n) => chosen.send("c", Job, { n })));
    expect(overridden.calls).toEqual([[0, 1, 2, 3], [4]]);
    await chosen.close();
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

  it("a batch refused for one message's content is sent again per publish: only that publish fails", async () => {
    const { transport, calls } = await countingTransport();
    const publish = transport.publish.bind(transport);
    const refused: number[] = [];
    transport.publish = async (destination, messages) => {
      if (messages.some((m) => m.headers.bad !== undefined)) {
        refused.push(messages.length);
        throw new SwitchyardError("INVALID_HEADER", "the broker cannot hold header bad");
      }
      return publish(destination, messages);
    };
    const bus = createBus({ transport });
    await bus.send("c", Job, { n: -1 });
    calls.length = 0;
    const results = await Promise.allSettled([
      bus.send("c", Job, { n: 1 }),
      bus.sendBatch("c", Job, [{ data: { n: 2 } }, { data: { n: 3 }, options: { headers: { bad: "x" } } }]),
      bus.send("c", Job, { n: 4 }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(isSwitchyardError((results[1] as PromiseRejectedResult).reason, "INVALID_HEADER")).toBe(true);
    // The whole batch was refused once, then each publish went alone, in call order; 2 and 3 never.
    expect(refused).toEqual([4, 2]);
    expect(calls).toEqual([[1], [4]]);
    await bus.close();
  });

  it("lingers up to lingerMs to gather publishes from later turns; close() sends what is gathering", async () => {
    const { transport, calls } = await countingTransport();
    const bus = createBus({ transport, coalesce: { lingerMs: 50 } });
    await bus.send("c", Job, { n: -1 });
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

describe("batch handlers", () => {
  const fast = { retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 5 } };

  it("hands the messages of a turn over together, up to maxMessages, and acks the batch", async () => {
    const handled: number[] = [];
    const bus = createBus({
      url: url(),
      hooks: { onHandled: (e) => handled.push((e.message.data as { n: number }).n) },
    });
    const batches: number[][] = [];
    await bus
      .consume("b")
      .onBatch(Job, { maxMessages: 4 }, async (messages, ctx) => {
        batches.push(messages.map((m) => m.data.n));
        for (const message of messages) expect(ctx.attempt(message)).toBe(1);
      })
      .start({ concurrency: 16 });
    await bus.sendBatch(
      "b",
      Job,
      Array.from({ length: 10 }, (_, n) => ({ data: { n } })),
    );
    await expect.poll(() => handled.length).toBe(10);
    expect(batches.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Math.max(...batches.map((b) => b.length))).toBe(4);
    expect(batches.length).toBeLessThan(10); // batched, not one call per message
    await bus.close();
  });

  it("retries only the messages reported with ctx.fail, each with its own attempts, then dead-letters them", async () => {
    const dead: Array<{ n: number; reason: string; attempt: number }> = [];
    const bus = createBus({
      url: url(),
      hooks: {
        onDeadLetter: (e) =>
          dead.push({ n: (e.envelope!.data as { n: number }).n, reason: e.reason, attempt: e.attempt }),
      },
    });
    const seen: Array<[number, number]> = [];
    await bus
      .consume("f")
      .onBatch(Job, async function importRows(messages, ctx) {
        for (const message of messages) {
          seen.push([message.data.n, ctx.attempt(message)]);
          if (message.data.n === 2) ctx.fail(message, new Error("row 2 is bad"));
          if (message.data.n === 3) ctx.deadLetter(message, "not ours");
        }
      })
      .start({ concurrency: 8, ...fast });
    await bus.sendBatch(
      "f",
      Job,
      [0, 1, 2, 3].map((n) => ({ data: { n } })),
    );
    await expect.poll(() => dead.length).toBe(2);
    expect(dead.sort((a, b) => a.n - b.n)).toEqual([
      { n: 2, reason: "max-attempts", attempt: 3 },
      { n: 3, reason: "explicit", attempt: 1 },
    ]);
    // 0 and 1 were handled once; 2 three times with attempts 1, 2, 3.
    expect(
      seen
        .filter(([n]) => n !== 2)
        .map(([n]) => n)
        .sort(),
    ).toEqual([0, 1, 3]);
    expect(seen.filter(([n]) => n === 2).map(([, a]) => a)).toEqual([1, 2, 3]);
    const letters = await bus.deadLetters({ queue: "f" }).list({ idleMs: 200 });
    const letter = letters.find((l) => l.reason === "max-attempts");
    expect(letter?.handler).toBe("importRows");
    await bus.close();
  });

  it("a throwing batch handler retries each of its messages; invalid data never reaches it", async () => {
    const dead: string[] = [];
    const bus = createBus({ url: url(), hooks: { onDeadLetter: (e) => dead.push(e.reason) } });
    const attempts: number[] = [];
    let calls = 0;
    await bus
      .consume("t")
      .onBatch(Job, async (messages, ctx) => {
        calls++;
        for (const message of messages) attempts.push(ctx.attempt(message));
        if (calls === 1) throw new Error("database down");
      })
      .start({ concurrency: 8, ...fast });
    await bus.publishRaw(
      { kind: "queue", name: "t" },
      { type: "job", schemaVersion: 1, data: { n: "nope" } },
    );
    await bus.sendBatch("t", Job, [{ data: { n: 1 } }, { data: { n: 2 } }]);
    await expect.poll(() => attempts.length).toBe(4);
    expect(attempts.sort()).toEqual([1, 1, 2, 2]);
    expect(dead).toEqual(["validation"]);
    await bus.close();
  });

  it("refuses bad batch options and a second handler for the type", () => {
    const bus = createBus(url());
    const codeOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return isSwitchyardError(error) ? error.code : "other";
      }
    };
    expect(codeOf(() => bus.consume("x").onBatch(Job, { maxMessages: 0 }, async () => {}))).toBe(
      "CONFIG_INVALID",
    );
    expect(codeOf(() => bus.consume("x").onBatch(Job, { maxWaitMs: -1 }, async () => {}))).toBe(
      "CONFIG_INVALID",
    );
    expect(
      codeOf(() =>
        bus
          .consume("x")
          .on(Job, async () => {})
          .onBatch(Job, async () => {}),
      ),
    ).toBe("CONFIG_INVALID");
  });
});

describe("a validator that throws instead of returning issues", () => {
  /** Throws for n = 13 (a broken validator, or one whose registry is down), else accepts. */
  const flaky = {
    "~standard": {
      version: 1 as const,
      vendor: "test",
      validate: (value: unknown) => {
        if ((value as { n?: unknown }).n === 13) throw new Error("schema registry unreachable");
        return { value };
      },
    },
  };
  const Flaky = defineMessage({ type: "flaky", versions: { 1: flaky } });
  const FlakyAsync = defineMessage({
    type: "flaky-async",
    versions: {
      1: {
        "~standard": {
          ...flaky["~standard"],
          validate: async (value: unknown) => flaky["~standard"].validate(value),
        },
      },
    },
  });

  it("refuses the publish with VALIDATION_FAILED, the cause kept, and sends nothing", async () => {
    const bus = createBus(url());
    for (const type of [Flaky, FlakyAsync]) {
      const error = await bus.send("v", type, { n: 13 }).catch((e: unknown) => e);
      expect(isSwitchyardError(error, "VALIDATION_FAILED"), String(error)).toBe(true);
      expect((error as Error).message).toContain("schema registry unreachable");
      expect(((error as Error).cause as Error).message).toBe("schema registry unreachable");
    }
    // Nothing reached the broker (the queue was not even created).
    expect((await bus.backlog({ queue: "v" })) ?? 0).toBe(0);
    await bus.close();
  });

  it("at consume, retries the message like a handler failure, then dead-letters it; the consumer goes on", async () => {
    for (const type of [Flaky, FlakyAsync]) {
      const dead: Array<{ reason: string; attempt: number; error: string }> = [];
      const bus = createBus({
        url: url(),
        hooks: {
          onDeadLetter: (e) => dead.push({ reason: e.reason, attempt: e.attempt, error: String(e.error) }),
        },
      });
      const handled: number[] = [];
      await bus
        .consume("c")
        .on(type, async (msg) => {
          handled.push((msg.data as { n: number }).n);
        })
        .start({ retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 5 } });
      // A producer that did not validate (publishRaw): the consumer's validator throws on it.
      await bus.publishRaw(
        { kind: "queue", name: "c" },
        { type: type.type, schemaVersion: 1, data: { n: 13 } },
      );
      await bus.send("c", type, { n: 1 });
      await expect.poll(() => dead.length).toBe(1);
      await expect.poll(() => handled).toEqual([1]);
      expect(dead).toEqual([
        { reason: "max-attempts", attempt: 3, error: "Error: schema registry unreachable" },
      ]);
      await bus.close();
    }
  });
});

describe("bus.describe()", () => {
  const Note = defineMessage({
    type: "note",
    versions: { 1: z.object({ n: z.number() }), 2: z.object({ n: z.number(), s: z.string() }) },
    upcast: { 1: (v1) => ({ ...v1, s: "" }) },
  });
  const Ping = defineMessage({ type: "ping", versions: { 1: z.object({}) } });

  it("lists the registered types, the consumers started and where typed messages were published", async () => {
    const bus = createBus({ url: url(), messages: [Job] });
    expect(bus.describe()).toMatchObject({ messages: [Job], consumers: [], published: [] });
    await bus
      .subscribe("notes", "audit")
      .on(Note, { versions: [1, 2] }, function audit() {})
      .onAny(() => {})
      .start();
    await bus
      .consume("pings")
      .on(Ping, () => {})
      .start();
    // A second instance of the audit consumer adds its other type, and nothing twice.
    await bus
      .subscribe("notes", "audit")
      .on(Note, () => {})
      .on(Ping, () => {})
      .start();
    await bus.publish("notes", Note, { n: 1, s: "a" });
    await bus.publish("notes", "job", { n: 2 });
    await bus.publishVersions("notes", Note, { 1: { n: 3 }, 2: { n: 3, s: "" } });
    await bus.sendBatch("pings", Ping, [{ data: {} }]);
    await expect(bus.publish("notes", "nope", {})).rejects.toThrow(/unknown message type/);
    await bus.publishRaw({ kind: "topic", name: "raw" }, { type: "note", data: { n: 4 } });

    const description = bus.describe();
    expect(description.url).toBe(bus.url);
    expect(description.consumers).toEqual([
      {
        source: { kind: "topic", name: "notes", subscription: "audit" },
        handlers: [
          { type: Note, versions: [1, 2], name: "audit" },
          { type: Ping, versions: [1], name: "ping" },
        ],
        any: true,
      },
      {
        source: { kind: "queue", name: "pings", subscription: "pings" },
        handlers: [{ type: Ping, versions: [1], name: "ping" }],
        any: false,
      },
    ]);
    expect(description.published).toEqual([
      { destination: { kind: "topic", name: "notes" }, messages: [Note, Job] },
      { destination: { kind: "queue", name: "pings" }, messages: [Ping] },
    ]);
    // A snapshot: changing it changes nothing in the bus.
    description.consumers[0]!.handlers.pop();
    expect(bus.describe().consumers[0]!.handlers).toHaveLength(2);
    await bus.close();
  });

  it("does not list replies or the reply queue: they belong to each request, not to the app", async () => {
    const bus = createBus(url());
    await bus
      .consume("asks")
      .on(Ping, (_message, ctx) => ctx.reply(Note, { n: 1, s: "pong" }))
      .start();
    const reply = await bus.request("asks", Ping, {}, { replyType: Note, timeoutMs: 5000 });
    expect(reply.data).toEqual({ n: 1, s: "pong" });
    const description = bus.describe();
    expect(description.published).toEqual([
      { destination: { kind: "queue", name: "asks" }, messages: [Ping] },
    ]);
    expect(description.consumers.map((consumer) => consumer.source.name)).toEqual(["asks"]);
    await bus.close();
  });
});
