import { createBus, defineMessage, PermanentError } from "@switchyard/core";
import { expect, it } from "vitest";
import { z } from "zod";
import { runCli } from "../src/cli.js";

const Task = defineMessage({ type: "task", versions: { 1: z.object({ n: z.number() }) } });

it("lists, shows, redrives and purges dead letters", async () => {
  const bus = createBus(`memory://cli-${Math.random()}`);
  let healthy = false;
  const handled: number[] = [];
  await bus
    .subscribe("tasks", "worker")
    .on(Task, async function work(msg) {
      if (!healthy || msg.data.n === 3) throw new PermanentError(`cannot do ${msg.data.n}`);
      handled.push(msg.data.n);
    })
    .start();
  const sent = await Promise.all([1, 2, 3].map((n) => bus.publish("tasks", Task, { n })));
  await expect
    .poll(async () => (await bus.deadLetters("tasks", "worker").list({ idleMs: 20 })).length)
    .toBe(3);

  const out: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(`ERR ${l}`), bus };
  const args = ["tasks", "worker", "--idle-ms", "20"];
  expect(await runCli(["dlq", "list", ...args], io)).toBe(0);
  expect(out.at(-1)).toBe("3 dead letter(s) in tasks.worker.dlq");
  expect(out[0]).toMatch(/handler-error\s+attempts=1\s+task PermanentError: cannot do/);

  out.length = 0;
  expect(await runCli(["dlq", "show", ...args, sent[0]!.id], io)).toBe(0);
  expect(JSON.parse(out.join("\n"))).toMatchObject({ id: sent[0]!.id, handler: "work", data: { n: 1 } });

  healthy = true;
  out.length = 0;
  expect(await runCli(["dlq", "redrive", ...args, "--id", sent[0]!.id, "--id", sent[1]!.id], io)).toBe(0);
  expect(out).toHaveLength(1);
  expect(out[0]).toMatch(
    /^redrove 2 dead letter\(s\) from tasks\.worker\.dlq in [\d.]+ s \([\d.]+ msg\/s\)$/,
  );
  await expect.poll(() => handled.sort()).toEqual([1, 2]);

  out.length = 0;
  expect(await runCli(["dlq", "purge", ...args, "--id", "no-such-letter", "--json"], io)).toBe(0);
  const nothing = JSON.parse(out[0]!);
  expect(Object.keys(nothing)).toEqual([
    "action",
    "location",
    "count",
    "durationMs",
    "ratePerSecond",
    "limitReached",
  ]);
  expect(nothing).toMatchObject({
    action: "purge",
    location: "tasks.worker.dlq",
    count: 0,
    limitReached: false,
  });
  expect(nothing.durationMs).toBeGreaterThanOrEqual(0);

  out.length = 0;
  expect(await runCli(["dlq", "purge", ...args], io)).toBe(0);
  expect(out[0]).toMatch(/^purged 1 dead letter\(s\) from tasks\.worker\.dlq in /);
  await bus.close();
});

it("explains bad usage and bad URLs without leaking credentials", async () => {
  const out: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
  expect(await runCli(["dlq", "list"], io)).toBe(2);
  expect(out.join("\n")).toContain("name a topic and a subscription");
  out.length = 0;
  expect(await runCli(["dlq", "list", "t", "s", "--url", "nats://u:secret@h"], io)).toBe(2);
  expect(out.join("\n")).toContain("UNKNOWN_SCHEME");
  expect(out.join("\n")).not.toContain("secret");
});
