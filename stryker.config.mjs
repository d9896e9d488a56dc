// @ts-check
/*
 * Mutation testing of the core (src/cancel, src/channels, src/signals):
 * `npm run mutate` (every core file) or `npm run mutate -- src/cancel/task-tracker.ts`.
 * scripts/mutate.js passes the files; this holds what does not change.
 */
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  plugins: ["@stryker-mutator/vitest-runner"],
  vitest: { configFile: "vitest.mutate.config.ts" },
  coverageAnalysis: "perTest",
  concurrency: 2,
  // Mutants that loop forever are the slow part; a mutant that times out counts as killed.
  timeoutMS: 3000,
  reporters: ["clear-text", "progress", "html", "json"],
  clearTextReporter: { logTests: false },
  htmlReporter: { fileName: "reports/mutation/index.html" },
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  incrementalFile: "reports/mutation/incremental.json",
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
  thresholds: { high: 95, low: 90, break: null },
};
