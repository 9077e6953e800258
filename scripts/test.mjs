// `pnpm test`: start the brokers the suites need, then run every vitest project.
// With CI=true a broker that fails to start fails the run (brokers.sh prints its log tail);
// elsewhere the suites of a missing broker skip loudly and say why.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ci = process.env.CI === "true" || process.env.CI === "1";
const brokers = process.env.SWITCHYARD_BROKERS ? process.env.SWITCHYARD_BROKERS.split(/[ ,]+/) : [];

if (process.env.SWITCHYARD_SKIP_BROKERS !== "1" && existsSync("scripts/brokers/brokers.sh")) {
  const up = spawnSync("bash", ["scripts/brokers/brokers.sh", "up", ...brokers], { stdio: "inherit" });
  if (up.status !== 0) {
    if (ci) {
      console.error("switchyard: brokers failed to start; with CI=true this fails the run.");
      process.exit(up.status ?? 1);
    }
    console.warn("switchyard: WARNING some brokers failed to start; their suites will be skipped.");
  }
}

const reportDir = mkdtempSync(join(tmpdir(), "switchyard-test-"));
const report = join(reportDir, "report.json");
const vitest = spawnSync(
  "pnpm",
  [
    "exec",
    "vitest",
    "run",
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${report}`,
    ...process.argv.slice(2),
  ],
  { stdio: "inherit" },
);
if (existsSync(report)) {
  const { numPassedTests, numFailedTests, numPendingTests, numTodoTests } = JSON.parse(
    readFileSync(report, "utf8"),
  );
  // One plain closing line that any CI log reader understands.
  console.log(
    `\nTests: ${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests + numTodoTests} skipped`,
  );
}
rmSync(reportDir, { recursive: true, force: true });
process.exit(vitest.status ?? 1);
