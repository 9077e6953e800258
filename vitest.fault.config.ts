import { configDefaults, defineConfig } from "vitest/config";

/**
 * Fault tests that reproduce an open bug, kept out of the fault phase (and so out of CI) until it is
 * fixed, by name and with the reason, never silently. `SWITCHYARD_KNOWN_BUGS=1` runs them too:
 *   SWITCHYARD_KNOWN_BUGS=1 pnpm exec vitest run --config vitest.fault.config.ts adapters/gcp-pubsub/fault
 */
const knownBugs = [
  // Issue 22: through a connection cut, the Pub/Sub emulator dead-letters (maxDeliveryAttempts 5)
  // messages the client never emitted: 300 or 400 lost in 1 run of 3 before the ack-ordering fix, none
  // in 5 runs after, cause not found (docs/reliability.md, adapters/gcp-pubsub/README.md).
  "adapters/gcp-pubsub/fault/pubsub.fault.ts",
  // Issue 22: after a consumer process is SIGKILLed, the new one never handles part of the backlog:
  // with ordering keys the subscription wedges (6,074 of 10,000 handled in 120 s), with ordering=false
  // the emulator dead-letters whole batches (700) after 5 delivery attempts the client never emitted —
  // the loss above, reproduced on every run (adapters/gcp-pubsub/fault/pubsub-kill-consumer.fault.ts).
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
