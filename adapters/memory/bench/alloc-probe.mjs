// Allocation probe (issue 19, not part of `pnpm bench`): heap bytes allocated per message by the
// memory pipeline, publish and consume apart (1 KiB JSON, zod validation). Unlike rates and CPU
// time, allocation does not depend on what else the machine runs, so it resolves small changes on
// a loaded machine. Run it with a young generation large enough that nothing is collected during a
// phase, so heap growth is allocation (after `pnpm build`):
//   node --expose-gc --max-semi-space-size=1024 --min-semi-space-size=1024 adapters/memory/bench/alloc-probe.mjs
// Prints the minimum over PROBE_ROUNDS (5) phases of PROBE_N (10,000) messages each.
import { createBus, defineMessage } from "@switchyard/core";
import { z } from "zod";

if (!global.gc) throw new Error("run with --expose-gc (see the header)");
const N = Number(process.env.PROBE_N ?? 10_000);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 5);
const Order = defineMessage({
  type: "bench.order",
  versions: { 1: z.object({ id: z.number(), sentAt: z.number(), customer: z.string(), note: z.string() }) },
});
const NOTE = "x".repeat(1024 - 80);
const payload = (id) => ({ id, sentAt: 1, customer: `customer-${id % 1000}`, note: NOTE });
const bus = createBus({ url: "memory://alloc-probe", source: "probe" });

async function publish(queue) {
  await bus.send(queue, Order, payload(0)); // provisioned before the measured sends
  const sends = [];
  for (let i = 0; i < N; i++) sends.push(bus.send(queue, Order, payload(i)));
  await Promise.all(sends);
}

async function consume(queue) {
  let handled = 0;
  let done;
  const all = new Promise((resolve) => {
    done = resolve;
  });
  const consumer = await bus
    .consume(queue)
    .on(Order, async () => {
      if (++handled === N + 1) done();
    })
    .start({ concurrency: 64, prefetch: 256 });
  await all;
  await consumer.stop();
}

/** Heap and array-buffer bytes per message allocated by `run` (nothing is collected meanwhile). */
async function allocated(run) {
  global.gc();
  const before = process.memoryUsage();
  await run();
  const after = process.memoryUsage();
  return {
    heap: (after.heapUsed - before.heapUsed) / N,
    buffers: (after.arrayBuffers - before.arrayBuffers) / N,
  };
}

// Warm-up: the measured phases run optimized code.
for (let r = 0; r < 2; r++) {
  await publish(`warm-${r}`);
  await consume(`warm-${r}`);
}
const published = [];
const consumed = [];
for (let r = 0; r < ROUNDS; r++) {
  published.push(await allocated(() => publish(`probe-${r}`)));
  consumed.push(await allocated(() => consume(`probe-${r}`)));
}
const least = (xs, field) => Math.round(Math.min(...xs.map((x) => x[field])));
console.log(
  JSON.stringify({
    publishHeapBytes: least(published, "heap"),
    publishBufferBytes: least(published, "buffers"),
    consumeHeapBytes: least(consumed, "heap"),
    node: process.version,
  }),
);
await bus.close();
