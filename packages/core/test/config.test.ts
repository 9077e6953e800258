import { afterEach, describe, expect, it } from "vitest";
import {
  createBus,
  isSwitchyardError,
  parseBusUrl,
  redactText,
  redactUrl,
  registerAdapter,
} from "../src/index.js";

async function errorOf(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error");
}

describe("configuration", () => {
  afterEach(() => {
    delete process.env.SWITCHYARD_URL;
  });

  it("names the accepted schemes for an unknown one, without credentials", async () => {
    const error = await errorOf(() => createBus("nats://alice:s3cret@host:4222"));
    expect(isSwitchyardError(error, "UNKNOWN_SCHEME")).toBe(true);
    const message = (error as Error).message;
    expect(message).toContain("kafka");
    expect(message).toContain("amqp");
    expect(message).not.toContain("s3cret");
    expect(message).not.toContain("alice");
  });

  it("refuses a malformed URL without echoing credentials", async () => {
    const error = await errorOf(() => createBus("kafka//bob:hunter2@"));
    expect(isSwitchyardError(error, "CONFIG_INVALID")).toBe(true);
    expect((error as Error).message).not.toContain("hunter2");
  });

  it("says which package to install for a scheme whose adapter is missing", async () => {
    registerAdapter("acme", "@acme/switchyard-not-installed");
    const bus = createBus("acme://127.0.0.1:1234");
    const error = await errorOf(() => bus.transport());
    expect(isSwitchyardError(error, "ADAPTER_NOT_INSTALLED")).toBe(true);
    expect((error as Error).message).toContain("npm install @acme/switchyard-not-installed");
  });

  it("defaults to SWITCHYARD_URL, then memory://", async () => {
    expect(createBus().url).toBe("memory://");
    process.env.SWITCHYARD_URL = "memory://from-env";
    const bus = createBus();
    expect(bus.url).toBe("memory://from-env");
    expect((await bus.transport()).name).toBe("memory");
    await bus.close();
  });

  it("reads several hosts (kafka://h1:9092,h2:9092) as the first host plus a hosts parameter", () => {
    const url = parseBusUrl("kafka://u:p@h1:9092,h2:9093,[::1]:9094/?driver=kafkajs");
    expect(url.host).toBe("h1:9092");
    expect(url.username).toBe("u");
    expect(url.searchParams.get("driver")).toBe("kafkajs");
    expect(url.searchParams.get("hosts")).toBe("h1:9092,h2:9093,[::1]:9094");
    expect(parseBusUrl("kafka://h1:9092,h2:9092").searchParams.get("hosts")).toBe("h1:9092,h2:9092");
    expect(parseBusUrl("kafka://h1:9092").searchParams.has("hosts")).toBe(false);
    expect(parseBusUrl("kafka://h1,h2:9092").searchParams.get("hosts")).toBe("h1,h2:9092");
    for (const bad of ["kafka://h1:9092,", "kafka://h1:9092,h2:99999"]) {
      expect(() => parseBusUrl(bad), bad).toThrow(/not a valid URL/);
    }
  });

  it("redacts user info and secret query parameters", () => {
    expect(redactUrl("amqp://u:p@h:5672/v?heartbeat=5&password=x")).toBe(
      "amqp://***:***@h:5672/v?heartbeat=5&password=***",
    );
    expect(redactUrl("not a url user:pw@host")).not.toContain("pw");
  });

  it("redacts credentials inside free text: URL passwords (with an @ too), secret query and connection-string values", () => {
    const text = [
      "connect amqp://alice:p@ss@broker:5672/vhost failed",
      "GET https://api.example/v1?region=eu&token=t0k3n&x=1",
      "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=c2VjcmV0=",
      "password=hunter2 next",
    ].join("\n");
    const redacted = redactText(text);
    for (const secret of ["p@ss", "ss@broker", "t0k3n", "c2VjcmV0", "hunter2"]) {
      expect(redacted, secret).not.toContain(secret);
    }
    // What is not a secret stays readable.
    expect(redacted).toContain("amqp://alice:***@broker:5672/vhost");
    expect(redacted).toContain("region=eu");
    expect(redacted).toContain("&x=1");
    expect(redacted).toContain(" next");
  });
});
