import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createBus, defineMessage } from "../src/index.js";

const Job = defineMessage({ type: "job", versions: { 1: z.object({ n: z.number() }) } });

describe("bus.backlog()", () => {
  it("counts what the memory broker holds unsettled: waiting, in a handler, or waiting for a delayed retry", async () => {
    const bus = createBus(`memory://backlog-${Math.random()}`);
    expect(await bus.backlog("t", "s")).toBeUndefined(); // no such subscription yet
    await bus.ensure([
      { kind: "subscription", topic: "t", name: "s", deadLetterQueue: "t.s.dlq", maxAttempts: 3 },
    ]);
    expect(await bus.backlog("t", "s")).toBe(0);
    for (let n = 0; n < 5; n++) await bus.publish("t", Job, { n });
    expect(await bus.backlog("t", "s")).toBe(5);

    // n=0 is held in its handler, n=1 is nacked with a long delay, the rest are acked.
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handled = new Set<number>();
    const consumer = await bus
      .subscribe("t", "s")
      .on(Job, async (message, ctx) => {
        handled.add(message.data.n);
        if (message.data.n === 0) await held;
        if (message.data.n === 1) await ctx.nack({ delayMs: 60_000 });
      })
      .start({ concurrency: 5 });
    await expect.poll(() => handled.size).toBe(5);
    await expect.poll(() => bus.backlog("t", "s")).toBe(2);
    release();
    await expect.poll(() => bus.backlog("t", "s")).toBe(1); // the delayed retry is still owed
    await consumer.stop();
    await bus.close();
  });

  it("counts a queue's backlog, and is undefined on a transport that does not report one", async () => {
    const bus = createBus(`memory://backlog-${Math.random()}`);
    await bus.send("q", Job, { n: 1 });
    await bus.send("q", Job, { n: 2 });
    expect(await bus.backlog({ queue: "q" })).toBe(2);
    await bus.close();

    const silent = createBus({
      transport: {
        name: "silent",
        capabilities: {},
        publish: async () => {},
        subscribe: async () => ({ close: async () => {} }),
        close: async () => {},
      },
    });
    expect(await silent.backlog({ queue: "q" })).toBeUndefined();
    await silent.close();
  });
});
