import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // HTTP and child-process suites use real sockets and processes; keep
    // parallelism modest on the 2-core machines CI runs on.
    pool: "forks",
    // Leak tests force full collections with global.gc().
    execArgv: ["--expose-gc"],
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // .ci/run collects per-Node results to print one closing count.
    reporters: process.env["VITEST_JSON"] ? ["default", ["json", { outputFile: process.env["VITEST_JSON"] }]] : ["default"],
    typecheck: { enabled: true, include: ["test/**/*.test-d.ts"] },
  },
});
