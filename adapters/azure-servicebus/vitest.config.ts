import { defineProject } from "vitest/config";

export default defineProject({
  test: { name: "azure-servicebus", include: ["test/**/*.test.ts"], testTimeout: 60_000 },
});
