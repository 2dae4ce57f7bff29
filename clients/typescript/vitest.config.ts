import { defineConfig } from "vitest/config";

// The tests start the real services (test/stack.ts): one file at a time, since one of them
// restarts payments-api, and with room for a cold start.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    reporters: ["default"],
  },
});
