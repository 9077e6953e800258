// Small helpers every `pnpm bench NAME` script uses: in-flight pools, paced sends, percentiles and
// bounded waits. Benchmarks only — nothing here is product code.

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The p-th percentile (0–100) of `values`. */
export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `task(0 … total-1)` with at most `inFlight` at once. */
export async function pool(total, inFlight, task) {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) await task(next++);
    }),
  );
}

/** Paced sends: message i leaves at start + i/rate; resolves once every send has settled. */
export async function paced(total, rate, send) {
  const start = performance.now();
  const pending = [];
  for (let i = 0; i < total; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(send(i));
  }
  await Promise.all(pending);
}

/** A promise that resolves when `done()` is called, bounded so a lost message cannot hang the run. */
export function completion(what, progress, ms = 90_000) {
  let done;
  let timer;
  const promise = new Promise((resolve, reject) => {
    done = resolve;
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms at ${progress()}`)), ms);
  }).finally(() => clearTimeout(timer));
  return { promise, done };
}

/**
 * A minimal Standard Schema (what zod or valibot provide) that checks the `typeof` of each named
 * field, as a user's schema would, without a validation library's cost in the figures.
 */
export function shapeSchema(fields) {
  const checks = Object.entries(fields);
  return {
    "~standard": {
      version: 1,
      vendor: "bench",
      validate: (value) =>
        value && checks.every(([name, type]) => typeof value[name] === type)
          ? { value }
          : { issues: [{ message: "not a bench message" }] },
    },
  };
}

/**
 * Runs `run()`; with BENCH_PROFILE=DIR set, records a CPU profile of just that phase into
 * DIR/LABEL.cpuprofile (read it with `node scripts/profile-summary.mjs`), so the consume phase of a
 * bench can be profiled without its publish and latency phases mixed in.
 */
export async function profiled(label, run) {
  const dir = process.env.BENCH_PROFILE;
  if (!dir) return run();
  const { Session } = await import("node:inspector/promises");
  const { mkdirSync, writeFileSync } = await import("node:fs");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 100 });
  await session.post("Profiler.start");
  try {
    return await run();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/${label}.cpuprofile`, JSON.stringify(profile));
    session.disconnect();
  }
}

/** The median of `values` (the upper middle one of an even count). */
export const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * Runs each side (`{ raw: (round) => …, switchyard: (round) => … }`) once per round, alternating
 * which goes first, and returns each side's results by round. On a shared machine a slow spell then
 * falls on both sides alike, and the median of each figure over the rounds is what a bench reports.
 */
export async function interleaved(rounds, sides) {
  const names = Object.keys(sides);
  const results = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) results[name][round] = await sides[name](round);
  }
  return results;
}

/** The median over `results` (one object per round) of each field that is a number in every round. */
export function medians(results) {
  const out = {};
  for (const field of Object.keys(results[0])) {
    const values = results.map((result) => result[field]);
    if (values.every((value) => typeof value === "number")) out[field] = median(values);
  }
  return out;
}
