import { defineProject } from "vitest/config";

export default defineProject({
  test: { name: "gcp-pubsub", include: ["test/**/*.test.ts"], testTimeout: 60_000 },
});
