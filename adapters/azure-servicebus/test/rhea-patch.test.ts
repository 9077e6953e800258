// rhea 3.0.5 (the AMQP client under @azure/service-bus) sends the settlements of consecutive
// deliveries as one disposition range, and checked that the outcomes match only from the third
// delivery of a range on: two deliveries settled in the same turn went out with the FIRST one's
// outcome. Completing one message and dead-lettering the next therefore completed both (the dead
// letter was lost), and two dead letters got the first one's reason. patches/rhea@3.0.5.patch
// checks every delivery; this test settles pairs in one turn against the emulator and fails on the
// unpatched client.
import { ServiceBusClient } from "@azure/service-bus";
import { type ServiceBusEmulator, startEmulator } from "@switchyard/servicebus-emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let emulator: ServiceBusEmulator;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startEmulator({
    port: 0,
    adminPort: 0,
    config: { queues: [{ name: "pair-complete-dl" }, { name: "pair-dl-dl" }] },
  });
  client = new ServiceBusClient(emulator.connectionString);
});
afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

/** Sends `bodies` to `queue` and receives them all on one peek-lock receiver, in order. */
async function receiveAll(queue: string, bodies: string[]) {
  const sender = client.createSender(queue);
  await sender.sendMessages(bodies.map((body) => ({ body })));
  await sender.close();
  const receiver = client.createReceiver(queue, { receiveMode: "peekLock" });
  const got = [];
  while (got.length < bodies.length) {
    got.push(...(await receiver.receiveMessages(bodies.length - got.length, { maxWaitTimeInMs: 5000 })));
  }
  got.sort((a, b) => Number(a.sequenceNumber) - Number(b.sequenceNumber));
  return { receiver, got };
}

async function deadLetters(queue: string, expected: number) {
  const receiver = client.createReceiver(queue, {
    subQueueType: "deadLetter",
    receiveMode: "receiveAndDelete",
  });
  const got = [];
  const until = Date.now() + 5000;
  while (got.length < expected && Date.now() < until) {
    got.push(
      ...(await receiver.receiveMessages(expected - got.length, { maxWaitTimeInMs: until - Date.now() })),
    );
  }
  // Nothing more than expected: a second look after the last one came finds the sub-queue empty.
  got.push(...(await receiver.receiveMessages(5, { maxWaitTimeInMs: 300 })));
  await receiver.close();
  return got;
}

describe("rhea dispositions (patched)", () => {
  it("a message completed and the next dead-lettered in one turn: one completed, one dead letter", async () => {
    const { receiver, got } = await receiveAll("pair-complete-dl", ["keep-going", "poison"]);
    await Promise.all([
      receiver.completeMessage(got[0]!),
      receiver.deadLetterMessage(got[1]!, { deadLetterReason: "poison", deadLetterErrorDescription: "bad" }),
    ]);
    await receiver.close();
    const letters = await deadLetters("pair-complete-dl", 1);
    expect(letters.map((l) => l.body)).toEqual(["poison"]);
    expect(letters[0]!.deadLetterReason).toBe("poison");
  });

  it("two messages dead-lettered in one turn keep their own reasons", async () => {
    const { receiver, got } = await receiveAll("pair-dl-dl", ["a", "b"]);
    await Promise.all([
      receiver.deadLetterMessage(got[0]!, { deadLetterReason: "reason-a", deadLetterErrorDescription: "A" }),
      receiver.deadLetterMessage(got[1]!, { deadLetterReason: "reason-b", deadLetterErrorDescription: "B" }),
    ]);
    await receiver.close();
    const letters = await deadLetters("pair-dl-dl", 2);
    const reasons = Object.fromEntries(letters.map((l) => [l.body, l.deadLetterReason]));
    expect(reasons).toEqual({ a: "reason-a", b: "reason-b" });
  });
});
