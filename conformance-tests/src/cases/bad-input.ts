import { inspect } from "node:util";
import {
  type Bus,
  createBus,
  isSwitchyardError,
  type Logger,
  PermanentError,
  type WireMessage,
} from "@switchyard/core";
import { expect } from "vitest";
import type { CaseContext, ConformanceCase } from "../harness.js";
import { Recorder } from "../harness.js";
import { Ping } from "../messages.js";

/** The error `run` rejects (or throws) with; fails the case when it does not. */
async function refusal(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error("expected a refusal, but it went through");
}

async function expectCode(code: string, run: () => unknown): Promise<void> {
  const error = await refusal(run);
  expect(isSwitchyardError(error), `a SwitchyardError, got ${String(error)}`).toBe(true);
  expect((error as { code: string }).code).toBe(code);
}

/**
 * Proves that what was refused never reached the broker: a marker sent after the refusals is the
 * first and only message the queue's consumer sees.
 */
async function expectOnlyMarker(t: CaseContext, bus: Bus, queue: string): Promise<void> {
  const got = new Recorder<number>();
  await bus
    .consume(queue)
    .onAny(async (msg) => got.push((msg.data as { n?: number } | undefined)?.n ?? -1))
    .start();
  await bus.send(queue, Ping, { n: 424242 });
  await got.count(1, t.ms(15_000), "the marker");
  // Anything refused but sent anyway would have been published before the marker.
  expect(got.items[0]).toBe(424242);
  await bus.send(queue, Ping, { n: 424243 });
  await got.count(2, t.ms(15_000), "the second marker");
  expect(got.items).toEqual([424242, 424243]);
}

/** A user header, one per message, that some broker may not hold as it is. */
const ODD_HEADERS: Array<[string, string]> = [
  ["plain", "v"], // every broker holds it: it must not fail because another message in its batch does
  ["with space", "v"],
  ["colon:name", "v"],
  ["dot.ted-and_under", "v"],
  ["MixedCase", "v"],
  ["ünïcødé-名前", "v"],
  ["n".repeat(300), "v"],
  ["empty-value", ""],
  ["padded-value", "  spaces around  "],
  ["line-breaks", "one\ntwo\r\nthree"],
  ["colon-value", "a: b:c"],
  ["backslash-value", "C:\\path\\to"],
  ["unicode-value", "ünïcødé ✓ 😀"],
  ["long-value", "v".repeat(2000)],
];

/** A publish option of the wrong type or an empty one (a caller bypassing the types, e.g. from JS). */
const BAD_PUBLISH_OPTIONS: Record<string, unknown>[] = [
  { key: 42 },
  { key: "" },
  { id: "" },
  { id: { value: "x" } },
  { subject: {} },
  { correlationId: 7 },
  { causationId: null },
  { source: "" },
  { replyTo: ["q"] },
  { time: "yesterday" },
  { traceparent: 1 },
  { headers: "abc" },
  { headers: ["a", "b"] },
];

