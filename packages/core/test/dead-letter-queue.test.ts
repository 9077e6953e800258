import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createBus, defineMessage, type Source, type TopologyEntity, type Transport } from "../src/index.js";
import { MemoryBroker, MemoryTransport } from "../src/memory/index.js";

const Job = defineMessage({ type: "job", versions: { 1: z.object({ n: z.number() }) } });

describe("dead-letter queue on a transport that keeps dead letters itself", () => {
  it("lists and redrives from transport.deadLetterSource(source); neither browser nor consumer creates the core's DLQ queue", async () => {
    const transport: Transport & Pick<MemoryTransport, "provision"> = new MemoryTransport({
      broker: new MemoryBroker(),
    });
    const provisioned: string[] = [];
    const provision = transport.provision.bind(transport);
    transport.provision = async (entities: TopologyEntity[]) => {
      for (const entity of entities) if (entity.kind === "queue") provisioned.push(entity.name);
      return provision(entities);
    };
    const asked: Source[] = [];
    // The "native" DLQ of queue `jobs` is the queue `jobs-native-dl` here.
    transport.deadLetterSource = (source: Source) => {
      asked.push(source);
      return { kind: "queue", name: `${source.name}-native-dl`, subscription: `${source.name}-native-dl` };
    };
    const bus = createBus({ transport });
    // A letter the broker put there itself: no fault headers.
    await bus.send("jobs-native-dl", Job, { n: 7 });
    const dlq = bus.deadLetters({ queue: "jobs" });
    const letters = await dlq.list({ idleMs: 50 });
    expect(letters.map((l) => [l.envelope?.data, l.reason])).toEqual([[{ n: 7 }, "max-attempts"]]);
    expect(asked).toEqual([{ kind: "queue", name: "jobs", subscription: "jobs" }]);
    // Browsing did not create the core's DLQ queue `jobs.dlq`.
    expect(provisioned).toEqual(["jobs-native-dl"]);
    expect(await dlq.location()).toBe("jobs-native-dl");
    expect(dlq.name).toBe("jobs.dlq");
    const handled: number[] = [];
    await bus
      .consume("jobs")
      .on(Job, async (msg) => {
        handled.push(msg.data.n);
      })
      .start();
    // Nor did the consumer: its dead letters go where the broker keeps them.
    expect(provisioned).not.toContain("jobs.dlq");
    expect(await dlq.redrive({ idleMs: 50 })).toBe(1);
    await expect.poll(() => handled).toEqual([7]);
    expect(await dlq.list({ idleMs: 50 })).toEqual([]);
    await bus.close();
  });
});
