import type { Channel } from "amqplib";
import { describe, expect, it } from "vitest";
import { AckBatcher } from "../src/acks.js";

/** A channel that records the ack frames it would send: [deliveryTag, multiple]. */
function recordingChannel() {
  const frames: [number, boolean][] = [];
  const channel = {
    ack(message: { fields: { deliveryTag: number } }, multiple?: boolean) {
      frames.push([message.fields.deliveryTag, multiple ?? false]);
    },
  } as unknown as Channel;
  return { channel, frames };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("rabbitmq ack coalescing", () => {
  it("acks settled in order go out as one multiple ack per turn", async () => {
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel);
    for (let tag = 1; tag <= 100; tag++) acks.track(tag);
    for (let tag = 1; tag <= 100; tag++) acks.ack(tag);
    expect(frames).toEqual([]); // nothing before the turn ends
    await nextTurn();
    expect(frames).toEqual([[100, true]]);
  });

  it("an ack behind a delivery still in its handler is sent alone, at once, and never covered twice", async () => {
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel);
    for (let tag = 1; tag <= 5; tag++) acks.track(tag);
    acks.ack(1);
    acks.ack(2);
    acks.ack(4); // 3 is still pending
    await nextTurn();
    expect(frames).toEqual([
      [2, true],
      [4, false],
    ]);
    acks.ack(3);
    acks.ack(5);
    await nextTurn();
    // 3 and 5 are acked; 4 went already, so a multiple ack up to 5 covers only 3 and 5.
    expect(frames.slice(2)).toEqual([[5, true]]);
  });

  it("a delivery settled another way (a nack) ends the prefix but is never acked", async () => {
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel);
    for (let tag = 7; tag <= 10; tag++) acks.track(tag);
    acks.ack(7);
    acks.settledElsewhere(8);
    acks.settledElsewhere(10);
    acks.ack(9);
    await nextTurn();
    // Up to 9 in one frame (8 was nacked on its own already); 10 is the last and was nacked: no frame for it.
    expect(frames).toEqual([[9, true]]);
  });

  it("only nacks in a turn send no ack at all", async () => {
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel);
    acks.track(1);
    acks.track(2);
    acks.settledElsewhere(1);
    acks.ack(2);
    acks.flush();
    expect(frames).toEqual([[2, true]]);
    acks.track(3);
    acks.settledElsewhere(3);
    acks.flush();
    expect(frames).toEqual([[2, true]]);
  });

  it("keeps working across many turns and long runs (compaction of its buffers)", async () => {
    const { channel, frames } = recordingChannel();
    const acks = new AckBatcher(channel);
    acks.track(1); // held for the whole run
    for (let tag = 2; tag <= 5000; tag++) {
      acks.track(tag);
      acks.ack(tag);
      if (tag % 500 === 0) acks.flush();
    }
    acks.flush();
    expect(frames).toHaveLength(4999);
    expect(frames.every(([, multiple]) => !multiple)).toBe(true);
    acks.ack(1);
    acks.track(5001);
    acks.ack(5001);
    acks.flush();
    expect(frames.at(-1)).toEqual([5001, true]);
  });
});
