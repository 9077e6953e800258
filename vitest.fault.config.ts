import { defineConfig } from "vitest/config";

// Fault tests stop and restart shared brokers, so they run after every other suite (pnpm test runs
// this config second), one file at a time.
export default defineConfig({
  test: {
    name: "fault",
    include: ["adapters/*/fault/**/*.fault.ts"],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
