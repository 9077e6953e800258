// `node scripts/profile-summary.mjs FILE.cpuprofile [--top N]`: where a `node --cpu-prof` run spent
// its CPU, split into the layers the hot-path work is judged by — Switchyard's core, the adapters,
// the broker client libraries, other dependencies, Node itself, GC — and the heaviest functions by
// self time. Benchmarks only; nothing here is product code.
import { readFileSync } from "node:fs";

const [file, ...rest] = process.argv.slice(2);
if (!file) {
  console.error("usage: node scripts/profile-summary.mjs FILE.cpuprofile [--top N]");
  process.exit(2);
}
const top = Number(rest[rest.indexOf("--top") + 1]) || 25;
const profile = JSON.parse(readFileSync(file, "utf8"));

/** The layer a call frame belongs to, from its script URL. */
function layer({ url, functionName }) {
  if (!url) {
    if (functionName === "(garbage collector)") return "gc";
    if (functionName === "(idle)" || functionName === "(program)") return functionName.slice(1, -1);
    return "node";
  }
  if (url.startsWith("node:")) return "node";
  if (/\/packages\/core\//.test(url)) return "core";
  if (/\/adapters\/[^/]+\/(dist|src)\//.test(url)) return "adapter";
  if (/\/bench\//.test(url) || /bench-kit/.test(url)) return "bench";
  if (
    /node_modules\/(\.pnpm\/)?(@platformatic\+kafka|@platformatic\/kafka|kafkajs|amqplib|@aws-sdk|@smithy|@google-cloud|@grpc|@azure|rhea|stompit)/.test(
      url,
    )
  )
    return "client";
  if (/node_modules/.test(url)) return "deps";
  return "other";
}

const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfUs = new Map();
// samples[i] was taken timeDeltas[i] µs after the previous one: attribute each delta to its node.
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const layers = new Map();
const functions = new Map();
let total = 0;
for (const [id, us] of selfUs) {
  const frame = byId.get(id).callFrame;
  const name = layer(frame);
  if (name === "idle") continue;
  total += us;
  layers.set(name, (layers.get(name) ?? 0) + us);
  const where = `${frame.functionName || "(anonymous)"} ${frame.url.split("/").slice(-2).join("/")}:${frame.lineNumber + 1}`;
  const fn = functions.get(where) ?? { us: 0, layer: name };
  fn.us += us;
  functions.set(where, fn);
}
const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
console.log(`busy ${(total / 1000).toFixed(0)} ms (idle excluded)`);
for (const [name, us] of [...layers].sort((a, b) => b[1] - a[1]))
  console.log(`  ${name.padEnd(8)} ${pct(us)} ${(us / 1000).toFixed(0).padStart(7)} ms`);
console.log(`top ${top} functions by self time:`);
for (const [where, { us, layer: name }] of [...functions].sort((a, b) => b[1].us - a[1].us).slice(0, top))
  console.log(`  ${pct(us)} ${name.padEnd(8)} ${where}`);
