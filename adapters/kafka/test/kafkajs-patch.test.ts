// kafkajs 2.2.4 schedules its "pending requests" check with `throttledUntil - Date.now()`; unthrottled,
// throttledUntil is -1, so every fulfilled request set a timer of about -Date.now() ms, which Node 24
// reports as `TimeoutNegativeWarning: -1796480351383 is a negative number` (seen on every Kafka run
// with the kafkajs driver). patches/kafkajs@2.2.4.patch clamps the delay at 0; this test drives the
// queue exactly as a fulfilled request does and fails on the unpatched client.
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const RequestQueue = require("kafkajs/src/network/requestQueue/index.js");
const silent = { debug() {}, info() {}, warn() {}, error() {} };

describe("kafkajs request queue (patched)", () => {
  it("schedules its pending-request check without a negative timeout", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    const queue = new RequestQueue({
      instrumentationEmitter: null,
      maxInFlightRequests: 1,
      requestTimeout: 30_000,
      enforceRequestTimeout: true,
      clientId: "patch-test",
      broker: "127.0.0.1:9092",
      logger: silent,
    });
    try {
      expect(queue.throttledUntil).toBeLessThan(Date.now()); // not throttled
      queue.checkPendingRequests(); // what fulfillRequest() calls after every response
      expect(queue.throttleCheckTimeoutId).not.toBeNull();
      // Node emits the warning on the next tick; the scheduled check itself runs after ≤ 1 ms.
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(warnings.filter((w) => w.name === "TimeoutNegativeWarning")).toEqual([]);
    } finally {
      clearTimeout(queue.throttleCheckTimeoutId);
      process.off("warning", onWarning);
    }
  });
});
