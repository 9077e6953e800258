import { isSwitchyardError, type WireMessage } from "@switchyard/core";
import { describe, expect, it } from "vitest";
import { createTransport, decode, encode, encodeName, LIMITS, Names, parseOptions } from "../src/index.js";

const PUBSUB_ID = /^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/;

function roundTrip(message: WireMessage): WireMessage {
  const encoded = encode(message);
  return decode({ id: "pubsub-id", ...encoded });
}

describe("options", () => {
  it("reads the project, emulator and parameters from the URL", () => {
    const o = parseOptions(
      new URL(
        "pubsub://my-project?emulator=127.0.0.1:8085&prefix=app&ackDeadlineSeconds=60&exactlyOnce=true&minBackoff=1&maxBackoff=20&settleTimeoutMs=2500",
      ),
    );
    expect(o).toMatchObject({
      projectId: "my-project",
      emulator: "127.0.0.1:8085",
      prefix: "app",
      ackDeadlineSeconds: 60,
      exactlyOnce: true,
      settleTimeoutMs: 2500,
      retryPolicy: { minimumBackoffSeconds: 1, maximumBackoffSeconds: 20 },
    });
    expect(parseOptions(new URL("pubsub://my-project")).settleTimeoutMs).toBe(15_000);
  });

  it("falls back to PUBSUB_EMULATOR_HOST, and options override the URL", () => {
    const saved = process.env.PUBSUB_EMULATOR_HOST;
    process.env.PUBSUB_EMULATOR_HOST = "localhost:9999";
    try {
      expect(parseOptions(new URL("pubsub://p-1")).emulator).toBe("localhost:9999");
      expect(parseOptions(new URL("pubsub://p-1?prefix=a"), { prefix: "b" }).prefix).toBe("b");
    } finally {
      if (saved === undefined) delete process.env.PUBSUB_EMULATOR_HOST;
      else process.env.PUBSUB_EMULATOR_HOST = saved;
    }
  });

  it("refuses bad input with CONFIG_INVALID and never echoes credentials", () => {
    const bad = [
      "pubsub://p-1?nope=1",
      "pubsub://p-1?prefix=1abc",
      "pubsub://p-1?prefix=google",
      "pubsub://p-1?ackDeadlineSeconds=5",
      "pubsub://p-1?settleTimeoutMs=0",
      "pubsub://p-1?emulator=not-a-host-port",
      "pubsub://user:s3cret@p-1?bogus=1",
    ];
    for (const raw of bad) {
      let error: unknown;
      try {
        parseOptions(new URL(raw));
      } catch (e) {
        error = e;
      }
      expect(isSwitchyardError(error, "CONFIG_INVALID"), raw).toBe(true);
      expect(String((error as Error).message)).not.toContain("s3cret");
    }
  });
});

describe("capabilities", () => {
  it("claim key ordering unless ordering is switched off", async () => {
    const on = createTransport(new URL("pubsub://p-1?emulator=127.0.0.1:1"));
    const off = createTransport(new URL("pubsub://p-1?emulator=127.0.0.1:1&ordering=false"));
    expect(on.capabilities.ordering).toBe("key");
    expect(off.capabilities.ordering).toBe("none");
    expect(on.capabilities.balancedConsumers).toBe(false);
    await Promise.all([on.close(), off.close()]);
  });
});

describe("names", () => {
  const names = new Names("sy");

  it("maps queues, topics and subscriptions to distinct valid Pub/Sub ids", () => {
    const ids = [
      names.queueTopic("orders.created"),
      names.topic("orders.created"),
      names.subscription("orders.created", "billing"),
      names.subscription("orders", "created+billing"),
      names.subscription("a b/ü", "x:y"),
      names.queueTopic("x".repeat(200)),
      names.subscription("é".repeat(200), "é".repeat(200)),
    ];
    for (const id of ids) expect(id).toMatch(PUBSUB_ID);
    expect(new Set(ids).size).toBe(ids.length);
    expect(names.topic("orders.created")).toBe("sy-t+orders.created");
    expect(names.subscription("orders.created", "billing")).toBe("sy-t+orders.created+billing");
    expect(encodeName("a+b c")).toBe("a%2Bb%20c");
  });

  it("keeps over-long ids unique", () => {
    const a = names.subscription("é".repeat(200), `${"é".repeat(199)}a`);
    const b = names.subscription("é".repeat(200), `${"é".repeat(199)}b`);
    expect(a).not.toBe(b);
    expect(a.length).toBeLessThanOrEqual(255);
  });
});

