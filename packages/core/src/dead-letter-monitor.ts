import type { Bus } from "./bus.js";
import type { DeadLetterQueue } from "./dead-letter-queue.js";
import { SwitchyardError } from "./errors.js";

/** A dead-letter queue to watch: a topic subscription's or a queue's. */
export type DeadLetterTarget = { topic: string; subscription: string } | { queue: string };

export interface DeadLetterSample {
  /** The DLQ's name (`deadLetterQueueName(source)`). */
  queue: string;
  depth: number;
}

export interface MonitorDeadLettersOptions {
  sources: readonly DeadLetterTarget[];
  /** Time between two rounds of counting. Default 60,000 ms (counting browses the queue). */
  intervalMs?: number;
  /** `onAlert` fires when a depth reaches this (and again after it fell below). Default 1. */
  threshold?: number;
  onAlert?(sample: DeadLetterSample): void;
  /** Every sample, e.g. to feed a gauge. */
  onSample?(sample: DeadLetterSample): void;
  /** A failed count (the broker is away): reported here, the monitor keeps going. */
  onError?(error: unknown, queue: string): void;
}

export interface DeadLetterMonitor {
  /** The last depth counted, by DLQ name. */
  readonly depths: ReadonlyMap<string, number>;
  /** Counts every DLQ now (also what each interval does). */
  check(): Promise<DeadLetterSample[]>;
  stop(): void;
}

/** Counts the dead letters of some sources every `intervalMs` and alerts above a threshold. */
export function monitorDeadLetters(bus: Bus, options: MonitorDeadLettersOptions): DeadLetterMonitor {
  const intervalMs = options.intervalMs ?? 60_000;
  const threshold = options.threshold ?? 1;
  if (!(intervalMs >= 100) || !(threshold >= 1)) {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `monitorDeadLetters needs intervalMs ≥ 100 and threshold ≥ 1, got ${intervalMs} and ${threshold}`,
    );
  }
  const queues: DeadLetterQueue[] = options.sources.map((target) =>
    "queue" in target
      ? bus.deadLetters({ queue: target.queue })
      : bus.deadLetters(target.topic, target.subscription),
  );
  const depths = new Map<string, number>();
  const alerting = new Set<string>();
  let running: Promise<DeadLetterSample[]> | undefined;
  let stopped = false;

  const countAll = async (): Promise<DeadLetterSample[]> => {
    const samples: DeadLetterSample[] = [];
    for (const dlq of queues) {
      if (stopped || bus.closed) break;
      let depth: number;
      try {
        depth = await dlq.depth();
      } catch (error) {
        options.onError?.(error, dlq.name);
        continue;
      }
      const sample = { queue: dlq.name, depth };
      depths.set(dlq.name, depth);
      samples.push(sample);
      options.onSample?.(sample);
      if (depth >= threshold) {
        if (!alerting.has(dlq.name)) {
          alerting.add(dlq.name);
          options.onAlert?.(sample);
        }
      } else alerting.delete(dlq.name);
    }
    return samples;
  };
  const check = (): Promise<DeadLetterSample[]> => {
    // One round at a time: a slow broker does not pile up browsers.
    running ??= countAll().finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void check(), intervalMs);
  timer.unref();
  return {
    depths,
    check,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
