import { isSwitchyardError } from "@switchyard/core";
import { describe, expect, it } from "vitest";
import { delayBucket, resolveOptions } from "../src/index.js";

describe("rabbitmq URL and options", () => {
  it("reads credentials, host, port and vhost from the URL", () => {
    const o = resolveOptions(new URL("amqp://al%40ice:p%2Fss@broker.local:5673/my%2Fvhost?heartbeat=15"));
    expect(o.connect).toMatchObject({
      protocol: "amqp",
      hostname: "broker.local",
      port: 5673,
      username: "al@ice",
      password: "p/ss",
      vhost: "my/vhost",
      heartbeat: 15,
    });
    expect(o.queueType).toBe("quorum");
    expect(o.singleActiveConsumer).toBe(false);
  });

  it("defaults: guest, port 5672 (5671 for amqps), vhost /", () => {
    expect(resolveOptions(new URL("amqp://h")).connect).toMatchObject({
      username: "guest",
      password: "guest",
      port: 5672,
      vhost: "/",
    });
    expect(resolveOptions(new URL("amqps://h/")).connect).toMatchObject({ protocol: "amqps", port: 5671 });
    expect(resolveOptions(new URL("amqp://h/%2F")).connect.vhost).toBe("/");
  });

  it("options override query parameters", () => {
    const o = resolveOptions(new URL("amqp://h?queueType=classic&singleActiveConsumer=true"), {
      queueType: "quorum",
    });
    expect(o.queueType).toBe("quorum");
    expect(o.singleActiveConsumer).toBe(true);
  });

  it("bad input is CONFIG_INVALID and never shows the password", () => {
    for (const raw of [
      "amqp://u:hunter2@h?queueType=stream",
      "amqp://u:hunter2@h?bogus=1",
      "amqp://u:hunter2@h?publishTimeoutMs=-1",
      "http://u:hunter2@h",
    ]) {
      let error: unknown;
      try {
        resolveOptions(new URL(raw));
      } catch (e) {
        error = e;
      }
      expect(isSwitchyardError(error, "CONFIG_INVALID"), raw).toBe(true);
      expect(String((error as Error).message)).not.toContain("hunter2");
    }
  });

  it("delays round up to two significant digits, never down", () => {
    expect(delayBucket(20)).toBe(20);
    expect(delayBucket(1234)).toBe(1300);
    expect(delayBucket(1500)).toBe(1500);
    expect(delayBucket(99_001)).toBe(100_000);
    for (const d of [1, 57, 101, 999, 12_345, 3_600_001]) expect(delayBucket(d)).toBeGreaterThanOrEqual(d);
  });
});
