import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { createBus, monitorDeadLetters, SwitchyardError } from "@switchyard/core";
import { MemoryBroker, MemoryTransport } from "@switchyard/core/memory";
import { createSqliteOutbox } from "@switchyard/outbox/sqlite";
import { describe, expect, it } from "vitest";
import {
  consumerLagGauge,
  deadLetterDepthGauge,
  formatTraceparent,
  otel,
  outboxLagGauge,
  parseTraceContext,
} from "../src/index.js";
import { Job, telemetry } from "./scenario.js";

const TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

describe("trace context", () => {
  it("parses and formats W3C traceparent/tracestate, refusing malformed ones", () => {
    const context = parseTraceContext(TP, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")!;
    expect(context).toMatchObject({
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
      isRemote: true,
    });
    expect(context.traceState?.get("congo")).toBe("t61rcWkgMzE");
    expect(formatTraceparent(context)).toBe(TP);
    for (const bad of [
      "garbage",
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
      `${TP}-extra`,
    ]) {
      expect(parseTraceContext(bad), bad).toBeUndefined();
    }
  });
});

describe("otel()", () => {
  it("continues a trace the caller put on the message when no span is active; messaging/dup adds the old names", async () => {
    const t = telemetry();
    const bus = createBus({
      url: `memory://otel-${Math.random()}`,
      instrumentation: otel({ ...t, semconvStabilityOptIn: "http,messaging/dup" }),
    });
    const envelope = await bus.send("q", Job, { n: 1 }, { traceparent: TP });
    const [span] = t.exporter.getFinishedSpans();
    expect(span!.name).toBe("send q");
    expect(span!.spanContext().traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(span!.parentSpanContext?.spanId).toBe("b7ad6b7169203331");
    expect(envelope.traceparent).toBe(`00-0af7651916cd43dd8448eb211c80319c-${span!.spanContext().spanId}-01`);
    expect(span!.attributes).toMatchObject({
      "messaging.operation.name": "send",
      "messaging.operation": "publish",
      "messaging.destination": "q",
      "messaging.destination_kind": "queue",
      "messaging.message_id": envelope.id,
    });
    await bus.sendBatch("q", Job, [{ data: { n: 2 } }, { data: { n: 3 } }]);
    const batch = t.exporter.getFinishedSpans()[1]!;
    expect(batch.attributes["messaging.batch.message_count"]).toBe(2);
    expect(batch.attributes["messaging.message.id"]).toBeUndefined();
    await bus.close();
  });

  it("records a publish the broker refused as an error and counts it with error.type", async () => {
    const t = telemetry();
    const transport = new MemoryTransport({ broker: new MemoryBroker() });
    transport.publish = () => Promise.reject(new SwitchyardError("TRANSPORT_ERROR", "refused"));
    const bus = createBus({ transport, instrumentation: otel(t) });
    await expect(bus.send("q", Job, { n: 1 })).rejects.toThrow("refused");
    const [span] = t.exporter.getFinishedSpans();
    expect(span!.status.code).toBe(2); // ERROR
    expect(span!.attributes["error.type"]).toBe("TRANSPORT_ERROR");
    expect(span!.events.map((e) => e.name)).toEqual(["exception"]);
    expect(await t.total("messaging.client.sent.messages", { "error.type": "TRANSPORT_ERROR" })).toBe(1);
    expect(await t.total("messaging.client.sent.messages")).toBe(1);
    await bus.close();
  });

  it("feeds the DLQ depth a monitor counted into a gauge", async () => {
    const t = telemetry();
    const bus = createBus(`memory://otel-${Math.random()}`);
    await bus
      .consume("w")
      .on(Job, (_m, ctx) => ctx.deadLetter())
      .start();
    await bus.send("w", Job, { n: 1 });
    await bus.send("w", Job, { n: 2 });
    const monitor = monitorDeadLetters(bus, { sources: [{ queue: "w" }], intervalMs: 60_000 });
    await expect.poll(async () => (await monitor.check())[0]?.depth, { timeout: 5000 }).toBe(2);
    const stop = deadLetterDepthGauge(monitor, { meterProvider: t.meterProvider, system: "memory" });
    const points = await t.points("switchyard.messaging.dead_letter.depth");
    expect(points.map((p) => [p.attributes["messaging.destination.name"], p.value])).toEqual([["w.dlq", 2]]);
    stop();
    monitor.stop();
    await bus.close();
  });

  it("leaves a source whose backlog cannot be read out of the lag gauge, and reports the error", async () => {
    const t = telemetry();
    const transport = new MemoryTransport({ broker: new MemoryBroker() });
    let asked = 0;
    transport.backlog = async (source) => {
      asked++;
      if (source.name === "down") throw new SwitchyardError("TRANSPORT_ERROR", "broker away");
      return 7;
    };
    const bus = createBus({ transport });
    const errors: string[] = [];
    const stop = consumerLagGauge(bus, {
      sources: [{ queue: "up" }, { queue: "down" }],
      meterProvider: t.meterProvider,
      onError: (error, source) =>
        errors.push(`${"queue" in source ? source.queue : ""}: ${(error as SwitchyardError).code}`),
    });
    const points = await t.points("switchyard.messaging.consumer.lag");
    expect(points.map((p) => [p.attributes, p.value])).toEqual([
      [{ "messaging.system": "memory", "messaging.destination.name": "up" }, 7],
    ]);
    expect(errors).toEqual(["down: TRANSPORT_ERROR"]);
    expect(asked).toBe(2);
    stop(); // the broker is not asked any more
    await t.points("switchyard.messaging.consumer.lag");
    expect(asked).toBe(2);
    await bus.close();
  });

  it("reports an outbox's unsent rows, their age and parked rows; an outbox that cannot be read is left out", async () => {
    const t = telemetry();
    const dir = mkdtempSync(join(tmpdir(), "otel-outbox-"));
    const path = join(dir, "app.db");
    const outbox = createSqliteOutbox({ path, table: "orders_outbox" });
    await outbox.install();
    const db = new DatabaseSync(path);
    db.exec("BEGIN");
    await outbox.send(db, "jobs", Job, { n: 1 });
    await outbox.send(db, "jobs", Job, { n: 2 });
    db.exec("COMMIT");
    // An old row, and one parked: as a relay leaves them.
    db.prepare("UPDATE orders_outbox SET created_at = ? WHERE seq = 1").run(Date.now() - 90_000);
    db.exec("BEGIN");
    await outbox.send(db, "jobs", Job, { n: 3 });
    db.exec("COMMIT");
    db.prepare("UPDATE orders_outbox SET failed_at = ?, attempts = 5 WHERE seq = 3").run(Date.now());
    let asked = 0;
    const broken = {
      table: "broken_outbox",
      lag: async () => {
        asked++;
        throw new SwitchyardError("TRANSPORT_ERROR", "database away");
      },
    };
    const errors: string[] = [];
    const stop = outboxLagGauge({
      outboxes: [outbox, broken],
      meterProvider: t.meterProvider,
      onError: (error, source) => errors.push(`${source.table}: ${(error as SwitchyardError).code}`),
    });
    const table = { "switchyard.outbox.table": "orders_outbox" };
    const lag = await t.points("switchyard.outbox.lag");
    expect(lag.map((p) => [p.attributes, p.value])).toEqual([[table, 2]]);
    const [age] = await t.points("switchyard.outbox.lag.age");
    expect(age!.attributes).toEqual(table);
    expect(age!.value).toBeGreaterThanOrEqual(90);
    expect(age!.value).toBeLessThan(120);
    const parked = await t.points("switchyard.outbox.parked");
    expect(parked.map((p) => [p.attributes, p.value])).toEqual([[table, 1]]);
    expect(errors[0]).toBe("broken_outbox: TRANSPORT_ERROR");
    const before = asked;
    stop(); // the databases are not asked any more
    await t.points("switchyard.outbox.lag");
    expect(asked).toBe(before);
    db.close();
    outbox.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
