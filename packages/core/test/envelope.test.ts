import { describe, expect, it } from "vitest";
import { plainEnvelope } from "../src/envelope.js";
import {
  createEnvelope,
  encodeData,
  fromWire,
  isSwitchyardError,
  newId,
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

  it("refuses attributes that are not non-empty strings, a time that is no timestamp, headers that are no object", () => {
    const make = (input: Record<string, unknown>) => () =>
      createEnvelope({ type: "t", data: 1, ...input } as never, { source: "s" });
    for (const bad of [
      { key: 42 },
      { id: "" },
      { subject: {} },
      { causationId: null },
      { time: "yesterday" },
      // Date.parse takes these; RFC 3339 (CloudEvents' time) does not.
      { time: "Dec 25 2020" },
      { time: "2020-12-25" },
      { time: "2020-12-25T10:00:00" },
      { time: "2020-12-25 10:00:00Z" },
      { time: "2020-13-45T10:00:00Z" },
    ]) {
      expect(codeOf(make(bad)), JSON.stringify(bad)).toBe("CONFIG_INVALID");
    }
    expect(codeOf(make({ headers: "abc" }))).toBe("INVALID_HEADER");
    expect(codeOf(make({ headers: ["a"] }))).toBe("INVALID_HEADER");
    expect(
      createEnvelope({ type: "t", data: 1, key: "k", time: "2026-01-02T03:04:05Z" }, { source: "s" }).key,
    ).toBe("k");
    for (const time of [
      "2026-01-02T03:04:05.678901+02:00",
      "2026-01-02t03:04:05z",
      "2026-01-02T03:04:05-11:30",
    ]) {
      expect(createEnvelope({ type: "t", data: 1, time }, { source: "s" }).time).toBe(time);
    }
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
    for (const attribute of ["id", "type", "source", "specversion"]) {
      for (const value of [undefined, ""]) {
        const headers: Record<string, string> = { ...wire.headers };
        if (value === undefined) delete headers[`ce_${attribute}`];
        else headers[`ce_${attribute}`] = value;
        expect(() => fromWire({ ...wire, headers })).toThrow(`attribute "${attribute}"`);
      }
    }
    // Our other `ce_` headers are neither attributes nor user headers.
    const read = fromWire({ ...wire, headers: { ...wire.headers, ce_xattempt: "3", tenant: "a" } });
    expect(read.headers).toEqual({ tenant: "a" });
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

  it("a publish without options gets the envelope createEnvelope would make, in the same shape", () => {
    const plain = plainEnvelope("t.made", 2, "application/json", { n: 1 }, "svc");
    const made = createEnvelope(
      { type: "t.made", schemaVersion: 2, dataContentType: "application/json", data: { n: 1 } },
      { source: "svc" },
    );
    expect(Object.keys(plain)).toEqual(Object.keys(made)); // one object shape for every envelope
    expect({ ...plain, id: made.id, time: made.time }).toEqual(made);
    expect(plain.id).not.toBe(made.id);
    expect(Date.parse(plain.time)).toBeGreaterThan(0);
  });

  it("offers adapters prefix renaming and header packing", () => {
    expect(renamePrefix({ ce_id: "1", user: "u" }, "ce_", "cloudEvents:")).toEqual({
      "cloudEvents:id": "1",
      user: "u",
    });
    // Renamed names are cached per prefix pair: both directions, and past the cache's bound, stay right.
    expect(renamePrefix({ "cloudEvents:id": "1", ce_id: "x" }, "cloudEvents:", "ce_")).toEqual({
      ce_id: "x",
    });
    for (let i = 0; i < 1100; i++) {
      expect(renamePrefix({ [`ce_ext${i}`]: "v" }, "ce_", "cloudEvents:")).toEqual({
        [`cloudEvents:ext${i}`]: "v",
      });
    }
    expect(renamePrefix({ ce_ext5: "a", ce_ext1099: "b" }, "ce_", "amqp:")).toEqual({
      "amqp:ext5": "a",
      "amqp:ext1099": "b",
    });
    const headers = { ce_id: "1", "x y": "ü\n" };
    expect(unpackHeaders(packHeaders(headers))).toEqual(headers);
    expect(codeOf(() => unpackHeaders("[1]"))).toBe("DECODE_FAILED");
  });
});

describe("structured content mode", () => {
  const full = createEnvelope(
    {
      type: "blog.created",
      schemaVersion: 2,
      key: "blog-ü",
      subject: "blogs/1",
      correlationId: "c1",
      causationId: "c0",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "congo=t61rcWkgMzE",
      headers: { "x-tenant": "acme ü", "x-empty": "" },
      data: { title: "Grüße 🚀", n: 1 },
    },
    { source: "blog-service" },
  );

  it("writes one content-type header and the CloudEvents JSON event format in the body", () => {
    const wire = toWire(full, {}, "structured");
    expect(wire.headers).toEqual({
      "content-type": "application/cloudevents+json",
      "x-tenant": "acme ü",
      "x-empty": "",
    });
    expect(wire.key).toBe("blog-ü");
    expect(JSON.parse(Buffer.from(wire.body).toString("utf8"))).toEqual({
      specversion: "1.0",
      id: full.id,
      type: "blog.created",
      source: "blog-service",
      time: full.time,
      datacontenttype: "application/json",
      schemaversion: 2,
      subject: "blogs/1",
      partitionkey: "blog-ü",
      correlationid: "c1",
      causationid: "c0",
      traceparent: full.traceparent,
      tracestate: full.tracestate,
      data: { title: "Grüße 🚀", n: 1 },
    });
  });

  it("round-trips every field, with the data decoded in one pass", () => {
    const wire = toWire(full, { ce_xdual: "1,2" }, "structured");
    expect(fromWire(wire, { decodeBody: false })).toEqual(full);
  });

  it("keeps raw bytes in binary mode (no base64), so both modes travel on one transport", () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const envelope = createEnvelope(
      { type: "file", dataContentType: "application/octet-stream", data: bytes },
      { source: "s" },
    );
    const wire = toWire(envelope, {}, "structured");
    expect(wire.headers["content-type"]).toBeUndefined();
    expect(wire.headers.ce_type).toBe("file");
    expect(Buffer.from(wire.body).equals(Buffer.from(bytes))).toBe(true);
  });

  it("reads a foreign structured event with data_base64", () => {
    const body = Buffer.from(
      JSON.stringify({
        specversion: "1.0",
        id: "e1",
        type: "other.thing",
        source: "/elsewhere",
        datacontenttype: "application/octet-stream",
        data_base64: Buffer.from([0, 1, 255]).toString("base64"),
      }),
    );
    const envelope = fromWire({
      id: "x",
      headers: { "content-type": "application/cloudevents+json; charset=utf-8" },
      body,
    });
    expect(envelope.type).toBe("other.thing");
    expect([...(envelope.data as Uint8Array)]).toEqual([0, 1, 255]);
  });

  it("refuses bad structured bodies and a user header that would hide the mode", () => {
    const headers = { "content-type": "application/cloudevents+json" };
    expect(codeOf(() => fromWire({ id: "x", headers, body: Buffer.from("{not json") }))).toBe(
      "DECODE_FAILED",
    );
    expect(codeOf(() => fromWire({ id: "x", headers, body: Buffer.from("[1]") }))).toBe("DECODE_FAILED");
    expect(
      codeOf(() =>
        fromWire({ id: "x", headers, body: Buffer.from('{"specversion":"1.0","id":"a","type":"t"}') }),
      ),
    ).toBe("DECODE_FAILED");
    const clash = createEnvelope(
      { type: "t", headers: { "content-type": "text/plain" }, data: 1 },
      { source: "s" },
    );
    expect(codeOf(() => toWire(clash, {}, "structured"))).toBe("INVALID_HEADER");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(
      codeOf(() => toWire(createEnvelope({ type: "t", data: cyclic }, { source: "s" }), {}, "structured")),
    ).toBe("INVALID_PAYLOAD");
  });
});

describe("newId", () => {
  const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it("makes RFC 9562 version 7 UUIDs carrying the current millisecond, all distinct", () => {
    const before = Date.now();
    // More than one 4 KiB random pool's worth (409 ids), so refills are crossed.
    const ids = Array.from({ length: 5000 }, () => newId());
    const after = Date.now();
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) {
      expect(id).toMatch(UUID_V7);
      const ms = Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
      expect(ms).toBeGreaterThanOrEqual(before);
      expect(ms).toBeLessThanOrEqual(after);
    }
  });

  it("spreads the random bits: every hex digit and every variant appears", () => {
    const ids = Array.from({ length: 2000 }, () => newId());
    const randomDigits = new Set(
      ids.flatMap((id) => [...(id.slice(15, 18) + id.slice(20, 23) + id.slice(24))]),
    );
    expect(randomDigits.size).toBe(16);
    expect(new Set(ids.map((id) => id[19]))).toEqual(new Set(["8", "9", "a", "b"]));
  });
});
