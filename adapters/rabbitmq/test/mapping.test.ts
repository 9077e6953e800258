import { describe, expect, it } from "vitest";
import { headersFit, toAmqp } from "../src/mapping.js";

describe("AMQP mapping", () => {
  it("headersFit counts bytes exactly near the limit, where the quick bound is not enough", () => {
    // 100 units of a 2-byte character: the quick bound (3 bytes a unit) says 300, the exact count 200.
    const properties = { headers: { note: "é".repeat(100) } };
    const exact = 64 + 6 + "note".length + 200;
    expect(headersFit(properties, exact)).toBe(true);
    expect(headersFit(properties, exact - 1)).toBe(false);
    expect(headersFit({}, 64)).toBe(true);
  });

  it("refuses a user header name over 255 UTF-8 bytes, counted in bytes not characters", () => {
    const wire = (name: string) => ({ id: "m-1", headers: { [name]: "v" }, body: new Uint8Array() });
    expect(() => toAmqp(wire("é".repeat(127)))).not.toThrow(); // 254 bytes
    expect(() => toAmqp(wire("é".repeat(128)))).toThrow(/255-byte limit/); // 256 bytes
    expect(() => toAmqp(wire("x-death"))).toThrow(/reserved/);
  });
});
