/*
 * The vitest configuration `npm run mutate` runs under StrykerJS (see
 * stryker.config.mjs). The core's own suites only: the HTTP, build and
 * package suites test other files and would only slow every mutant down.
 *
 * Stryker's vitest runner asks vitest for the threads pool. The plugin below
 * puts the forks pool back once vitest has resolved the configuration: a
 * worker thread receives no OS signal (test/signals/process-signal.test.ts
 * sends real ones to its own process) and refuses `--expose-gc` in
 * `execArgv` (the leak tests call gc()).
 */
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [
    {
      name: "cancelkit:forks-pool",
      configureVitest({ project }) {
        project.config.pool = "forks";
      },
    },
  ],
  test: {
    include: [
      "test/cancel/**/*.test.ts",
      "test/channels/**/*.test.ts",
      "test/signals/**/*.test.ts",
      "test/errors.test.ts",
      "test/scheduler.test.ts",
      "test/fake-clock/timers.test.ts",
    ],
    globalSetup: ["test/global-setup.ts"],
    execArgv: ["--expose-gc"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    typecheck: { enabled: false },
  },
});
