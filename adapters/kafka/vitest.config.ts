import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "kafka",
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Consumer-group joins take a heartbeat or two: the conformance cases run side by side.
    maxConcurrency: 32,
  },
});
