import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  createBus,
  type DeadLetterSample,
  defineMessage,
  isSwitchyardError,
  monitorDeadLetters,
} from "../src/index.js";

const Job = defineMessage({ type: "job", versions: { 1: z.object({ n: z.number() }) } });

describe("dead-letter depth and monitor", () => {
  it("depth() counts the letters without removing them; the monitor alerts once at the threshold", async () => {
    const bus = createBus(`memory://dlm-${Math.random()}`);
    await bus
      .consume("work")
      .on(Job, (_m, ctx) => ctx.deadLetter("bad"))
      .start();
    const dlq = bus.deadLetters({ queue: "work" });
    expect(await dlq.depth({ idleMs: 50 })).toBe(0);
    for (let n = 0; n < 3; n++) await bus.send("work", Job, { n });
    await expect.poll(() => dlq.depth({ idleMs: 50 }), { timeout: 5000 }).toBe(3);
    expect(await dlq.depth({ idleMs: 50 })).toBe(3); // browsing kept them
    expect(await dlq.depth({ idleMs: 50, limit: 2 })).toBe(2); // capped: "at least 2"

    const alerts: DeadLetterSample[] = [];
    const samples: DeadLetterSample[] = [];
    const monitor = monitorDeadLetters(bus, {
      sources: [{ queue: "work" }, { topic: "t", subscription: "s" }],
      intervalMs: 60_000,
      threshold: 3,
      onAlert: (s) => alerts.push(s),
      onSample: (s) => samples.push(s),
    });
    await monitor.check();
    await monitor.check();
    expect(alerts).toEqual([{ queue: "work.dlq", depth: 3 }]); // once, not per round
    expect(samples).toContainEqual({ queue: "t.s.dlq", depth: 0 });
    expect(monitor.depths.get("work.dlq")).toBe(3);
    await dlq.purge({ idleMs: 50 });
    await monitor.check();
    expect(monitor.depths.get("work.dlq")).toBe(0);
    await bus.send("work", Job, { n: 9 });
    await bus.send("work", Job, { n: 10 });
    await bus.send("work", Job, { n: 11 });
    await expect.poll(() => dlq.depth({ idleMs: 50 }), { timeout: 5000 }).toBe(3);
    await monitor.check();
    expect(alerts).toHaveLength(2); // fell below, then reached it again
    monitor.stop();
    await bus.close();
  });

  it("rejects a bad interval or threshold", () => {
    const bus = createBus(`memory://dlm-${Math.random()}`);
    let error: unknown;
    try {
      monitorDeadLetters(bus, { sources: [{ queue: "q" }], intervalMs: 0 });
    } catch (e) {
      error = e;
    }
    expect(isSwitchyardError(error, "CONFIG_INVALID")).toBe(true);
  });
});
