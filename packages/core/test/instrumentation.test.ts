import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  createBus,
  defineMessage,
  type Instrumentation,
  type Logger,
  type Settlement,
} from "../src/index.js";

const Job = defineMessage({ type: "job", versions: { 1: z.object({ n: z.number() }) } });
const url = () => `memory://instr-${Math.random()}`;
const fast = { retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 5 } };

describe("instrumentation seam", () => {
  it("wraps publishes (envelope changes reach the wire), processing and settlements", async () => {
    const events: string[] = [];
    const settlements: Array<{ n: number; settlement: Settlement }> = [];
    const instrumentation: Instrumentation = {
      async publish(scope, destination, envelopes, send) {
        events.push(`publish:${scope.system}:${destination.name}:${envelopes.length}`);
        for (const envelope of envelopes) envelope.traceparent = `00-${"a".repeat(32)}-${"b".repeat(16)}-01`;
        await send();
        events.push("published");
      },
      async process(scope, source, delivery, envelope, run) {
        events.push(`process:${scope.system}:${source.name}:${delivery.attempt}:${envelope.traceparent}`);
        await run();
      },
      settled(_scope, _source, delivery, settlement) {
        settlements.push({ n: JSON.parse(Buffer.from(delivery.message.body).toString()).n, settlement });
      },
    };
    const bus = createBus({ url: url(), instrumentation });
    const seen: Array<string | undefined> = [];
    await bus
      .consume("jobs")
      .on(Job, async (message, ctx) => {
        seen.push(message.traceparent);
        if (message.data.n === 1) throw new Error("boom");
        if (message.data.n === 2 && ctx.attempt === 1) return ctx.nack({ delayMs: 7 });
      })
      .start(fast);
    const sent = await bus.send("jobs", Job, { n: 0 });
    expect(sent.traceparent).toMatch(/^00-a{32}-b{16}-01$/);
    await bus.send("jobs", Job, { n: 1 });
    await bus.send("jobs", Job, { n: 2 });
    await expect.poll(() => settlements.length, { timeout: 5000 }).toBe(5);
    expect(events.filter((e) => e.startsWith("publish:"))).toEqual([
      "publish:memory:jobs:1",
      "publish:memory:jobs:1",
      "publish:memory:jobs:1",
    ]);
    expect(events.filter((e) => e.startsWith("process:"))).toContain(
      `process:memory:jobs:1:00-${"a".repeat(32)}-${"b".repeat(16)}-01`,
    );
    expect(seen.every((t) => t?.startsWith("00-aaaa"))).toBe(true);
    const of = (n: number) => settlements.filter((s) => s.n === n).map((s) => s.settlement);
    expect(of(0)).toEqual([{ kind: "ack" }]);
    const failed = of(1);
    expect(failed[0]).toMatchObject({ kind: "nack", delayMs: expect.any(Number) });
    expect((failed[0] as { delayMs: number }).delayMs).toBeLessThanOrEqual(5);
    expect((failed[0] as { error: Error }).error.message).toBe("boom");
    expect(failed[1]).toMatchObject({ kind: "dead-letter", reason: "max-attempts" });
    expect(of(2)).toEqual([{ kind: "nack", delayMs: 7, error: undefined }, { kind: "ack" }]);
    await bus.close();
  });

  it("logs connect, dead letters and close through the logger, with the URL redacted", async () => {
    const lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
    const record =
      (level: string) =>
      (fields: Record<string, unknown>, message: string): void => {
        lines.push({ level, fields, message });
      };
    const logger: Logger = {
      debug: record("debug"),
      info: record("info"),
      warn: record("warn"),
      error: record("error"),
    };
    const bus = createBus({ url: `memory://user:hunter2@log-${Math.random()}`, logger });
    await bus
      .consume("logged")
      .on(Job, (_m, ctx) => ctx.deadLetter("nope"))
      .start();
    await bus.send("logged", Job, { n: 1 });
    await expect.poll(() => lines.some((l) => l.message === "message dead-lettered")).toBe(true);
    await bus.close();
    expect(lines.map((l) => `${l.level} ${l.message}`)).toEqual([
      "info connected",
      "warn message dead-lettered",
      "info closed",
    ]);
    expect(lines[1]!.fields).toMatchObject({ reason: "explicit", attempt: 1 });
    expect(JSON.stringify(lines)).not.toContain("hunter2");
  });
});
