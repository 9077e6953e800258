import { afterAll, beforeAll, describe, it } from "vitest";
import { badInputCases } from "./cases/bad-input.js";
import { deadLetterCases } from "./cases/dead-letters.js";
import { deliveryCases } from "./cases/delivery.js";
import { envelopeCases } from "./cases/envelope.js";
import { flowCases } from "./cases/flows.js";
import { requestReplyCases } from "./cases/request-reply.js";
import { robustnessCases } from "./cases/robustness.js";
import { versionCases } from "./cases/versions.js";
import { CaseContext, type ConformanceCase, type ConformanceTarget, targetCapabilities } from "./harness.js";

export {
  assert,
  CaseContext,
  type ConformanceCase,
  type ConformanceTarget,
  Recorder,
  runCase,
  sleep,
  targetCapabilities,
} from "./harness.js";
export * as messages from "./messages.js";
export { checkRecoveredErrors } from "./recovered-errors.js";
export { checkReplyQueueLifecycle } from "./reply-queue.js";
export { checkSubscriptionRemoval } from "./subscription-removal.js";

/** Every case of the contract, in the order they are reported. */
export const conformanceCases: readonly ConformanceCase[] = [
  ...envelopeCases,
  ...deliveryCases,
  ...deadLetterCases,
  ...versionCases,
  ...badInputCases,
  ...robustnessCases,
  ...requestReplyCases,
  ...flowCases,
];

export interface SuiteOptions {
  /** Case timeout in ms before scaling. Default 60 s. */
  timeoutMs?: number;
  /** Run cases concurrently (each uses its own names). Default true. */
  concurrent?: boolean;
  /** Only cases whose name includes one of these strings. */
  only?: string[];
}

/**
 * Registers the suite with vitest. Call it at the top level of a test file:
 * `defineConformanceSuite({ name: "kafka", createTransport: () => new KafkaTransport(…) })`.
 */
export function defineConformanceSuite(target: ConformanceTarget, options: SuiteOptions = {}): void {
  const timeout = (options.timeoutMs ?? 60_000) * (target.timeScale ?? 1);
  const suite = options.concurrent === false ? describe : describe.concurrent;
  suite(`conformance: ${target.name}`, () => {
    let capabilities: Awaited<ReturnType<typeof targetCapabilities>>;
    const names = new Set<string>();
    beforeAll(async () => {
      capabilities = await targetCapabilities(target);
    });
    // Cleanup on a slow emulator can take a while: not the default 10 s hook limit.
    afterAll(async () => {
      await target.teardown?.({ names: [...names] });
    }, 120_000);
    const selected = conformanceCases.filter(
      (c) => !options.only || options.only.some((o) => c.name.includes(o)),
    );
    for (const testCase of selected) {
      it(
        testCase.name,
        async (ctx) => {
          const reason = testCase.applies?.(capabilities);
          if (reason) {
            // Not applicable by the adapter's own declaration (never a missing broker). The reason
            // goes into the task's meta too, so reports (scripts/matrix.mjs) can tell it apart.
            Object.assign(ctx.task.meta, { notApplicable: reason });
            ctx.skip(`not applicable: ${reason}`);
            return;
          }
          const context = new CaseContext(target, capabilities, names);
          try {
            await testCase.run(context);
          } finally {
            await context.dispose();
          }
        },
        timeout,
      );
    }
  });
}
