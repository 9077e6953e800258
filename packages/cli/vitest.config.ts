import { defineProject } from "vitest/config";

// Tests start the built binary many times (≈0.5 s each on a busy machine) and wait on brokers.
export default defineProject({ test: { name: "cli", include: ["test/**/*.test.ts"], testTimeout: 60_000 } });
