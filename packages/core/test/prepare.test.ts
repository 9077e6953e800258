import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createBus, defineMessage, isSwitchyardError, prepareEnvelope } from "../src/index.js";

const Job = defineMessage({ type: "job", versions: { 1: z.object({ n: z.number() }) } });
const url = () => `memory://prepare-${Math.random()}`;

describe("prepareEnvelope and publishEnvelopes", () => {
  it("builds the validated envelope a publish would send, and refuses invalid data with VALIDATION_FAILED", () => {
    const envelope = prepareEnvelope(Job, { n: 1 }, { key: "k1", headers: { h: "v" } }, { source: "svc" });
    expect(envelope).toMatchObject({
      type: "job",
      source: "svc",
      schemaVersion: 1,
      key: "k1",
      headers: { h: "v" },
      data: { n: 1 },
    });
    expect(() => prepareEnvelope(Job, { n: "x" }, {}, { source: "svc" })).toThrow(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
    expect(() => prepareEnvelope(Job, { n: 1 }, { version: 9 }, { source: "svc" })).toThrow(
      expect.objectContaining({ code: "UNKNOWN_VERSION" }),
    );
  });

  it("publishEnvelopes sends pre-built envelopes in order with their ids, times and sources", async () => {
    const bus = createBus({ url: url(), source: "relay" });
    const seen: Array<{ id: string; source: string; time: string; n: number }> = [];
    await bus
      .consume("jobs")
      .on(Job, (msg) => {
        seen.push({
          id: msg.id,
          source: msg.source,
          time: msg.time,
          n: msg.data.n,
        });
      })
      .start();
    const built = [1, 2, 3].map(
      (n) => prepareEnvelope(Job, { n }, { time: "2020-01-01T00:00:00.000Z" }, { source: "origin" }) as any,
    );
    const sent = await bus.publishEnvelopes({ kind: "queue", name: "jobs" }, built);
    expect(sent.map((e) => e.id)).toEqual(built.map((e) => e.id));
    await expect.poll(() => seen.length).toBe(3);
    expect(seen).toEqual(
      built.map((e, i) => ({ id: e.id, source: "origin", time: "2020-01-01T00:00:00.000Z", n: i + 1 })),
    );
    await expect(bus.publishEnvelopes({ kind: "queue", name: "" }, built)).rejects.toSatisfy((e) =>
      isSwitchyardError(e, "CONFIG_INVALID"),
    );
    await bus.close();
  });
});
