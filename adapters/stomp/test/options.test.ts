import { isSwitchyardError } from "@switchyard/core";
import { describe, expect, it } from "vitest";
import { createTransport, resolveOptions, schemes } from "../src/index.js";

function error(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("stomp URL and options", () => {
  it("reads the dialect from the scheme, credentials and vhost from the URL", () => {
    const o = resolveOptions(new URL("stomp+rabbitmq://alice:s%3Acret@broker.example:61613/prod"));
    expect(o.dialect.name).toBe("rabbitmq");
    expect([o.host, o.port, o.login, o.passcode, o.vhost, o.ssl]).toEqual([
      "broker.example",
      61613,
      "alice",
      "s:cret",
      "prod",
      false,
    ]);
    expect(o.display).not.toContain("s%3Acret");
    const a = resolveOptions(new URL("stomp+activemq://127.0.0.1:61614"));
    expect([a.dialect.name, a.port, a.vhost, a.login]).toEqual(["activemq", 61614, "/", undefined]);
  });

  it("takes the dialect from the option or ?dialect= on stomp:// and stomp+ssl://", () => {
    expect(resolveOptions(new URL("stomp://h:1"), { dialect: "activemq" }).dialect.name).toBe("activemq");
    const tls = resolveOptions(new URL("stomp+ssl://h:1?dialect=rabbitmq&heartbeatMs=0"));
    expect([tls.dialect.name, tls.ssl, tls.heartbeatMs]).toEqual(["rabbitmq", true, 0]);
    expect(schemes).toContain("stomp+activemq");
  });

  it("refuses a missing or unknown dialect with CONFIG_INVALID and no credentials in the text", () => {
    const missing = error(() => resolveOptions(new URL("stomp://bob:hunter2@h:1")));
    expect(isSwitchyardError(missing, "CONFIG_INVALID")).toBe(true);
    expect(String(missing)).not.toContain("hunter2");
    const unknown = error(() => resolveOptions(new URL("stomp+artemis://h:1")));
    expect(isSwitchyardError(unknown, "CONFIG_INVALID")).toBe(true);
    const bad = error(() => resolveOptions(new URL("stomp+activemq://h:1?publishTimeoutMs=soon")));
    expect(isSwitchyardError(bad, "CONFIG_INVALID")).toBe(true);
  });

  it("declares capabilities per dialect", () => {
    const amq = createTransport(new URL("stomp+activemq://127.0.0.1:61614"));
    const rmq = createTransport(new URL("stomp+rabbitmq://127.0.0.1:61613"));
    expect(amq.capabilities).toMatchObject({ ordering: "group", nativeDelay: true, nativeDeadLetter: false });
    expect(rmq.capabilities).toMatchObject({ ordering: "none", nativeDelay: true, nativeDeadLetter: false });
  });

  it("refuses headers STOMP cannot carry and names a broker reads specially, before sending", async () => {
    const t = createTransport(new URL("stomp+activemq://127.0.0.1:1"));
    const send = (headers: Record<string, string>, name = "q") =>
      t.publish({ kind: "queue", name }, [{ id: "1", headers, body: new Uint8Array() }]).then(
        () => undefined,
        (e: unknown) => e,
      );
    // Port 1 is closed: each of these must fail on validation, never on the connection.
    expect(isSwitchyardError(await send({ destination: "/queue/other" }), "INVALID_HEADER")).toBe(true);
    expect(isSwitchyardError(await send({ JMSXGroupID: "g" }), "INVALID_HEADER")).toBe(true);
    expect(isSwitchyardError(await send({ note: "a\0b" }), "INVALID_HEADER")).toBe(true);
    expect(isSwitchyardError(await send({ big: "x".repeat(20_000) }), "INVALID_HEADER")).toBe(true);
    expect(isSwitchyardError(await send({}, "a/b"), "CONFIG_INVALID")).toBe(true);
    expect(isSwitchyardError(await send({}, "VirtualTopic.>"), "CONFIG_INVALID")).toBe(true);
    const sub = await t
      .subscribe({ kind: "topic", name: "t", subscription: "a.b" }, { prefetch: 1 }, () => {})
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isSwitchyardError(sub, "CONFIG_INVALID")).toBe(true);
    await t.close();
  });
});
