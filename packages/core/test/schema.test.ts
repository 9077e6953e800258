import { type } from "arktype";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createBus, defineMessage, isSwitchyardError } from "../src/index.js";
import { decideVersion } from "../src/schema.js";

const Person = defineMessage({
  type: "person",
  versions: {
    1: z.object({ name: z.string() }),
    2: z.object({ first: z.string(), last: z.string() }),
    3: z.object({ first: z.string(), last: z.string(), email: z.string() }),
  },
  upcast: {
    1: (p) => ({ first: p.name, last: "" }),
    2: (p) => ({ ...p, email: "" }),
  },
});

describe("schema versions", () => {
  it("refuses definitions without versions or with non-Standard-Schema validators", () => {
    expect(() => defineMessage({ type: "x", versions: {} })).toThrow(/positive integers/);
    expect(() => defineMessage({ type: "x", versions: { 1: { parse() {} } as never } })).toThrow(
      /Standard Schema/,
    );
  });

  it("routes versions: as-is, upcast through a chain, or unknown", () => {
    expect(decideVersion(Person, [3], 3)).toEqual({ action: "handle", version: 3, upcastFrom: [] });
    expect(decideVersion(Person, [3], 1)).toEqual({ action: "handle", version: 3, upcastFrom: [1, 2] });
    expect(decideVersion(Person, [2, 3], 1)).toEqual({ action: "handle", version: 2, upcastFrom: [1] });
    expect(decideVersion(Person, [1], 2)).toEqual({ action: "unknown" });
    expect(decideVersion(Person, [3], 9)).toEqual({ action: "unknown" });
  });

  it("picks exactly one of a dual-published set", () => {
    expect(decideVersion(Person, [1], 1, [1, 2])).toMatchObject({ action: "handle", version: 1 });
    expect(decideVersion(Person, [1], 2, [1, 2])).toEqual({ action: "sibling" });
    expect(decideVersion(Person, [1], 2)).toEqual({ action: "unknown" });
    expect(decideVersion(Person, [3], 1, [1, 2])).toEqual({ action: "sibling" });
    expect(decideVersion(Person, [3], 2, [1, 2])).toMatchObject({
      action: "handle",
      version: 3,
      upcastFrom: [2],
    });
  });

  it.each([
    ["zod", z.object({ n: z.number() })],
    ["valibot", v.object({ n: v.number() })],
    ["arktype", type({ n: "number" })],
  ])("validates with %s at publish and refuses bad data with a readable message", async (_name, schema) => {
    const Num = defineMessage({ type: "num", versions: { 1: schema } });
    const bus = createBus(`memory://schema-${Math.random()}`);
    await expect(bus.send("q", Num, { n: 1 })).resolves.toMatchObject({ type: "num", schemaVersion: 1 });
    const error = await bus.send("q", Num, { n: "one" } as never).catch((e: unknown) => e);
    expect(isSwitchyardError(error, "VALIDATION_FAILED")).toBe(true);
    expect((error as Error).message).toMatch(/"num" v1 is invalid: n/);
    await bus.close();
  });
});