describe("codec", () => {
  it("uses the CloudEvents Pub/Sub binding: ce- attributes, data as the body", () => {
    const encoded = encode({
      id: "1",
      key: "k",
      headers: { ce_id: "1", ce_type: "t", "x-user": "u" },
      body: new Uint8Array([1, 2]),
    });
    expect(encoded.attributes).toEqual({ "ce-id": "1", "ce-type": "t", "x-user": "u" });
    expect(encoded.orderingKey).toBe("k");
    expect([...encoded.data]).toEqual([1, 2]);
  });

  it("packs what breaks the attribute limits and restores it exactly", () => {
    const headers: Record<string, string> = { ce_id: "1", ce_dlerrorstack: "s".repeat(4096) };
    for (let i = 0; i < 150; i++) headers[`h${i}`] = `v${i}`;
    headers["k".repeat(300)] = "long key";
    headers["ce-user"] = "looks like CloudEvents";
    headers.googUser = "reserved by Pub/Sub";
    const message: WireMessage = { id: "1", headers, body: new Uint8Array([9, 8, 7]) };
    const encoded = encode(message);
    expect(Object.keys(encoded.attributes).length).toBeLessThanOrEqual(LIMITS.attributes);
    for (const [k, v] of Object.entries(encoded.attributes)) {
      expect(Buffer.byteLength(k)).toBeLessThanOrEqual(256);
      expect(Buffer.byteLength(v)).toBeLessThanOrEqual(1024);
      expect(k.startsWith("goog")).toBe(false);
    }
    expect(encoded.attributes["ce-id"]).toBe("1");
    const back = roundTrip(message);
    expect(back.headers).toEqual(headers);
    expect([...back.body]).toEqual([9, 8, 7]);
  });

  it("measures attribute limits in UTF-8 bytes, not characters", () => {
    const headers = {
      ascii: "a".repeat(1024), // 1,024 bytes: fits
      accents: "é".repeat(512), // 1,024 bytes: fits
      over: "é".repeat(513), // 1,026 bytes: packed
      ["ké".repeat(85)]: "key of 255 bytes", // fits
      ["é".repeat(129)]: "key of 258 bytes", // packed
    };
    const encoded = encode({ id: "u", headers, body: new Uint8Array(1) });
    expect(Object.keys(encoded.attributes).sort()).toEqual(
      ["ascii", "accents", "ké".repeat(85), "ce-xpacked"].sort(),
    );
    expect(roundTrip({ id: "u", headers, body: new Uint8Array(1) }).headers).toEqual(headers);
  });

  it("counts attributes and the ordering key in the 10 MB limit", () => {
    const headers = { big: "x".repeat(1000) };
    const body = new Uint8Array(LIMITS.messageBytes - 1000 - 3 - 2);
    expect(() => encode({ id: "a", headers, body, key: "kk" })).not.toThrow();
    expect(() => encode({ id: "b", headers, body, key: "kkk" })).toThrow(
      expect.objectContaining({ code: "MESSAGE_TOO_LARGE" }),
    );
  });

  it("marks a message with neither data nor attributes, which Pub/Sub refuses", () => {
    const encoded = encode({ id: "e", headers: {}, body: new Uint8Array(0) });
    expect(Object.keys(encoded.attributes)).toHaveLength(1);
    expect(roundTrip({ id: "e", headers: {}, body: new Uint8Array(0) }).headers).toEqual({});
  });

  it("refuses over-limit messages and keys before sending", () => {
    const big = { id: "b", headers: {}, body: new Uint8Array(LIMITS.messageBytes + 1) };
    expect(() => encode(big)).toThrow(expect.objectContaining({ code: "MESSAGE_TOO_LARGE" }));
    const longKey = { id: "k", key: "k".repeat(1025), headers: {}, body: new Uint8Array(1) };
    expect(() => encode(longKey)).toThrow(expect.objectContaining({ code: "INVALID_HEADER" }));
  });

  it("reads a foreign message as it is, and a broker-forwarded dead letter's delivery count", () => {
    const foreign = decode({ id: "42", data: Buffer.from("hi"), attributes: { a: "b" } });
    expect(foreign).toEqual({ id: "42", headers: { a: "b" }, body: Buffer.from("hi") });
    const bogusPack = decode({ id: "43", data: Buffer.from("x"), attributes: { "ce-xpacked": "99" } });
    expect(bogusPack.headers).toEqual({ ce_xpacked: "99" });
    const forwarded = decode({
      id: "44",
      data: Buffer.from("x"),
      attributes: { "ce-id": "e1", CloudPubSubDeadLetterSourceDeliveryCount: "5" },
    });
    expect(forwarded.id).toBe("e1");
    expect(forwarded.headers.ce_dlattempts).toBe("5");
  });
});
