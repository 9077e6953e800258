import { configDefaults, defineConfig } from "vitest/config";

/**
 * Fault tests that reproduce an open bug, kept out of the fault phase (and so out of CI) until it is
 * fixed, by name and with the reason, never silently. `SWITCHYARD_KNOWN_BUGS=1` runs them too:
 *   SWITCHYARD_KNOWN_BUGS=1 pnpm exec vitest run --config vitest.fault.config.ts adapters/NAME/fault
 */
const knownBugs = [
  // Issue 22: since the adapter stopped losing messages to the emulator's dead streams
  // (adapters/gcp-pubsub/README.md), the consumer kill loses nothing, but key order still breaks in
  // some runs: 100 breaks with ~1,500 duplicates in 3 of 11 runs on 2026-12-07, with the core of
  // before and after that day's pipeline changes alike (e.g. "6928 after 9984"). The emulator hands
  // later messages of a key to the new stream while earlier ones sit on the dead one until its
  // deadline. The connection cut (pubsub.fault.ts) passes and runs in CI.
  "adapters/gcp-pubsub/fault/pubsub-kill-consumer.fault.ts",
];

// Fault tests stop and restart shared brokers, so they run after every other suite (pnpm test runs
// this config second), one file at a time.
export default defineConfig({
  test: {
    name: "fault",
    include: ["adapters/*/fault/**/*.fault.ts"],
    exclude: [...configDefaults.exclude, ...(process.env.SWITCHYARD_KNOWN_BUGS === "1" ? [] : knownBugs)],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
