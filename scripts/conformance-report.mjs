// The conformance results of a vitest JSON report, one file per adapter in reports/conformance/
// (gitignored): what scripts/matrix.mjs turns into the README's feature matrix.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";

export const REPORT_DIR = join("reports", "conformance");
const SUITE_PREFIX = "conformance: ";

/**
 * Writes reports/conformance/<adapter>.json for every adapter whose conformance suite is in the
 * vitest report: per variant (the target's name), the cases passed, failed, not applicable (with
 * the capability reason) and skipped for another reason (a missing broker). Returns the adapters.
 */
export function writeConformanceReports(vitestReportPath, root = process.cwd()) {
  const report = JSON.parse(readFileSync(vitestReportPath, "utf8"));
  const adapters = new Map();
  for (const file of report.testResults ?? []) {
    const parts = relative(root, file.name).split(sep);
    if (parts[0] !== "adapters" || parts.length < 3) continue;
    const adapter = parts[1];
    // An adapter whose conformance files ran but whose suite did not (its broker is missing) gets an
    // empty report, not the old one.
    if (parts.at(-1).startsWith("conformance") && !adapters.has(adapter)) adapters.set(adapter, new Map());
    for (const test of file.assertionResults ?? []) {
      const suite = test.ancestorTitles.find((title) => title.startsWith(SUITE_PREFIX));
      if (!suite) continue;
      const variants = adapters.get(adapter) ?? new Map();
      adapters.set(adapter, variants);
      const name = suite.slice(SUITE_PREFIX.length);
      const variant = variants.get(name) ?? { name, passed: 0, failed: [], notApplicable: [], skipped: [] };
      variants.set(name, variant);
      if (test.status === "passed") variant.passed++;
      else if (test.status === "failed") variant.failed.push(test.title);
      else if (test.meta?.notApplicable)
        variant.notApplicable.push({ case: test.title, reason: test.meta.notApplicable });
      else variant.skipped.push(test.title);
    }
  }
  mkdirSync(REPORT_DIR, { recursive: true });
  for (const [adapter, variants] of adapters) {
    const body = { adapter, writtenAt: new Date().toISOString(), variants: [...variants.values()] };
    writeFileSync(join(REPORT_DIR, `${adapter}.json`), `${JSON.stringify(body, null, 2)}\n`);
  }
  return [...adapters.keys()];
}

/** Every adapter report in reports/conformance/, by adapter name. */
export function readConformanceReports() {
  const reports = new Map();
  let files = [];
  try {
    files = readdirSync(REPORT_DIR).filter((name) => name.endsWith(".json"));
  } catch {
    // no run yet
  }
  for (const name of files) {
    const report = JSON.parse(readFileSync(join(REPORT_DIR, name), "utf8"));
    reports.set(report.adapter, report);
  }
  return reports;
}
