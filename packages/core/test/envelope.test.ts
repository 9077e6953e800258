import { describe, expect, it } from "vitest";
import {
  createEnvelope,
  encodeData,
  fromWire,
  isSwitchyardError,
  packHeaders,
  renamePrefix,
  toWire,
  unpackHeaders,
} from "../src/index.js";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isSwitchyardError(error) ? error.code : `not a SwitchyardError: ${String(error)}`;
  }
  return undefined;
}

describe("envelope", () => {
  it("generates a UUIDv7 id, RFC 3339 time and the JSON content type", () => {
    const envelope = createEnvelope({ type: "t", data: { a: 1 } }, { source: "svc" });
    expect(envelope.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Date(envelope.time).toISOString()).toBe(envelope.time);
    expect(envelope).toMatchObject({
      specversion: "1.0",
      source: "svc",
      dataContentType: "application/json",
    });
  });

  it("maps every attribute to a ce_ header and back", () => {
    const envelope = createEnvelope(
      {
        type: "blog.created",
        schemaVersion: 2,
        subject: "b1",
        key: "k",
        correlationId: "c",
        causationId: "d",
        traceparent: "00-abc-def-01",
        tracestate: "x=y",
        headers: { tenant: "acme", "X-Ünïcode": "✓" },
        data: { title: "Hi" },
      },
      { source: "svc" },
    );
    const wire = toWire(envelope);
    expect(wire.headers).toMatchObject({
      ce_id: envelope.id,
      ce_type: "blog.created",
      ce_schemaversion: "2",
      ce_partitionkey: "k",
      ce_correlationid: "c",
      tenant: "acme",
    });
    expect(wire.key).toBe("k");
    expect(fromWire(wire)).toEqual(envelope);
  });

  it("refuses user headers with the reserved prefix or non-string values", () => {
    const reserved = createEnvelope({ type: "t", data: 1, headers: { ce_type: "x" } }, { source: "s" });
    expect(codeOf(() => toWire(reserved))).toBe("INVALID_HEADER");
    const notString = createEnvelope(
      { type: "t", data: 1, headers: { n: 1 as unknown as string } },
      { source: "s" },
    );
    expect(codeOf(() => toWire(notString))).toBe("INVALID_HEADER");
  });

  it("refuses a message without CloudEvents attributes, or with a body that is not its content type", () => {
    expect(codeOf(() => fromWire({ id: "1", headers: {}, body: new Uint8Array() }))).toBe("DECODE_FAILED");
    const wire = toWire(createEnvelope({ type: "t", data: 1 }, { source: "s" }));
    expect(codeOf(() => fromWire({ ...wire, body: new TextEncoder().encode("{not json") }))).toBe(
      "DECODE_FAILED",
    );
    expect(codeOf(() => fromWire({ ...wire, headers: { ...wire.headers, ce_specversion: "0.3" } }))).toBe(
      "DECODE_FAILED",
    );
  });

  it("encodes JSON, text and bytes by content type and refuses a mismatch", () => {
    expect(new TextDecoder().decode(encodeData({ a: "ü" }, "application/cloudevents+json"))).toBe(
      '{"a":"ü"}',
    );
    // Bytes compared as plain arrays: the body is a Uint8Array (a Buffer view into Node's pool).
    const text = encodeData("hé", "text/plain");
    expect(text).toBeInstanceOf(Uint8Array);
    expect([...text]).toEqual([...new TextEncoder().encode("hé")]);
    const bytes = new Uint8Array([0, 255]);
    expect(encodeData(bytes, "application/octet-stream")).toBe(bytes);
    expect(codeOf(() => encodeData("text", "application/octet-stream"))).toBe("INVALID_PAYLOAD");
    expect(codeOf(() => encodeData(undefined, "application/json"))).toBe("INVALID_PAYLOAD");
  });

  it("offers adapters prefix renaming and header packing", () => {
    expect(renamePrefix({ ce_id: "1", user: "u" }, "ce_", "cloudEvents:")).toEqual({
      "cloudEvents:id": "1",
      user: "u",
    });
    const headers = { ce_id: "1", "x y": "ü\n" };
    expect(unpackHeaders(packHeaders(headers))).toEqual(headers);
    expect(codeOf(() => unpackHeaders("[1]"))).toBe("DECODE_FAILED");
  });
});
