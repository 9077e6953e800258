import { defineProject } from "vitest/config";

export default defineProject({
  test: { name: "http-feed", include: ["test/**/*.test.ts"], testTimeout: 60_000 },
});