export const badInputCases: ConformanceCase[] = [
  {
    name: "bad input: data JSON cannot encode (a BigInt, a cycle, undefined) is INVALID_PAYLOAD and nothing is sent",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-payload");
      const destination = { kind: "queue" as const, name: queue };
      const cycle: Record<string, unknown> = { n: 1 };
      cycle.self = cycle;
      await expectCode("INVALID_PAYLOAD", () =>
        bus.publishRaw(destination, { type: "conformance.raw", data: { n: 10n } }),
      );
      await expectCode("INVALID_PAYLOAD", () =>
        bus.publishRaw(destination, { type: "conformance.raw", data: cycle }),
      );
      await expectCode("INVALID_PAYLOAD", () =>
        bus.publishRaw(destination, { type: "conformance.raw", data: undefined }),
      );
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: invalid header names and values are INVALID_HEADER and nothing is sent",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-headers");
      const send = (headers: Record<string, unknown>) =>
        bus.send(queue, Ping, { n: 1 }, { headers: headers as Record<string, string> });
      await expectCode("INVALID_HEADER", () => send({ "": "empty name" }));
      await expectCode("INVALID_HEADER", () => send({ ce_id: "reserved prefix" }));
      await expectCode("INVALID_HEADER", () => send({ CE_Type: "reserved, any case" }));
      await expectCode("INVALID_HEADER", () => send({ count: 3 }));
      await expectCode("INVALID_HEADER", () => send({ missing: undefined }));
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: more headers than the broker takes is TOO_MANY_HEADERS and nothing is sent",
    applies: (c) =>
      c.maxHeaders > 2000
        ? `maxHeaders is ${c.maxHeaders}: no limit to reach with a sane message`
        : undefined,
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("many-headers");
      const headers: Record<string, string> = {};
      for (let i = 0; i <= t.capabilities.maxHeaders; i++) headers[`h${i}`] = "v";
      await expectCode("TOO_MANY_HEADERS", () => bus.send(queue, Ping, { n: 1 }, { headers }));
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: a batch with one invalid message is refused whole; none of it is sent",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-batch");
      await expectCode("VALIDATION_FAILED", () =>
        bus.sendBatch(queue, Ping, [{ data: { n: 1 } }, { data: { n: "two" } as never }, { data: { n: 3 } }]),
      );
      await expectCode("INVALID_HEADER", () =>
        bus.sendBatch(queue, Ping, [
          { data: { n: 1 } },
          { data: { n: 2 }, options: { headers: { ce_source: "forged" } } },
        ]),
      );
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: consumer options out of range are CONFIG_INVALID and nothing is consumed",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-options");
      const taken = new Recorder<number>();
      const start = (options: Record<string, unknown>) =>
        bus
          .consume(queue)
          .on(Ping, async (msg) => taken.push(msg.data.n))
          .start(options as never);
      const bad: Record<string, unknown>[] = [
        { concurrency: 0 },
        { concurrency: Number.NaN },
        { concurrency: 1.5 },
        { concurrency: -4 },
        { prefetch: 0 },
        { prefetch: Number.POSITIVE_INFINITY },
        { retry: { maxAttempts: 0 } },
        { retry: { maxAttempts: Number.NaN } },
        { retry: { initialDelayMs: -1 } },
        { retry: { maxDelayMs: Number.NaN } },
        { retry: { multiplier: 0.5 } },
        { retry: { jitter: 2 } },
        { stopTimeoutMs: -1 },
        { stopTimeoutMs: Number.NaN },
        { stopTimeoutMs: 2 ** 31 },
        { stopTimeoutMs: "5000" },
      ];
      for (const options of bad) {
        const error = await refusal(() => start(options));
        expect(
          isSwitchyardError(error, "CONFIG_INVALID"),
          `${JSON.stringify(options)}: ${String(error)}`,
        ).toBe(true);
      }
      // None of the refused consumers subscribed: the one valid consumer gets every message.
      const good = new Recorder<number>();
      await bus
        .consume(queue)
        .on(Ping, async (msg) => good.push(msg.data.n))
        .start();
      await bus.sendBatch(
        queue,
        Ping,
        [1, 2, 3].map((n) => ({ data: { n } })),
      );
      await good.count(3, t.ms(15_000));
      expect(good.items.sort()).toEqual([1, 2, 3]);
      expect(taken.items).toEqual([]);
    },
  },
  {
    name: "bad input: ctx.nack with a negative, non-finite or too long delay is CONFIG_INVALID; the message can still be settled",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-delay");
      const codes = new Recorder<string>();
      const handled = new Recorder<number>();
      await bus
        .consume(queue)
        .on(Ping, async (msg, ctx) => {
          for (const delayMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, t.capabilities.maxDelayMs + 1]) {
            const error = await refusal(() => ctx.nack({ delayMs }));
            codes.push(isSwitchyardError(error) ? error.code : String(error));
          }
          handled.push(ctx.attempt);
          await ctx.ack(); // the refusals did not settle it
          void msg;
        })
        .start();
      await bus.send(queue, Ping, { n: 1 });
      await handled.count(1, t.ms(15_000));
      expect(codes.items).toEqual(["CONFIG_INVALID", "CONFIG_INVALID", "CONFIG_INVALID", "CONFIG_INVALID"]);
      // Acked at its first attempt: it never comes back.
      await bus.send(queue, Ping, { n: 2 });
      await handled.count(2, t.ms(15_000));
      expect(handled.items).toEqual([1, 1]);
    },
  },
  {
    name: "bad input: a handler that rejects with a non-Error is retried, then dead-lettered describing what it threw",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("non-error");
      const dead = new Recorder<string>();
      const hooked = await t.bus({ hooks: { onDeadLetter: (e) => dead.push(e.envelope!.id) } });
      const thrown: Record<number, unknown> = { 1: "a bare string", 2: { code: 42 }, 3: undefined };
      await hooked
        .consume(queue)
        .on(Ping, async (msg) => {
          throw thrown[msg.data.n];
        })
        .start({ retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 50 } });
      await bus.sendBatch(
        queue,
        Ping,
        [1, 2, 3].map((n) => ({ data: { n } })),
      );
      await dead.count(3, t.ms(20_000));
      const letters = await bus.deadLetters({ queue }).list({ idleMs: t.ms(1000) });
      const byN = new Map(letters.map((l) => [(l.envelope?.data as { n: number } | undefined)?.n, l]));
      for (const n of [1, 2, 3]) {
        expect(byN.get(n)?.reason, `message ${n}`).toBe("max-attempts");
        expect(byN.get(n)?.attempts, `message ${n}`).toBe(2);
        expect(byN.get(n)?.error?.type, `message ${n}`).toBe("NonError");
      }
      expect(byN.get(1)?.error?.message).toBe("a bare string");
      expect(byN.get(2)?.error?.message).toBe('{"code":42}');
      expect(byN.get(3)?.error?.message).toBe("undefined");
    },
  },
  {
    name: "bad input: a body claiming to be a structured CloudEvent that is not one is dead-lettered as decode; the consumer goes on",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-structured");
      const got = new Recorder<number>();
      await bus
        .consume(queue)
        .on(Ping, async (msg) => got.push(msg.data.n))
        .start({ retry: { maxAttempts: 2, initialDelayMs: 10 } });
      const transport = await bus.transport();
      const forged = (label: string, body: string): WireMessage => ({
        id: `forged-${label}-${t.runId}`,
        headers: { "content-type": "application/cloudevents+json" },
        body: new TextEncoder().encode(body),
      });
      await transport.publish({ kind: "queue", name: queue }, [
        forged("not-json", "{ this is not json"),
        forged("array", "[1, 2, 3]"),
        forged("no-id", JSON.stringify({ specversion: "1.0", type: "x", source: "y", data: {} })),
        forged("specversion", JSON.stringify({ specversion: "0.3", id: "1", type: "x", source: "y" })),
      ]);
      await bus.send(queue, Ping, { n: 9 });
      await got.count(1, t.ms(15_000));
      // The good message can overtake the forged ones' dead letters (on a loaded machine, or where
      // the DLQ is written after the settlement): list until all four are there.
      const dlq = bus.deadLetters({ queue });
      const deadline = Date.now() + t.ms(20_000);
      let letters = await dlq.list({ idleMs: t.ms(1000) });
      while (letters.length < 4 && Date.now() < deadline) letters = await dlq.list({ idleMs: t.ms(1000) });
      expect(letters.map((l) => l.reason)).toEqual(["decode", "decode", "decode", "decode"]);
      expect(letters.every((l) => l.error?.type === "SwitchyardError")).toBe(true);
      expect(got.items).toEqual([9]);
    },
  },
  {
    name: "bad input: publishing, sending and consuming on a closed bus is CLOSED",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("closed");
      await bus.send(queue, Ping, { n: 1 }); // connected and provisioned first
      await bus.close();
      await expectCode("CLOSED", () => bus.send(queue, Ping, { n: 2 }));
      await expectCode("CLOSED", () => bus.publish(t.name("closed-topic"), Ping, { n: 3 }));
      await expectCode("CLOSED", () => bus.sendBatch(queue, Ping, [{ data: { n: 4 } }]));
      await expectCode("CLOSED", () =>
        bus
          .consume(queue)
          .on(Ping, async () => {})
          .start(),
      );
      // What was sent before the close is still there for another bus; what was refused is not.
      const other = await t.bus();
      const got = new Recorder<number>();
      await other
        .consume(queue)
        .on(Ping, async (msg) => got.push(msg.data.n))
        .start();
      await other.send(queue, Ping, { n: 5 });
      await got.count(2, t.ms(15_000));
      expect(got.items.sort()).toEqual([1, 5]);
    },
  },
  {
    name: "bad input: malformed and unknown URLs are CONFIG_INVALID or UNKNOWN_SCHEME; their credentials never show in errors or logs",
    async run(t) {
      const secret = `s3cret${t.runId}`;
      const logged: unknown[] = [];
      const record = (...args: unknown[]) => logged.push(args);
      const logger: Logger = { debug: record, info: record, warn: record, error: record };
      const cases: Array<[string, string]> = [
        [`kafka://admin:${secret}@[::1`, "CONFIG_INVALID"], // unclosed IPv6 bracket
        [`amqp://admin:${secret}@127.0.0.1:99999/`, "CONFIG_INVALID"], // port out of range
        [`not a url admin:${secret}@host`, "CONFIG_INVALID"],
        [`nosuch://admin:${secret}@127.0.0.1:1/x`, "UNKNOWN_SCHEME"],
        [`nosuch://127.0.0.1:1/x?password=${secret}`, "UNKNOWN_SCHEME"],
      ];
      for (const [url, code] of cases) {
        const error = await refusal(() => createBus({ url, logger }));
        expect(isSwitchyardError(error, code as never), `${code} expected, got ${String(error)}`).toBe(true);
        // The whole error as a log would print it: message, stack, details and causes.
        expect(inspect(error, { depth: 10 })).not.toContain(secret);
      }
      expect(inspect(logged, { depth: 10 })).not.toContain(secret);
      // Nothing above touched the broker under test; it still works.
      const bus = await t.bus();
      const queue = t.name("bad-url");
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: credentials in a handler's error never reach the dead letter",
    async run(t) {
      const secret = `s3cret${t.runId}`;
      const dead = new Recorder<string>();
      const bus = await t.bus({ hooks: { onDeadLetter: (e) => dead.push(String(e.error)) } });
      const queue = t.name("secret-dl");
      await bus
        .consume(queue)
        .on(Ping, async () => {
          throw new PermanentError(`cannot reach postgres://app:${secret}@10.0.0.1:5432/orders`);
        })
        .start();
      await bus.send(queue, Ping, { n: 1 });
      await dead.count(1, t.ms(15_000), "the dead letter");
      const letters = await bus.deadLetters({ queue }).list({ idleMs: t.ms(1000) });
      expect(letters).toHaveLength(1);
      expect(letters[0]!.error?.message).toContain("postgres://app:***@10.0.0.1:5432/orders");
      expect(inspect(letters, { depth: 10 })).not.toContain(secret);
    },
  },
  {
    name: "bad input: a header value larger than the broker takes is MESSAGE_TOO_LARGE and nothing is sent",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("big-header");
      await bus.send(queue, Ping, { n: 0 }).then(
        () => undefined,
        () => undefined,
      ); // connect and provision, so the refusal below is the publish's own
      const drain = await t.bus();
      const seen = new Recorder<number>();
      await drain
        .consume(queue)
        .on(Ping, async (msg) => seen.push(msg.data.n))
        .start();
      await seen.count(1, t.ms(15_000));
      await drain.close();
      const huge = "h".repeat(t.capabilities.maxMessageBytes + 1);
      await expectCode("MESSAGE_TOO_LARGE", () =>
        bus.send(queue, Ping, { n: 1 }, { headers: { "x-huge": huge } }),
      );
      await expectCode("MESSAGE_TOO_LARGE", () =>
        bus.sendBatch(queue, Ping, [
          { data: { n: 2 } },
          { data: { n: 3 }, options: { headers: { "x-huge": huge } } },
        ]),
      );
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: queue and topic names the broker may not hold round-trip or are refused with a code; empty is CONFIG_INVALID",
    async run(t) {
      const bus = await t.bus();
      await expectCode("CONFIG_INVALID", () => bus.send("", Ping, { n: 0 }));
      await expectCode("CONFIG_INVALID", () => bus.publish("", Ping, { n: 0 }));
      await expectCode("CONFIG_INVALID", () =>
        bus
          .consume("")
          .on(Ping, async () => {})
          .start(),
      );
      await expectCode("CONFIG_INVALID", () =>
        bus
          .subscribe(t.name("empty-sub"), "")
          .on(Ping, async () => {})
          .start(),
      );
      const odd = ["with space", "slash/ed", "colon:and#hash", "ünïcødé", "x".repeat(300)];
      await Promise.all(
        odd.map(async (suffix, i) => {
          const queue = `${t.name(`odd${i}`)}-${suffix}`;
          const got = new Recorder<number>();
          const consumed = await Promise.resolve()
            .then(() =>
              bus
                .consume(queue)
                .on(Ping, async (msg) => got.push(msg.data.n))
                .start(),
            )
            .then(
              () => undefined,
              (error: unknown) => error,
            );
          const sent = await bus.send(queue, Ping, { n: i }).then(
            () => undefined,
            (error: unknown) => error,
          );
          for (const error of [consumed, sent]) {
            if (error !== undefined) {
              expect(isSwitchyardError(error), `${JSON.stringify(suffix)}: ${String(error)}`).toBe(true);
            }
          }
          // Accepted on both sides: it arrives, under the name it was sent to.
          if (consumed === undefined && sent === undefined) {
            await got.count(1, t.ms(15_000), `the message on ${JSON.stringify(suffix)}`);
            expect(got.items).toEqual([i]);
          }
        }),
      );
    },
  },
  {
    name: "bad input: starting one consumer twice makes two competing consumers; each message is handled once",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("double-start");
      const handled = new Recorder<string>();
      const builder = bus.consume(queue).on(Ping, async (msg) => handled.push(`${msg.data.n}`));
      const first = await builder.start({ concurrency: 2 });
      const second = await builder.start({ concurrency: 2 });
      expect(second).not.toBe(first);
      await bus.sendBatch(
        queue,
        Ping,
        Array.from({ length: 40 }, (_, n) => ({ data: { n } })),
      );
      await handled.count(40, t.ms(20_000));
      await first.stop();
      await bus.send(queue, Ping, { n: 40 });
      await handled.count(41, t.ms(15_000), "the message after one of them stopped");
      expect(new Set(handled.items).size).toBe(41);
      expect(handled.length).toBe(41);
    },
  },
  {
    name: "bad input: handler registrations that cannot work are refused at once with a code",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-registration");
      await expectCode("CONFIG_INVALID", () => bus.consume(queue).start());
      await expectCode("CONFIG_INVALID", () => bus.consume(queue).on(Ping, "not a function" as never));
      await expectCode("CONFIG_INVALID", () =>
        bus
          .consume(queue)
          .on(Ping, async () => {})
          .on(Ping, async () => {}),
      );
      await expectCode("UNKNOWN_VERSION", () =>
        bus.consume(queue).on(Ping, { versions: [7 as never] }, async () => {}),
      );
      // Nothing was subscribed by the refused consumers: the marker is the only message seen.
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: settling a message twice is ALREADY_SETTLED and it is handled once",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("settle-twice");
      const handled = new Recorder<number>();
      const second = new Recorder<string>();
      await bus
        .consume(queue)
        .on(Ping, async (msg, ctx) => {
          handled.push(msg.data.n);
          if (msg.data.n !== 1) return;
          await ctx.ack();
          for (const again of [() => ctx.ack(), () => ctx.nack(), () => ctx.deadLetter("late")]) {
            const error = await refusal(again);
            second.push(isSwitchyardError(error, "ALREADY_SETTLED") ? "ALREADY_SETTLED" : String(error));
          }
        })
        .start();
      await bus.send(queue, Ping, { n: 1 });
      await second.count(3, t.ms(15_000));
      await bus.send(queue, Ping, { n: 2 });
      await handled.count(2, t.ms(15_000));
      expect(second.items).toEqual(["ALREADY_SETTLED", "ALREADY_SETTLED", "ALREADY_SETTLED"]);
      expect(handled.items).toEqual([1, 2]);
      expect(await bus.deadLetters({ queue }).list({ idleMs: t.ms(500) })).toEqual([]);
    },
  },
  {
    name: "bad input: browsing dead letters with a bad limit or idle time is CONFIG_INVALID and removes nothing",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-browse");
      const dead = new Recorder<string>();
      const consumer = await t.bus({ hooks: { onDeadLetter: (e) => dead.push(e.reason) } });
      await consumer
        .consume(queue)
        .on(Ping, async (_msg, ctx) => ctx.deadLetter("for the browser"))
        .start();
      await bus.send(queue, Ping, { n: 1 });
      await dead.count(1, t.ms(15_000));
      const dlq = bus.deadLetters({ queue });
      for (const options of [{ limit: 0 }, { limit: 1.5 }, { idleMs: -1 }, { idleMs: Number.NaN }]) {
        await expectCode("CONFIG_INVALID", () => dlq.list(options));
        await expectCode("CONFIG_INVALID", () => dlq.redrive(options));
        await expectCode("CONFIG_INVALID", () => dlq.purge(options));
      }
      const letters = await dlq.list({ idleMs: t.ms(1000) });
      expect(letters.map((l) => l.reasonText)).toEqual(["for the browser"]);
    },
  },
  {
    name: "bad input: header names and values a broker may not hold round-trip exactly or are refused with a code; none is half-sent",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("odd-headers");
      const got = new Recorder<{ n: number; headers: Record<string, string> }>();
      await bus
        .consume(queue)
        .on(Ping, async (msg) => got.push({ n: msg.data.n, headers: msg.headers }))
        .start({ concurrency: 4 });
      const outcomes = await Promise.all(
        ODD_HEADERS.map(([name, value], n) =>
          bus.send(queue, Ping, { n }, { headers: { [name]: value } }).then(
            () => "sent" as const,
            (error: unknown) => error,
          ),
        ),
      );
      expect(outcomes[0], "the plain header, published beside the odd ones").toBe("sent");
      const sent: number[] = [];
      outcomes.forEach((outcome, n) => {
        const label = JSON.stringify(ODD_HEADERS[n]![0].slice(0, 40));
        if (outcome === "sent") sent.push(n);
        else expect(isSwitchyardError(outcome), `${label}: ${String(outcome)}`).toBe(true);
      });
      await got.count(sent.length, t.ms(20_000), `the ${sent.length} accepted messages`);
      // Every accepted header arrived as it was sent (name and value), nothing else did.
      const received = new Map(got.items.map((item) => [item.n, item.headers]));
      for (const n of sent) {
        const [name, value] = ODD_HEADERS[n]!;
        expect(received.get(n), `header ${JSON.stringify(name.slice(0, 40))}`).toEqual({ [name]: value });
      }
      await bus.send(queue, Ping, { n: 999 });
      await got.count(sent.length + 1, t.ms(15_000), "the marker");
      expect(got.items.map((item) => item.n).sort((a, b) => a - b)).toEqual([...sent, 999]);
    },
  },
  {
    name: "bad input: publish options of the wrong type or empty (key, id, subject, time, headers…) are refused with a code and nothing is sent",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-publish-options");
      for (const options of BAD_PUBLISH_OPTIONS) {
        const error = await refusal(() => bus.send(queue, Ping, { n: 1 }, options as never));
        expect(isSwitchyardError(error), `${JSON.stringify(options)}: ${String(error)}`).toBe(true);
        expect(["CONFIG_INVALID", "INVALID_HEADER"]).toContain((error as { code: string }).code);
      }
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: a batch with one body over the size limit is MESSAGE_TOO_LARGE whole; none of it is sent",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("big-in-batch");
      const text = "x".repeat(t.capabilities.maxMessageBytes + 1);
      await expectCode("MESSAGE_TOO_LARGE", () =>
        bus.sendBatch(queue, Ping, [{ data: { n: 1 } }, { data: { n: 2, text } }, { data: { n: 3 } }]),
      );
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: a body that fits alone but not with its headers is MESSAGE_TOO_LARGE and nothing is sent",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("big-with-headers");
      // The body leaves room for the envelope's own attributes; the user header does not fit beside it.
      const text = "x".repeat(t.capabilities.maxMessageBytes - 1024);
      const headers = { "x-extra": "h".repeat(2048) };
      await expectCode("MESSAGE_TOO_LARGE", () => bus.send(queue, Ping, { n: 1, text }, { headers }));
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: CloudEvents headers from a foreign producer that do not make an event (wrong specversion, missing type, bad version, undecodable body) are dead-lettered as decode; the consumer goes on",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-binary");
      const got = new Recorder<number>();
      await bus
        .consume(queue)
        .on(Ping, async (msg) => got.push(msg.data.n))
        .start({ retry: { maxAttempts: 2, initialDelayMs: 10 } });
      const transport = await bus.transport();
      // Binary mode, as a foreign CloudEvents producer would write it, with one thing wrong each.
      const forged = (
        label: string,
        change: Record<string, string | undefined>,
        body: string | Uint8Array,
      ) => {
        const headers: Record<string, string> = {};
        const all = {
          ce_id: `forged-${label}-${t.runId}`,
          ce_type: Ping.type,
          ce_source: "foreign",
          ce_specversion: "1.0",
          ce_schemaversion: "1",
          ...change,
        };
        for (const [name, value] of Object.entries(all)) if (value !== undefined) headers[name] = value;
        const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
        return { id: all.ce_id, headers, body: bytes } satisfies WireMessage;
      };
      await transport.publish({ kind: "queue", name: queue }, [
        forged("specversion", { ce_specversion: "0.3" }, '{"n":1}'),
        forged("no-type", { ce_type: undefined }, '{"n":2}'),
        forged("version", { ce_schemaversion: "two" }, '{"n":3}'),
        forged("not-json", { ce_datacontenttype: "application/json" }, "{ not json"),
        forged("not-utf8", { ce_datacontenttype: "application/json" }, new Uint8Array([0xff, 0xfe, 0x7b])),
      ]);
      await bus.send(queue, Ping, { n: 9 });
      await got.count(1, t.ms(15_000));
      const dlq = bus.deadLetters({ queue });
      const deadline = Date.now() + t.ms(20_000);
      let letters = await dlq.list({ idleMs: t.ms(1000) });
      while (letters.length < 5 && Date.now() < deadline) letters = await dlq.list({ idleMs: t.ms(1000) });
      expect(letters.map((l) => l.reason)).toEqual(["decode", "decode", "decode", "decode", "decode"]);
      expect(got.items).toEqual([9]);
    },
  },
  {
    name: "bad input: a handler that never settles while its bus closes: close ends within the stop timeout and the message is redelivered",
    async run(t) {
      const first = await t.bus();
      const queue = t.name("hung-close");
      const started = new Recorder<number>();
      let release: () => void = () => {};
      const hung = new Promise<void>((resolve) => {
        release = resolve;
      });
      const stopTimeoutMs = t.ms(500);
      await first
        .consume(queue)
        .on(Ping, async (msg) => {
          started.push(msg.data.n);
          await hung; // never, until the case lets it go at the end
        })
        .start({ stopTimeoutMs });
      try {
        await first.send(queue, Ping, { n: 1 });
        await started.count(1, t.ms(15_000));
        let timer: NodeJS.Timeout | undefined;
        const closed = await Promise.race([
          first.close().then(() => "closed"),
          new Promise((resolve) => {
            timer = setTimeout(() => resolve("still closing"), stopTimeoutMs + t.ms(20_000));
          }),
        ]);
        clearTimeout(timer);
        expect(closed).toBe("closed");
        expect(first.closed).toBe(true);
        const second = await t.bus();
        const handled = new Recorder<number>();
        await second
          .consume(queue)
          .on(Ping, async (msg) => handled.push(msg.data.n))
          .start();
        await handled.count(1, t.ms(30_000), "the message left unsettled by the closed bus");
        release(); // the hung handler returns now, on a closed bus: it must not settle or throw anything
        await second.send(queue, Ping, { n: 2 });
        await handled.count(2, t.ms(15_000));
        expect(handled.items).toEqual([1, 2]);
      } finally {
        release();
      }
    },
  },
  {
    name: "bad input: request() with a bad timeout or queue is CONFIG_INVALID and sends nothing",
    async run(t) {
      const bus = await t.bus();
      const queue = t.name("bad-request");
      for (const timeoutMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, "1000", 2 ** 31]) {
        const error = await refusal(() => bus.request(queue, Ping, { n: 1 }, { timeoutMs } as never));
        expect(isSwitchyardError(error, "CONFIG_INVALID"), `${String(timeoutMs)}: ${String(error)}`).toBe(
          true,
        );
      }
      await expectCode("CONFIG_INVALID", () => bus.request("", Ping, { n: 1 }));
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: bus and batch-handler options out of range are CONFIG_INVALID at once",
    async run(t) {
      for (const coalesce of [
        { lingerMs: -1 },
        { lingerMs: Number.NaN },
        { lingerMs: 5000 },
        { maxMessages: 0 },
        { maxMessages: 2.5 },
      ]) {
        const transport = await t.target.createTransport();
        try {
          const error = await refusal(() => createBus({ transport, coalesce }));
          expect(
            isSwitchyardError(error, "CONFIG_INVALID"),
            `${JSON.stringify(coalesce)}: ${String(error)}`,
          ).toBe(true);
        } finally {
          await transport.close();
        }
      }
      const bus = await t.bus();
      const queue = t.name("bad-batch-options");
      for (const options of [
        { maxMessages: 0 },
        { maxMessages: 1.5 },
        { maxWaitMs: -1 },
        { maxWaitMs: Number.NaN },
        { maxWaitMs: 120_000 },
      ]) {
        const error = await refusal(() => bus.consume(queue).onBatch(Ping, options, async () => {}));
        expect(
          isSwitchyardError(error, "CONFIG_INVALID"),
          `${JSON.stringify(options)}: ${String(error)}`,
        ).toBe(true);
      }
      await expectOnlyMarker(t, bus, queue);
    },
  },
  {
    name: "bad input: a plain (non-async) handler that throws is retried, then dead-lettered; one that returns a value acks",
    async run(t) {
      const dead = new Recorder<string>();
      const bus = await t.bus({ hooks: { onDeadLetter: (e) => dead.push(e.reason) } });
      const queue = t.name("sync-handler");
      const attempts = new Recorder<number>();
      await bus
        .consume(queue)
        .on(Ping, (msg, ctx) => {
          attempts.push(msg.data.n);
          if (msg.data.n === 1) throw new Error(`sync failure at attempt ${ctx.attempt}`);
          return 42 as never; // not a promise, not undefined
        })
        .start({ retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 50 } });
      await bus.sendBatch(queue, Ping, [{ data: { n: 1 } }, { data: { n: 2 } }]);
      await dead.count(1, t.ms(20_000), "the dead letter");
      await bus.send(queue, Ping, { n: 3 });
      await attempts.until((items) => items.includes(3), t.ms(15_000), "the message after");
      // At least once: a broker may hand a message over again, but only message 1 is dead-lettered.
      expect(dead.items).toEqual(["max-attempts"]);
      expect(attempts.items.filter((n) => n === 1).length).toBeGreaterThanOrEqual(2);
      expect(attempts.items).toContain(2);
      const letters = await bus.deadLetters({ queue }).list({ idleMs: t.ms(1000) });
      expect(letters.map((l) => l.error?.message)).toEqual(["sync failure at attempt 2"]);
    },
  },
];
