import { BYTES_CONTENT_TYPE, isSwitchyardError, type Message, type WireMessage } from "@switchyard/core";
import { expect } from "vitest";
import { type ConformanceCase, Recorder } from "../harness.js";
import { Ping } from "../messages.js";

const HEADER_OVERHEAD = 4096;

export const envelopeCases: ConformanceCase[] = [
  {
    name: "payloads round-trip byte-exact: empty, every byte value, unicode, near the size limit",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("payloads");
      const got = new Recorder<{ id: string; body: Uint8Array }>();
      await bus
        .consume(queue)
        .onAny(async (_msg, ctx) => got.push({ id: ctx.wire.id, body: ctx.wire.body }))
        .start();
      const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      const unicode = new TextEncoder().encode("Grüße, 世界! 🚀 \u0000 \u202e end");
      const largeSize = Math.min(t.capabilities.maxMessageBytes, 1024 * 1024) - HEADER_OVERHEAD;
      const large = Uint8Array.from({ length: largeSize }, (_, i) => (i * 31 + 7) & 0xff);
      const payloads = { empty: new Uint8Array(0), allBytes, unicode, large };
      const sent = new Map<string, Uint8Array>();
      for (const [name, data] of Object.entries(payloads)) {
        const envelope = await bus.publishRaw(
          { kind: "queue", name: queue },
          { type: `conformance.bytes.${name}`, dataContentType: BYTES_CONTENT_TYPE, data },
        );
        sent.set(envelope.id, data);
      }
      await got.count(sent.size, t.ms(15_000), "all payloads");
      for (const { id, body } of got.items) {
        expect(Buffer.from(body).equals(Buffer.from(sent.get(id)!)), `payload of ${id}`).toBe(true);
      }
    },
  },
  {
    name: "every envelope field and 50 user headers round-trip exactly",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("envelope");
      const got = new Recorder<Message>();
      await bus
        .consume(queue)
        .on(Ping, async (msg) => got.push(msg))
        .start();
      const headers: Record<string, string> = {};
      for (let i = 0; i < 50; i++) headers[`x-header-${i}`] = `value ${i} ü ${"=".repeat(i % 5)}`;
      const maxHeaders = t.capabilities.maxHeaders;
      const userHeaders = Object.fromEntries(Object.entries(headers).slice(0, Math.max(0, maxHeaders - 20)));
      const options = {
        id: `id-${t.runId}`,
        key: "key-ü-1",
        subject: "subject/42",
        correlationId: "corr-1",
        causationId: "cause-1",
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate: "congo=t61rcWkgMzE",
        time: "2026-01-02T03:04:05.678Z",
        source: "svc/conformance",
        headers: userHeaders,
      };
      const published = await bus.send(queue, Ping, { n: 1, text: "héllo" }, options);
      const [received] = await got.count(1, t.ms(10_000), "the message");
      expect(received).toEqual({ ...published, data: { n: 1, text: "héllo" } });
      expect(received!.headers).toEqual(userHeaders);
      if (maxHeaders >= 70) expect(Object.keys(received!.headers)).toHaveLength(50);
    },
  },
  {
    name: "a message over the size limit is refused with MESSAGE_TOO_LARGE and nothing is sent",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("too-large");
      const got = new Recorder<string>();
      await bus
        .consume(queue)
        .onAny(async (msg) => got.push(msg.type))
        .start();
      const tooBig = new Uint8Array(t.capabilities.maxMessageBytes + 1);
      const error = await bus
        .publishRaw(
          { kind: "queue", name: queue },
          { type: "conformance.big", dataContentType: BYTES_CONTENT_TYPE, data: tooBig },
        )
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(isSwitchyardError(error, "MESSAGE_TOO_LARGE"), String(error)).toBe(true);
      await bus.send(queue, Ping, { n: 2 });
      await got.count(1, t.ms(10_000));
      expect(got.items).toEqual([Ping.type]);
    },
  },
  {
    name: "a message that is not a CloudEvent (a foreign producer) is dead-lettered as decode; the consumer goes on",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("garbage");
      const got = new Recorder<number>();
      await bus
        .consume(queue)
        .on(Ping, async (msg) => got.push(msg.data.n))
        .start({ retry: { maxAttempts: 2, initialDelayMs: 10 } });
      const transport = await bus.transport();
      const garbage: WireMessage = {
        id: `garbage-${t.runId}`,
        headers: { foreign: "yes" },
        body: new Uint8Array([1, 2, 3]),
      };
      await transport.publish({ kind: "queue", name: queue }, [garbage]);
      await bus.send(queue, Ping, { n: 7 });
      await got.count(1, t.ms(10_000));
      const letters = await bus.deadLetters({ queue }).list({ idleMs: t.ms(1000) });
      expect(letters.map((l) => l.reason)).toEqual(["decode"]);
      expect(Buffer.from(letters[0]!.message.body)).toEqual(Buffer.from([1, 2, 3]));
      expect(letters[0]!.message.headers.foreign).toBe("yes");
    },
  },
];
