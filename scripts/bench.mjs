// `pnpm bench NAME [--quick]`: runs adapters/DIR/bench/NAME.bench.mjs (after `pnpm build`) with GC
// exposed, so memory figures are taken after a collection. NAME is the bench's name, which is the
// adapter folder's name or the short name its issue uses (sqs, pubsub, servicebus). Each bench ends by
// printing one JSON line.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

const [name, ...rest] = process.argv.slice(2);
/** bench name → script path, for every adapters/DIR/bench/*.bench.mjs. */
const benches = new Map();
for (const dir of readdirSync("adapters")) {
  if (!existsSync(`adapters/${dir}/bench`)) continue;
  for (const file of readdirSync(`adapters/${dir}/bench`)) {
    const match = /^(.+)\.bench\.mjs$/.exec(file);
    if (match) benches.set(match[1], `adapters/${dir}/bench/${file}`);
  }
}
// An adapter folder's name also finds its bench when the bench has a shorter name (aws-sqs → sqs).
for (const dir of readdirSync("adapters")) {
  if (benches.has(dir) || !existsSync(`adapters/${dir}/bench`)) continue;
  const files = readdirSync(`adapters/${dir}/bench`).filter((f) => f.endsWith(".bench.mjs"));
  if (files.length === 1) benches.set(dir, `adapters/${dir}/bench/${files[0]}`);
}
const script = benches.get(name);
if (!script) {
  console.error(`usage: pnpm bench NAME [--quick]; benchmarks: ${[...benches.keys()].sort().join(", ")}`);
  process.exit(2);
}
const run = spawnSync(process.execPath, ["--expose-gc", script, ...rest], {
  stdio: "inherit",
  cwd: process.cwd(),
});
process.exit(run.status ?? 1);
