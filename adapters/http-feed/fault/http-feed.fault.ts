// Fault test (issue 15): the producer's feed server and the consumer are real processes (child.mjs),
// both SIGKILLed in the middle of a stream of 10,000 events and started again. Every event is handled
// at least once, per subject in order (a restarted consumer may replay a suffix of a subject, never
// skip), and the duplicates are counted and reported.
//
// Store: a SQLite file per process (the producer's feed, the consumer's position and pending rows),
// the embedded default the issue names. It needs no shared broker, so the test always runs, and a
// SIGKILL is the crash it must survive: WAL with synchronous=NORMAL loses no committed transaction
// when the process dies (only a power loss could), and nothing else could be lost. The PostgreSQL
// store's durability is PostgreSQL's own. The children run the built adapter (dist): `pnpm build`
// first, as for the whole fault phase.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const CHILD = fileURLToPath(new URL("./child.mjs", import.meta.url));
const TOTAL = 10_000;
const SUBJECTS = 10;
const BATCH = 100;
/** At most this many events published and not yet handled: the stream flows while the kills land. */
const AHEAD = 1_500;
const KILL_PRODUCER_AT = 3_000;
const TOPIC = "fault-stream";

interface Child {
  name: string;
  process: ChildProcess;
  ready: Promise<void>;
  /** After exit and the end of its output: every line it wrote has been read. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Every `h N` it wrote, in order. */
  handled: number[];
  /** Events whose handler it started (`r N`). */
  started: Set<number>;
  /** The child said `holding`: handlers it starts from then on never finish. */
  holding: boolean;
  startedWhileHolding: number;
  send(line: string): void;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

it("10,000 events: feed server and consumer processes SIGKILLed mid-stream and restarted, every event handled, in order per subject, none skipped", async () => {
  const began = Date.now();
  const dir = mkdtempSync(join(tmpdir(), "switchyard-http-feed-fault-"));
  const port = await freePort();
  const children: Child[] = [];
  /** Every handling in the order the lines arrived, and which process did it. */
  const sequence: Array<{ n: number; by: string }> = [];
  const ids = new Set<number>();
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const listener of [...listeners]) listener();
  };
  /** Resolves when `check()` holds, re-checked on every line a child writes or exit; bounded. */
  const until = (check: () => boolean, timeoutMs: number, what: string) =>
    new Promise<void>((resolve, reject) => {
      const test = () => {
        if (!check()) return;
        listeners.delete(test);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        listeners.delete(test);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${ids.size} handled)`));
      }, timeoutMs);
      listeners.add(test);
      test();
    });

  let confirmed = 0; // the producer answered `p N`: events below N are committed to its feed
  const start = (role: "producer" | "consumer", name: string): Child => {
    const child = spawn(process.execPath, [CHILD, role], {
      env: {
        ...process.env,
        FAULT_TOPIC: TOPIC,
        FAULT_SUBJECTS: String(SUBJECTS),
        FAULT_PORT: String(port),
        FAULT_FEED_URL: `http://127.0.0.1:${port}/feeds`,
        FAULT_STORE: `sqlite://${join(dir, `${role}.db`)}`,
      },
      stdio: ["pipe", "pipe", "inherit"],
    });
    const state: Child = {
      name,
      process: child,
      ready: undefined as unknown as Promise<void>,
      exited: new Promise((resolve) =>
        child.on("close", (code, signal) => {
          resolve({ code, signal });
          changed();
        }),
      ),
      handled: [],
      started: new Set(),
      holding: false,
      startedWhileHolding: 0,
      send: (line) => {
        if (child.exitCode === null && child.signalCode === null) child.stdin!.write(`${line}\n`);
      },
    };
    child.stdin!.on("error", () => {}); // a write racing the kill
    state.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start in 20 s`)), 20_000);
      child.on("exit", () => reject(new Error(`${name} exited before it was ready`)));
      createInterface({ input: child.stdout! }).on("line", (line) => {
        const [what, arg] = line.split(" ");
        const n = Number(arg);
        if (what === "ready") {
          clearTimeout(timer);
          resolve();
        } else if (what === "p") {
          confirmed = Math.max(confirmed, n);
        } else if (what === "holding") {
          state.holding = true;
        } else if (what === "r") {
          state.started.add(n);
          if (state.holding) state.startedWhileHolding++;
        } else if (what === "h") {
          state.handled.push(n);
          sequence.push({ n, by: name });
          ids.add(n);
        }
        changed();
      });
    });
    children.push(state);
    return state;
  };

  try {
    let producer = start("producer", "producer-1");
    await producer.ready;
    const consumer1 = start("consumer", "consumer-1");
    await consumer1.ready;

    // The publisher: one batch at a time, at most AHEAD unhandled. A batch the killed producer never
    // confirmed is sent again to the next one (same ids: the feed keeps the first copy only).
    let stopPublishing = false;
    /** Set to kill the producer right after it is sent a batch: killed with a batch in flight. */
    let killOnSend: (() => void) | undefined;
    const publishing = (async () => {
      while (confirmed < TOTAL && !stopPublishing) {
        await until(() => stopPublishing || confirmed - ids.size < AHEAD, 60_000, "the consumer to catch up");
        const target = producer;
        const from = confirmed;
        const to = Math.min(TOTAL, from + BATCH);
        target.send(`publish ${from} ${to}`);
        if (killOnSend) {
          target.process.kill("SIGKILL");
          killOnSend();
          killOnSend = undefined;
        }
        await until(
          () => stopPublishing || confirmed >= to || target !== producer,
          30_000,
          `the producer to confirm ${to}`,
        );
        if (target !== producer) await producer.ready; // killed with the batch in flight: a new one
      }
    })();

    // Kill the producer's server mid-stream, then the consumer while it holds events (handlers
    // running, more fetched and pending) and its feed is unreachable.
    await until(() => ids.size >= KILL_PRODUCER_AT, 30_000, `${KILL_PRODUCER_AT} handled`);
    const publishedAtKill = confirmed;
    // Killed the moment it is sent its next batch (which may or may not commit): the publisher sends
    // that batch again to the restarted producer, and the feed must not hold it twice.
    await new Promise<void>((resolve) => {
      killOnSend = resolve;
    });
    const producerExit = await producer.exited;
    const handledAtProducerKill = ids.size;
    await until(
      () => consumer1.handled.length > 0 && ids.size > handledAtProducerKill,
      30_000,
      "the consumer to handle events with its feed down",
    );
    // From the child's `holding` line on its handlers never finish: killed once one has started
    // after it, it surely holds one (a start reported before it may still finish).
    consumer1.send("hold");
    await until(() => consumer1.startedWhileHolding > 0, 30_000, "a held handler");
    consumer1.process.kill("SIGKILL");
    const consumerExit = await consumer1.exited;
    const handledByKilled = new Set(consumer1.handled);
    const heldAtKill = [...consumer1.started].filter((n) => !handledByKilled.has(n));

    // Both come back on the same files and port; the publisher resumes from its last confirmation.
    producer = start("producer", "producer-2");
    await producer.ready;
    const consumer2 = start("consumer", "consumer-2");
    await consumer2.ready;
    await until(() => ids.size === TOTAL, 60_000, `all ${TOTAL} events handled`);
    stopPublishing = true;
    changed();
    await publishing;

    // Per subject, in the order the lines came: every process handles a run of consecutive events
    // (nothing skipped or reordered); a restarted one may begin at or before where the killed one
    // stopped (a replayed suffix), never after it.
    const bySubject = new Map<number, Array<{ n: number; by: string }>>();
    for (const entry of sequence) {
      const list = bySubject.get(entry.n % SUBJECTS) ?? [];
      list.push(entry);
      bySubject.set(entry.n % SUBJECTS, list);
    }
    const problems: string[] = [];
    let replayed = 0;
    for (const [subject, list] of bySubject) {
      let highest = -1;
      for (let i = 0; i < list.length; i++) {
        const { n, by } = list[i]!;
        const previous = list[i - 1];
        if (previous && previous.by === by) {
          if (n !== previous.n + SUBJECTS)
            problems.push(`s${subject}: ${by} handled ${n} after ${previous.n}`);
        } else if (n > highest + SUBJECTS) {
          problems.push(`s${subject}: ${by} began at ${n}, the highest before was ${highest}`);
        } else if (n <= highest) {
          replayed += (highest - n) / SUBJECTS + 1;
        }
        highest = Math.max(highest, n);
      }
      if (highest !== TOTAL - SUBJECTS + subject) problems.push(`s${subject}: ends at ${highest}`);
    }

    const figures = {
      store: "sqlite (a file per process)",
      events: TOTAL,
      handlings: sequence.length,
      distinct: ids.size,
      duplicates: sequence.length - ids.size,
      replayedAfterRestart: replayed,
      publishedAtProducerKill: publishedAtKill,
      handledAtProducerKill,
      handledByKilledConsumer: consumer1.handled.length,
      heldByKilledConsumer: heldAtKill.length,
      handledByRestartedConsumer: consumer2.handled.length,
      runtimeMs: Date.now() - began,
    };
    console.log(`FAULT ${JSON.stringify(figures)}`);
    expect(producerExit.signal).toBe("SIGKILL");
    expect(consumerExit.signal).toBe("SIGKILL");
    expect(problems).toEqual([]);
    expect(ids.size).toBe(TOTAL);
    expect(bySubject.size).toBe(SUBJECTS);
    // The kills really landed mid-stream: the feed was not finished, the consumer held events, and
    // each of those came back to the restarted consumer.
    expect(publishedAtKill).toBeLessThan(TOTAL);
    expect(heldAtKill.length).toBeGreaterThan(0);
    const handledByRestarted = new Set(consumer2.handled);
    for (const n of heldAtKill) expect(handledByRestarted.has(n)).toBe(true);
    expect(consumer2.handled.length).toBeGreaterThan(0);

    consumer2.process.kill("SIGTERM");
    producer.process.kill("SIGTERM");
    expect((await consumer2.exited).code).toBe(0);
    expect((await producer.exited).code).toBe(0);
  } finally {
    for (const child of children) {
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill("SIGKILL");
    }
    await Promise.all(children.map((child) => child.exited));
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
