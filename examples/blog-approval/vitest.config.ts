import { defineProject } from "vitest/config";

export default defineProject({
  test: { name: "example-blog-approval", include: ["test/**/*.test.ts"], testTimeout: 90_000 },
});
