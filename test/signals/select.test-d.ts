import { describe, expectTypeOf, it } from "vitest";
import {
  CancellationToken,
  oneshot,
  select,
  selectable,
  sleep,
  watch,
  type SelectBranch,
  type Selectable,
  type SelectResult,
} from "../../src/index.js";
import { processSignal, shutdown, type ProcessSignalName } from "../../src/signals/index.js";

declare const token: CancellationToken;
declare const signal: AbortSignal;
declare const ready: boolean;

describe("select() result types", () => {
  it("select() resolves a discriminated union that switch narrows", async () => {
    const [, rx] = oneshot<number>();
    const [, state] = watch<"serving" | "draining">("serving");
    const result = await select({
      token,
      signal,
      rx,
      state,
      timeout: sleep(1_000),
      promise: Promise.resolve("text" as const),
      work: async (t: CancellationToken): Promise<bigint> => (t.isCancelled ? 1n : 2n),
      term: processSignal(["SIGINT", "SIGTERM"]),
    });
    expectTypeOf(result.key).toEqualTypeOf<"token" | "signal" | "rx" | "state" | "timeout" | "promise" | "work" | "term">();
    switch (result.key) {
      case "token":
      case "signal":
        expectTypeOf(result.value).toBeUnknown();
        break;
      case "rx":
        expectTypeOf(result.value).toEqualTypeOf<number>();
        break;
      case "state":
        expectTypeOf(result.value).toEqualTypeOf<"serving" | "draining">();
        break;
      case "timeout":
        expectTypeOf(result.value).toEqualTypeOf<void>();
        break;
      case "promise":
        expectTypeOf(result.value).toEqualTypeOf<"text">();
        break;
      case "work":
        expectTypeOf(result.value).toEqualTypeOf<bigint>();
        break;
      case "term":
        expectTypeOf(result.value).toEqualTypeOf<"SIGINT" | "SIGTERM">();
        expectTypeOf(result.value).toMatchTypeOf<ProcessSignalName>();
        break;
    }
  });

  it("select() keeps a conditionally disabled branch and drops an always-disabled one", async () => {
    const [, rx] = oneshot<string>();
    const result = await select({ maybe: ready && rx, never: null, off: false, stop: token });
    expectTypeOf(result).toEqualTypeOf<{ readonly key: "maybe"; readonly value: string } | { readonly key: "stop"; readonly value: unknown }>();
  });

  it("select() accepts any Selectable and types its value", async () => {
    const custom: Selectable<Date> = {
      [selectable]: (): SelectBranch<Date> => ({ poll: () => true, commit: () => new Date(), subscribe: () => () => {} }),
    };
    const result = await select({ custom });
    expectTypeOf(result).toEqualTypeOf<{ readonly key: "custom"; readonly value: Date }>();
  });

  it("SelectResult<B> is exported for annotating results", () => {
    expectTypeOf<SelectResult<{ a: Promise<1>; b: CancellationToken }>>().toEqualTypeOf<
      { readonly key: "a"; readonly value: 1 } | { readonly key: "b"; readonly value: unknown }
    >();
  });

  it("select() rejects branches of unsupported types at compile time", () => {
    // @ts-expect-error: a number is not a branch
    void select({ bad: 42 }).catch(() => {});
    // @ts-expect-error: a string is not a branch
    void select({ bad: "x" }).catch(() => {});
    // @ts-expect-error: options.biased is a boolean
    void select({ token }, { biased: "yes" }).catch(() => {});
  });

  it("shutdown() returns a CancellationToken", () => {
    expectTypeOf(shutdown).returns.toEqualTypeOf<CancellationToken>();
  });
});
