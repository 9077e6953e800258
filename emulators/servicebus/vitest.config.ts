import { defineProject } from "vitest/config";

export default defineProject({
  test: { name: "servicebus-emulator", include: ["test/**/*.test.ts"], testTimeout: 60_000 },
});
