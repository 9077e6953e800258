// `pnpm bench NAME`: runs adapters/NAME/bench/NAME.bench.mjs (after `pnpm build`) with GC exposed,
// so memory figures are taken after a collection. Each bench ends by printing one JSON line.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

const [name, ...rest] = process.argv.slice(2);
const available = readdirSync("adapters").filter((a) => existsSync(`adapters/${a}/bench/${a}.bench.mjs`));
if (!name || !available.includes(name)) {
  console.error(`usage: pnpm bench NAME [--quick]; benchmarks: ${available.join(", ")}`);
  process.exit(2);
}
const run = spawnSync(
  process.execPath,
  ["--expose-gc", `adapters/${name}/bench/${name}.bench.mjs`, ...rest],
  {
    stdio: "inherit",
    cwd: process.cwd(),
  },
);
process.exit(run.status ?? 1);
