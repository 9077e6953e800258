import { isSwitchyardError, type Logger, type Message } from "@switchyard/core";
import { expect } from "vitest";
import { type ConformanceCase, Recorder } from "../harness.js";
import { Ping, Pong } from "../messages.js";

/** A logger that records its debug lines, so a case can wait for one. */
function recordingLogger(into: Recorder<string>): Logger {
  const ignore = () => {};
  return { debug: (_fields, message) => into.push(message), info: ignore, warn: ignore, error: ignore };
}

export const requestReplyCases: ConformanceCase[] = [
  {
    name: "request-reply: concurrent requests from another bus each get their own typed reply",
    async run(t) {
      const queue = t.name("requests");
      const [requester, responder] = [
        // A reply queue of the case's names, so the target's teardown finds it where the adapter
        // cannot delete it on close (STOMP has no unprovision).
        await t.bus({ source: "requester", replyQueue: t.name("replies") }),
        await t.bus({ source: "responder" }),
      ];
      const requestIds = new Map<number, string>();
      await responder
        .consume(queue)
        .on(Ping, async (msg, ctx) => {
          requestIds.set(msg.data.n, msg.id);
          await ctx.reply(Pong, { n: msg.data.n * 10, by: "responder" });
        })
        .start({ concurrency: 4 });
      const count = 6;
      const replies = await Promise.all(
        Array.from({ length: count }, (_, n) =>
          requester.request(queue, Ping, { n }, { timeoutMs: t.ms(30_000), replyType: Pong }),
        ),
      );
      replies.forEach((reply, n) => {
        expect(reply.type).toBe(Pong.type);
        expect(reply.data).toEqual({ n: n * 10, by: "responder" });
        expect(reply.source).toBe("responder");
        expect(reply.causationId, `reply ${n} names its request`).toBe(requestIds.get(n));
        expect(reply.correlationId).toBe(requestIds.get(n));
      });
    },
  },
  {
    name: "request-reply: a request times out with TIMEOUT, its late reply is dropped, the next one works",
    async run(t) {
      const queue = t.name("slow-requests");
      const debug = new Recorder<string>();
      const requester = await t.bus({ logger: recordingLogger(debug), replyQueue: t.name("replies") });
      const responder = await t.bus();
      let timedOut!: () => void;
      const requesterGaveUp = new Promise<void>((resolve) => (timedOut = resolve));
      const answered = new Recorder<number>();
      await responder
        .consume(queue)
        .on(Ping, async (msg, ctx) => {
          // The first request is answered only once its requester has given up on it.
          if (msg.data.n === 0) await requesterGaveUp;
          await ctx.reply(Pong, { n: msg.data.n, by: "responder" });
          answered.push(msg.data.n);
        })
        .start();
      // The first request also creates the reply queue and subscribes to it, which takes a while on
      // some brokers: the timeout must still fire before any reply could arrive (the responder waits).
      const error = await requester
        .request(queue, Ping, { n: 0 }, { timeoutMs: t.ms(1_000), replyType: Pong })
        .catch((e: unknown) => e);
      expect(isSwitchyardError(error, "TIMEOUT"), `expected TIMEOUT, got ${String(error)}`).toBe(true);
      timedOut();
      await answered.until((items) => items.includes(0), t.ms(20_000), "the late reply to be sent");
      await debug.until(
        (lines) => lines.includes("reply dropped"),
        t.ms(20_000),
        "the late reply to be dropped",
      );
      const reply: Message<{ n: number; by: string }> = await requester.request(
        queue,
        Ping,
        { n: 1 },
        { timeoutMs: t.ms(30_000), replyType: Pong },
      );
      expect(reply.data).toEqual({ n: 1, by: "responder" });
    },
  },
  {
    name: "tombstones: delivered with null data where the transport stores them, else CAPABILITY_MISSING",
    async run(t) {
      const bus = await t.bus();
      const topic = t.name("tombstones");
      if (!t.capabilities.tombstones) {
        const error = await bus
          .publish(topic, Ping, null, { key: "k1", tombstone: true })
          .catch((e: unknown) => e);
        expect(
          isSwitchyardError(error, "CAPABILITY_MISSING"),
          `expected CAPABILITY_MISSING, got ${String(error)}`,
        ).toBe(true);
        return;
      }
      const got = new Recorder<Message>();
      await bus
        .subscribe(topic, "reader")
        .on(Ping, async (msg) => got.push(msg))
        .start();
      await bus.publish(topic, Ping, { n: 1 }, { key: "k1" });
      const tombstone = await bus.publish(topic, Ping, null, { key: "k1", tombstone: true });
      await got.count(2, t.ms(20_000));
      const deleted = got.items.find((m) => m.id === tombstone.id);
      expect(deleted, "the tombstone arrives").toBeDefined();
      expect({ data: deleted!.data, tombstone: deleted!.tombstone, key: deleted!.key }).toEqual({
        data: null,
        tombstone: true,
        key: "k1",
      });
      expect(got.items.find((m) => m.id !== tombstone.id)?.tombstone).toBeUndefined();
    },
  },
];
