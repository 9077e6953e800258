import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      "packages/*",
      "adapters/*",
      "conformance-tests",
      "examples/*",
      "scripts/brokers",
      "scripts/packaging",
      "emulators/*",
    ],
  },
});
