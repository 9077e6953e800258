#!/usr/bin/env node
// Runs the Switchyard conformance suite against a third party's adapter module:
//   switchyard-conformance ./my-adapter.js [--url scheme://host:port] [--only "text"] [--time-scale 2]
// The module exports either `conformanceTarget` (a ConformanceTarget) or `createTransport(url,
// options)` (the same AdapterModule shape `createBus({ url })` loads).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string" },
    only: { type: "string", multiple: true },
    "time-scale": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help || positionals.length !== 1) {
  console.error("usage: switchyard-conformance ./adapter.js [--url URL] [--only TEXT]… [--time-scale N]");
  process.exit(values.help ? 0 : 2);
}

const adapterUrl = pathToFileURL(resolve(positionals[0])).href;
const suiteUrl = new URL("../dist/index.js", import.meta.url).href;
const settings = {
  url: values.url ?? process.env.SWITCHYARD_URL,
  only: values.only,
  timeScale: values["time-scale"] ? Number(values["time-scale"]) : undefined,
};

const dir = mkdtempSync(join(tmpdir(), "switchyard-conformance-"));
writeFileSync(
  join(dir, "conformance.test.mjs"),
  `import { defineConformanceSuite } from ${JSON.stringify(suiteUrl)};
import * as adapter from ${JSON.stringify(adapterUrl)};
const settings = ${JSON.stringify(settings)};
let target = adapter.conformanceTarget ?? adapter.default?.conformanceTarget;
if (!target) {
  const create = adapter.createTransport ?? adapter.default?.createTransport;
  if (typeof create !== "function") throw new Error("the module exports neither conformanceTarget nor createTransport");
  const scheme = (adapter.schemes ?? adapter.default?.schemes ?? ["custom"])[0];
  const url = new URL(settings.url ?? scheme + "://");
  target = { name: url.protocol.replace(/:$/, ""), createTransport: () => create(url, {}) };
}
if (settings.timeScale) target = { ...target, timeScale: settings.timeScale };
defineConformanceSuite(target, settings.only ? { only: settings.only } : {});
`,
);

const { startVitest } = await import("vitest/node");
const vitest = await startVitest("test", [], {
  root: dir,
  include: ["conformance.test.mjs"],
  watch: false,
  reporters: ["default"],
});
await vitest?.close();
rmSync(dir, { recursive: true, force: true });
const failed = !vitest || vitest.state.getCountOfFailedTests() > 0 || process.exitCode;
process.exit(failed ? 1 : 0);
