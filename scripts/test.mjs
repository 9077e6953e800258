// `pnpm test`: start the brokers the suites need, then run every vitest project.
// With CI=true a broker that fails to start fails the run (brokers.sh prints its log tail);
// elsewhere the suites of a missing broker skip loudly and say why.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeConformanceReports } from "./conformance-report.mjs";
import { checkMatrix } from "./matrix.mjs";

const ci = process.env.CI === "true" || process.env.CI === "1";
const brokers = process.env.SWITCHYARD_BROKERS ? process.env.SWITCHYARD_BROKERS.split(/[ ,]+/) : [];

if (process.env.SWITCHYARD_SKIP_BROKERS !== "1" && existsSync("scripts/brokers/brokers.sh")) {
  // CI starts from empty brokers: what earlier runs on the same machine left (thousands of topics and
  // queues) would only slow the brokers down and eat their memory.
  if (ci) spawnSync("bash", ["scripts/brokers/brokers.sh", "reset", ...brokers], { stdio: "inherit" });
  const up = spawnSync("bash", ["scripts/brokers/brokers.sh", "up", ...brokers], { stdio: "inherit" });
  if (up.status !== 0) {
    if (ci) {
      console.error("switchyard: brokers failed to start; with CI=true this fails the run.");
      process.exit(up.status ?? 1);
    }
    console.warn("switchyard: WARNING some brokers failed to start; their suites will be skipped.");
  }
}

// Two phases: every suite in parallel, then the fault tests (which stop and restart brokers) alone.
// Arguments (e.g. `--project kafka`) select suites of the first phase; the fault phase runs only
// when no arguments narrow the run.
const args = process.argv.slice(2);
const phases = [["vitest", "run", ...args]];
if (args.length === 0)
  phases.push(["vitest", "run", "--config", "vitest.fault.config.ts", "--passWithNoTests"]);
const totals = { passed: 0, failed: 0, skipped: 0 };
// CI keeps only the end of a run's output, so the failures are repeated there, one line each.
const failures = [];
let status = 0;
const reportDir = mkdtempSync(join(tmpdir(), "switchyard-test-"));
for (const [index, args] of phases.entries()) {
  if (index === 1 && process.env.SWITCHYARD_SKIP_FAULT === "1") break;
  const report = join(reportDir, `report-${index}.json`);
  const run = spawnSync(
    "pnpm",
    ["exec", ...args, "--reporter=default", "--reporter=json", `--outputFile.json=${report}`],
    {
      stdio: "inherit",
    },
  );
  if (run.status !== 0) status = run.status ?? 1;
  if (existsSync(report)) {
    if (index === 0) writeConformanceReports(report);
    const { numPassedTests, numFailedTests, numPendingTests, numTodoTests, testResults } = JSON.parse(
      readFileSync(report, "utf8"),
    );
    failures.push(...failedTests(testResults));
    totals.passed += numPassedTests;
    totals.failed += numFailedTests;
    totals.skipped += numPendingTests + numTodoTests;
  }
}
rmSync(reportDir, { recursive: true, force: true });
// The README's conformance matrix must say what this run proved. Checked only after a full, green
// run: a narrowed run, a failing case or a missing broker says nothing new about the matrix.
if (args.length === 0 && status === 0 && totals.failed === 0) {
  const drift = checkMatrix();
  if (drift) {
    console.error(`\nswitchyard: ${drift}`);
    status = 1;
  }
}
for (const failure of failures) console.log(`FAILED ${failure}`);
// One plain closing line that any CI log reader understands.
console.log(`\nTests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(status);

/** "file > test name: first line of the error" for every failed test (and failed file) in a vitest JSON report. */
function failedTests(testResults = []) {
  const lines = [];
  for (const file of testResults) {
    const path = file.name.startsWith(process.cwd()) ? file.name.slice(process.cwd().length + 1) : file.name;
    const failed = file.assertionResults.filter((test) => test.status === "failed");
    for (const test of failed) lines.push(`${path} > ${test.fullName}: ${firstLine(test.failureMessages)}`);
    // A file that failed without a failed test (an import error, a failing hook) says so on its own.
    if (file.status === "failed" && failed.length === 0) lines.push(`${path}: ${firstLine([file.message])}`);
  }
  return lines;
}

function firstLine(messages = []) {
  const text = messages.find(Boolean) ?? "";
  return text.split("\n", 1)[0].slice(0, 300);
}
