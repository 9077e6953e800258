// Turns the `FAULT {json}` lines of fault-test runs into the table of docs/reliability.md:
// `pnpm exec vitest run --config vitest.fault.config.ts 2>&1 | tee fault.log; node scripts/fault-table.mjs fault.log`
import { readFileSync } from "node:fs";

const lines = process.argv
  .slice(2)
  .flatMap((file) => readFileSync(file, "utf8").split("\n"))
  // Terminal colours may precede the line; take it from "FAULT {" on.
  .map((line) => line.slice(Math.max(0, line.indexOf("FAULT {"))))
  .filter((line) => line.startsWith("FAULT {"));

const seconds = (ms) => (typeof ms === "number" ? `${(ms / 1000).toFixed(1)} s` : "—");
console.log("| adapter | fault | sent | handled | lost | duplicates | outage | recovery | run |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const line of lines) {
  const f = JSON.parse(line.slice("FAULT ".length));
  // The HTTP feed's SQLite run (fault/http-feed.fault.ts) kills a producer and a consumer process in one
  // run and names its figures after events and handlings.
  if (f.broker === undefined && f.store !== undefined) {
    Object.assign(f, { broker: `http-feed (${f.store})`, fault: "producer + consumer kill" });
    f.messages = f.events;
    f.handled = f.handlings;
  }
  const distinct = f.distinct ?? f.handled;
  const lost = f.lost ?? f.messages - distinct;
  const duplicates = f.duplicates ?? f.handled - distinct;
  console.log(
    `| ${f.broker} | ${f.fault ?? "broker restart"} | ${f.messages} | ${f.handled} | ${lost} | ${duplicates} | ${seconds(f.outageMs)} | ${seconds(f.recoveryMs)} | ${seconds(f.runtimeMs)} |`,
  );
}
