import { MemoryBroker, MemoryTransport } from "@switchyard/core/memory";
import { describe, it } from "vitest";
import { runBacklogScenario, runScenario } from "./scenario.js";

describe("otel on the in-memory transport (two buses, one broker)", () => {
  it("one trace from publish to process: parent, attributes, settlement events and metrics", async () => {
    const broker = new MemoryBroker();
    await runScenario({ system: "memory", bus: () => ({ transport: new MemoryTransport({ broker }) }) });
  });

  it("consumerSpan: link starts the consumer's own trace, linked to the producer span", async () => {
    const broker = new MemoryBroker();
    await runScenario(
      { system: "memory", bus: () => ({ transport: new MemoryTransport({ broker }) }) },
      { consumerSpan: "link" },
    );
  });

  it("the consumer-lag gauge reports the backlog the broker counts", async () => {
    const broker = new MemoryBroker();
    await runBacklogScenario({
      system: "memory",
      bus: () => ({ transport: new MemoryTransport({ broker }) }),
    });
  });
});
