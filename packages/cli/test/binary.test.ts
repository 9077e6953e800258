// The built binary, driven as a shell script would: exit codes, --json field by field, stdin.
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { BIN, FIXTURES, jsonLines, runBin, unique } from "./helpers.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const SHOP = `${FIXTURES}shop-definitions.mjs`;

describe.concurrent("switchyard binary", () => {
  it("tail ends cleanly on SIGTERM: exit 0, with a count of what it showed", async () => {
    const child = spawn(process.execPath, [BIN, "tail", "t", "--url", `memory://${unique("m")}`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    const listening = new Promise<void>((resolve) =>
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
        if (stderr.includes("Ctrl-C to stop")) resolve();
      }),
    );
    await listening;
    child.kill("SIGTERM");
    const code = await new Promise((resolve) => child.once("close", resolve));
    expect(code).toBe(0);
    expect(stderr).toMatch(/subscription tail-[0-9a-f]{8} lives in this process's in-memory broker/);
    expect(stderr).toContain("0 message(s) shown");
  });

  it("an unreachable broker is exit 1 with TRANSPORT_ERROR, and tail leaves nothing to clean up", async () => {
    const run = await runBin(["tail", "t", "--url", "amqp://guest:hunter2@127.0.0.1:1"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error TRANSPORT_ERROR: cannot connect to RabbitMQ/);
    expect(run.stderr).not.toContain("hunter2");
    expect(run.stderr).not.toContain("subscription");
  });

  it("prints help for the program and each subcommand, exit 0", async () => {
    const version = await runBin(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const top = await runBin(["--help"]);
    expect(top.code).toBe(0);
    for (const command of ["tail", "publish", "dlq", "topology", "asyncapi", "conformance"]) {
      expect(top.stdout).toMatch(new RegExp(`^  ${command}\\b`, "m"));
    }
    const dlq = await runBin(["dlq", "--help"]);
    expect(dlq.code).toBe(0);
    for (const action of ["list", "show", "redrive", "purge"])
      expect(dlq.stdout).toMatch(new RegExp(`^  ${action}\\b`, "m"));
    const tail = await runBin(["tail", "--help"]);
    expect(tail.stdout).toContain("--from-beginning");
    expect(tail.stdout).toContain("Ctrl-C");
  });

  it("refuses bad usage and bad input with exit 2 and a code, never leaking credentials", async () => {
    const unknown = await runBin(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");

    const noType = await runBin(["publish", "t", "--data", "{}"]);
    expect(noType.code).toBe(2);
    expect(noType.stderr).toContain("--type");

    const badJson = await runBin(["publish", "t", "--type", "x", "--data", "{nope", "--json"]);
    expect(badJson.code).toBe(2);
    expect(badJson.stdout).toBe("");
    const error = JSON.parse(badJson.stderr).error;
    expect(error.code).toBe("INVALID_PAYLOAD");
    expect(error.message).toContain("--data is not JSON");

    const badUrl = await runBin(["dlq", "list", "t", "s", "--url", "nats://admin:hunter2@broker:4222"]);
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toContain("UNKNOWN_SCHEME");
    expect(badUrl.stderr).not.toContain("hunter2");

    const badCount = await runBin(["tail", "t", "--count", "0"]);
    expect(badCount.code).toBe(2);
    expect(badCount.stderr).toContain("CONFIG_INVALID");

    const missingModule = await runBin(["asyncapi", "--module", "./no-such-module.js"]);
    expect(missingModule.code).toBe(2);
    expect(missingModule.stderr).toMatch(/CONFIG_INVALID: cannot import/);
  });

  it("publish --json reports each message field by field; stdin gives one message per line", async () => {
    const topic = unique("orders");
    const one = await runBin([
      "publish",
      topic,
      "--type",
      "order.placed",
      "--version",
      "3",
      "--key",
      "o-1",
      "--header",
      "tenant=acme",
      "--data",
      '{"orderId":"o-1"}',
      "--json",
    ]);
    expect(one.code).toBe(0);
    const [record] = jsonLines(one.stdout);
    expect(Object.keys(record!).sort()).toEqual(["destination", "id", "key", "time", "type", "version"]);
    expect(record!.id).toMatch(UUID);
    expect(record!.type).toBe("order.placed");
    expect(record!.version).toBe(3);
    expect(record!.key).toBe("o-1");
    expect(record!.time).toMatch(ISO_TIME);
    expect(record!.destination).toEqual({ kind: "topic", name: topic });

    const many = await runBin(["publish", "--queue", topic, "--type", "n", "--data", "-", "--json"], {
      input: '{"n":1}\n\n{"n":2}\n{"n":3}\n',
    });
    expect(many.code).toBe(0);
    const records = jsonLines(many.stdout);
    expect(records).toHaveLength(3);
    expect(new Set(records.map((r) => r.id)).size).toBe(3);
    for (const r of records) {
      expect(r.destination).toEqual({ kind: "queue", name: topic });
      expect(r.version).toBe(1);
      expect(r.key).toBeNull();
    }

    const badLine = await runBin(["publish", topic, "--type", "n", "--data", "-"], {
      input: '{"n":1}\nnot json\n',
    });
    expect(badLine.code).toBe(2);
    expect(badLine.stdout).toMatch(/^published n v1 /); // the first line went out before the bad one
    expect(badLine.stderr).toContain("stdin line 2 is not JSON");
  });

  it("publish --module validates the data against the declared version", async () => {
    const topic = unique("orders");
    const valid = await runBin([
      "publish",
      topic,
      "--module",
      SHOP,
      "--type",
      "order.placed",
      "--data",
      '{"orderId":"o","total":3,"currency":"EUR"}',
      "--json",
    ]);
    expect(valid.code).toBe(0);
    expect(jsonLines(valid.stdout)[0]!.version).toBe(2); // the latest declared

    const old = await runBin([
      "publish",
      topic,
      "--module",
      SHOP,
      "--type",
      "order.placed",
      "--version",
      "1",
      "--data",
      '{"orderId":"o","total":3}',
    ]);
    expect(old.code).toBe(0);
    expect(old.stdout).toMatch(/^published order\.placed v1 /);

    const invalid = await runBin([
      "publish",
      topic,
      "--module",
      SHOP,
      "--type",
      "order.placed",
      "--data",
      '{"orderId":"o"}',
    ]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/VALIDATION_FAILED: "order.placed" v2 is invalid: total/);

    const unknownType = await runBin([
      "publish",
      topic,
      "--module",
      SHOP,
      "--type",
      "order.lost",
      "--data",
      "{}",
    ]);
    expect(unknownType.code).toBe(2);
    expect(unknownType.stderr).toContain("UNKNOWN_MESSAGE_TYPE");
    expect(unknownType.stderr).toContain("order.placed, order.shipped, email.send");
  });

  it("dlq list --json on an empty dead-letter queue prints nothing and exits 0; show of a missing id exits 1", async () => {
    const list = await runBin(["dlq", "list", unique("t"), "s", "--idle-ms", "50", "--json"]);
    expect(list.code).toBe(0);
    expect(list.stdout).toBe("");
    const show = await runBin(["dlq", "show", "--queue", unique("q"), "nope", "--idle-ms", "50", "--json"]);
    expect(show.code).toBe(1);
    expect(JSON.parse(show.stderr).error.code).toBe("NOT_FOUND");
  });

  it("topology diff on a broker it cannot inspect lists what the app needs as unknown", async () => {
    const prefix = unique("shop");
    const diff = await runBin(["topology", "diff", "--module", SHOP, "--json"], {
      env: { SHOP_PREFIX: prefix },
    });
    expect(diff.code).toBe(0);
    expect(jsonLines(diff.stdout)).toEqual([
      { kind: "topic", name: `${prefix}-orders`, exists: null, action: "unknown" },
      { kind: "subscription", name: "billing", topic: `${prefix}-orders`, exists: null, action: "unknown" },
      { kind: "queue", name: `${prefix}-orders.billing.dlq`, exists: null, action: "unknown" },
      { kind: "subscription", name: "shipping", topic: `${prefix}-orders`, exists: null, action: "unknown" },
      { kind: "queue", name: `${prefix}-orders.shipping.dlq`, exists: null, action: "unknown" },
      { kind: "queue", name: `${prefix}-emails`, exists: null, action: "unknown" },
      { kind: "queue", name: `${prefix}-emails.dlq`, exists: null, action: "unknown" },
    ]);
  });

  it("runs the conformance suite against an adapter module", async () => {
    const run = await runBin([
      "conformance",
      `${FIXTURES}memory-adapter.mjs`,
      "--url",
      "memory://conformance-from-cli",
      "--only",
      "every envelope field and 50 user headers round-trip exactly",
    ]);
    expect(run.stdout + run.stderr).toMatch(/1 passed/);
    expect(run.code).toBe(0);

    const missing = await runBin(["conformance", `${FIXTURES}no-such-adapter.mjs`, "--only", "x", "--json"]);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toEqual({
      adapter: `${FIXTURES}no-such-adapter.mjs`,
      passed: false,
      exitCode: 1,
    });
  }, 60_000);
});
