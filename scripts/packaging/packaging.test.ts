// The published shape works outside the workspace: `pnpm pack` turns the packages into tarballs
// (workspace: ranges become versions), plain npm installs them into a scratch app, and a publish
// and a consume work there through the default in-memory broker.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const scratch = mkdtempSync(join(tmpdir(), "switchyard-packaging-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

it("packs, installs with plain npm and runs a publish and a consume", { timeout: 180_000 }, () => {
  const tarballs = join(scratch, "tarballs");
  for (const pkg of ["packages/core", "adapters/memory", "conformance-tests"]) {
    execFileSync("pnpm", ["pack", "--pack-destination", tarballs], { cwd: join(root, pkg), stdio: "pipe" });
  }
  const files = readdirSync(tarballs).sort();
  expect(files).toEqual([
    "switchyard-conformance-0.1.0.tgz",
    "switchyard-core-0.1.0.tgz",
    "switchyard-memory-0.1.0.tgz",
  ]);
  const app = join(scratch, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(
    join(app, "package.json"),
    JSON.stringify({ name: "scratch-app", private: true, type: "module" }),
  );
  execFileSync(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      ...files.map((f) => join(tarballs, f)),
      "zod@4",
    ],
    { cwd: app, stdio: "pipe" },
  );
  writeFileSync(
    join(app, "main.mjs"),
    `import { createBus, defineMessage } from "@switchyard/core";
import { MemoryTransport } from "@switchyard/memory";
import { z } from "zod";
const Hello = defineMessage({ type: "hello", versions: { 1: z.object({ to: z.string() }) } });
const bus = createBus(); // memory:// by default
let resolve;
const got = new Promise((r) => { resolve = r; });
await bus.subscribe("greetings", "printer").on(Hello, async (msg) => resolve(msg.data.to)).start();
await bus.publish("greetings", Hello, { to: "world" });
console.log("handled:" + (await got) + ":" + (typeof MemoryTransport));
await bus.close();
`,
  );
  const output = execFileSync("node", ["main.mjs"], { cwd: app, encoding: "utf8" });
  expect(output.trim()).toBe("handled:world:function");
  // Types ship with the packages.
  expect(readdirSync(join(app, "node_modules/@switchyard/core/dist"))).toContain("index.d.ts");
});
