import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { SwitchyardError } from "@switchyard/core";
import type { Command } from "commander";
import type { GlobalOptions } from "../io.js";
import type { Register } from "../program.js";

interface ConformanceOptions {
  only?: string[];
  timeScale?: string;
}

export const registerConformance: Register = (program, context, configure) => {
  configure(
    program
      .command("conformance")
      .description(
        "run the shared conformance suite against an adapter module (needs @switchyard/conformance)",
      )
      .argument("<adapter>", "the module exporting createTransport(url, options) or conformanceTarget"),
  )
    .option(
      "--only <text>",
      "only cases whose name includes this (repeatable)",
      (t: string, all: string[] = []) => [...all, t],
    )
    .option("--time-scale <n>", "multiply every timeout (slow brokers)")
    .action((adapter: string, options: ConformanceOptions, command: Command) =>
      context.run(command, async (global) => {
        const exitCode = await conformance(context.io.env, global, adapter, options);
        // With --json the suite's own report went to stderr; stdout gets the verdict alone.
        if (global.json) context.io.out(JSON.stringify({ adapter, passed: exitCode === 0, exitCode }));
        return exitCode;
      }),
    );
};

/**
 * Hands over to `switchyard-conformance` (the runner in @switchyard/conformance), with the
 * terminal: the suite prints vitest's report itself and its exit code is ours.
 */
async function conformance(
  env: Record<string, string | undefined> | undefined,
  global: GlobalOptions,
  adapter: string,
  options: ConformanceOptions,
) {
  const runner = findRunner();
  const args = [runner, adapter];
  const url = global.url ?? env?.SWITCHYARD_URL;
  if (url) args.push("--url", url);
  for (const only of options.only ?? []) args.push("--only", only);
  if (options.timeScale) args.push("--time-scale", options.timeScale);
  // The report is the suite's (vitest's); with --json it goes to stderr so stdout stays JSON.
  const child = spawn(process.execPath, args, { stdio: ["inherit", global.json ? 2 : "inherit", "inherit"] });
  return new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) => resolve(code ?? (signal ? 130 : 1)));
  });
}

function findRunner(): string {
  for (const from of [join(process.cwd(), "noop.js"), import.meta.url]) {
    try {
      // The package exports only its suite; its bin sits beside dist/.
      const entry = createRequire(from).resolve("@switchyard/conformance");
      return join(dirname(entry), "..", "bin", "switchyard-conformance.mjs");
    } catch {
      // not installed there
    }
  }
  throw new SwitchyardError(
    "ADAPTER_NOT_INSTALLED",
    "switchyard conformance needs @switchyard/conformance and vitest (npm install -D @switchyard/conformance vitest)",
  );
}
