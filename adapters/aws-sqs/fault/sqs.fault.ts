// Fault test (issue 12): the consumer of a stream of 10,000 messages is a real process (consumer.mjs),
// SIGKILLed in the middle and started again. Every message is handled at least once, what the killed
// process held comes back when its visibility timeout ends, nothing stays invisible past it, and the
// duplicates are counted and reported. The broker (ElasticMQ) is not touched.
// The child runs the built adapter (dist): `pnpm build` first, as for the whole fault phase.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { expect, it } from "vitest";
import { SqsTransport } from "../src/index.js";

const { Ping } = messages;
const endpoint = brokerEndpoint("elasticmq").url;
const CHILD = fileURLToPath(new URL("./consumer.mjs", import.meta.url));
const TOTAL = 10_000;
const BATCH = 100;
const KILL_AT = 3_000;
/** Short, so what the killed consumer held comes back within seconds (the heartbeat extends it while a handler runs). */
const VISIBILITY_S = 5;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Child {
  process: ChildProcess;
  received: Set<number>;
  handled: number;
  ready: Promise<void>;
  /** After exit and the end of its output: every line it wrote has been read. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Set to kill the process the moment it reports starting a handler once `killAfter` are handled. */
  killAfter?: number;
  killedAt?: number;
}

describeWithBroker("elasticmq", "aws-sqs fault: consumer process killed mid-stream", () => {
  it("10,000 messages: a SIGKILLed consumer, restarted, leaves nothing unhandled or invisible", async () => {
    const started = Date.now();
    const queue = `sy-fault-sqs-${randomUUID().slice(0, 8)}`;
    const options = { endpoint, ...localAws, waitTimeSeconds: 1, visibilityTimeoutSeconds: VISIBILITY_S };
    const ids = new Set<number>();
    let calls = 0;
    const waiters = new Set<() => void>();
    const children: Child[] = [];

    const startConsumer = (): Child => {
      const child = spawn(process.execPath, [CHILD], {
        env: { ...process.env, FAULT_QUEUE: queue, FAULT_SQS_OPTIONS: JSON.stringify(options) },
        stdio: ["ignore", "pipe", "inherit"],
      });
      const state: Child = {
        process: child,
        received: new Set(),
        handled: 0,
        ready: undefined as unknown as Promise<void>,
        exited: new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal }))),
      };
      state.ready = new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error("the consumer process did not start in 30 s")),
          30_000,
        );
        child.on("exit", () => reject(new Error("the consumer process exited before it was ready")));
        createInterface({ input: child.stdout! }).on("line", (line) => {
          const [what, n] = line.split(" ");
          if (what === "ready") {
            clearTimeout(timer);
            resolve();
          } else if (what === "r") {
            state.received.add(Number(n));
            // Killed with a handler running (it sleeps 50 ms), so the process dies holding messages.
            if (
              state.killAfter !== undefined &&
              state.killedAt === undefined &&
              ids.size >= state.killAfter
            ) {
              state.killedAt = Date.now();
              child.kill("SIGKILL");
            }
          } else if (what === "h") {
            state.handled++;
            calls++;
            ids.add(Number(n));
            for (const waiter of waiters) waiter();
          }
        });
      });
      children.push(state);
      return state;
    };
    const reach = (count: number, timeoutMs: number, what: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (ids.size < count) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (have ${ids.size})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });

    const producer = createBus({ transport: new SqsTransport(options), source: "fault-producer" });
    const raw = new SQSClient({ endpoint, ...localAws });
    try {
      const first = startConsumer();
      await first.ready;
      let published = 0;
      const publishing = (async () => {
        for (let from = 0; from < TOTAL; from += BATCH, published = from) {
          await producer.sendBatch(
            queue,
            Ping,
            Array.from({ length: BATCH }, (_, i) => ({ data: { n: from + i } })),
          );
        }
      })();
      first.killAfter = KILL_AT;
      const { signal } = await Promise.race([
        first.exited,
        sleep(60_000).then(() => {
          throw new Error(`the first consumer was not killed within 60 s (${ids.size} handled)`);
        }),
      ]);
      const killedAt = first.killedAt ?? Date.now();
      const publishedAtKill = published;
      // What the killed process had started on but not finished: held, unacked, invisible for a while.
      const handledBeforeKill = new Set(ids);
      const heldAtKill = [...first.received].filter((n) => !handledBeforeKill.has(n));
      console.warn(
        `FAULT TEST (aws-sqs): consumer process SIGKILLed after ${first.handled} handled, ${heldAtKill.length} in its handlers`,
      );
      await sleep(500);
      const second = startConsumer();
      await second.ready;
      await publishing;
      await reach(TOTAL, 120_000, `all ${TOTAL} messages handled`);
      const allHandledAt = Date.now();
      // Nothing left behind: no visible and no invisible message once the last visibility timeout ran out.
      let attributes: Record<string, string> = {};
      const url = await ((await producer.transport()) as SqsTransport).base.queues.url(queue);
      const deadline = Date.now() + (VISIBILITY_S + 10) * 1000;
      for (;;) {
        attributes =
          (
            await raw.send(
              new GetQueueAttributesCommand({
                QueueUrl: url,
                AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
              }),
            )
          ).Attributes ?? {};
        const left =
          Number(attributes.ApproximateNumberOfMessages) +
          Number(attributes.ApproximateNumberOfMessagesNotVisible);
        if (left === 0 || Date.now() > deadline) break;
        await sleep(500);
      }
      const figures = {
        broker: "elasticmq (sqs)",
        messages: TOTAL,
        handled: calls,
        distinct: ids.size,
        duplicates: calls - ids.size,
        publishedAtKill,
        handledByKilled: first.handled,
        heldAtKill: heldAtKill.length,
        handledByRestarted: second.handled,
        killToAllHandledMs: allHandledAt - killedAt,
        visibilityTimeoutS: VISIBILITY_S,
        queueAfter: attributes,
        runtimeMs: Date.now() - started,
      };
      console.log(`FAULT ${JSON.stringify(figures)}`);
      expect(signal).toBe("SIGKILL");
      expect(ids.size).toBe(TOTAL);
      // The killed process really held messages, and each of them came back to the new one.
      expect(heldAtKill.length).toBeGreaterThan(0);
      for (const n of heldAtKill) expect(ids.has(n)).toBe(true);
      expect(second.handled).toBeGreaterThan(0);
      expect(attributes).toMatchObject({
        ApproximateNumberOfMessages: "0",
        ApproximateNumberOfMessagesNotVisible: "0",
      });
      second.process.kill("SIGTERM");
      expect((await second.exited).code).toBe(0);
    } finally {
      for (const child of children) if (child.process.exitCode === null) child.process.kill("SIGKILL");
      await producer.close();
      raw.destroy();
    }
  });
});
