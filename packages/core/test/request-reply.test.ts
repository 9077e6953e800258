import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  type Bus,
  createBus,
  defineMessage,
  isSwitchyardError,
  type Logger,
  type Transport,
} from "../src/index.js";
import { MemoryBroker, MemoryTransport } from "../src/memory/index.js";

const ReviewBlog = defineMessage({
  type: "blog.review-requested",
  versions: { 1: z.object({ blogId: z.string(), title: z.string() }) },
});
const ReviewResult = defineMessage({
  type: "blog.reviewed",
  versions: {
    1: z.object({ blogId: z.string(), ok: z.boolean() }),
    2: z.object({ blogId: z.string(), verdict: z.enum(["approved", "rejected"]) }),
  },
  upcast: {
    1: (v1: { blogId: string; ok: boolean }) => ({
      blogId: v1.blogId,
      verdict: v1.ok ? "approved" : "rejected",
    }),
  },
});

function pair(): { requester: Bus; responder: Bus; broker: MemoryBroker } {
  const broker = new MemoryBroker();
  return {
    broker,
    requester: createBus({ transport: new MemoryTransport({ broker }), source: "requester" }),
    responder: createBus({ transport: new MemoryTransport({ broker }), source: "reviewer" }),
  };
}

/** Collects debug lines so a test can wait for "reply dropped". */
function debugLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const noop = () => {};
  return { lines, debug: (_fields, message) => lines.push(message), info: noop, warn: noop, error: noop };
}

describe("request-reply", () => {
  it("request() resolves with the responder's typed reply, linked by causation and correlation ids", async () => {
    const { requester, responder } = pair();
    await responder
      .consume("reviews")
      .on(ReviewBlog, async (msg, ctx) => {
        await ctx.reply(ReviewResult, {
          blogId: msg.data.blogId,
          verdict: msg.data.title ? "approved" : "rejected",
        });
      })
      .start();
    const reply = await requester.request(
      "reviews",
      ReviewBlog,
      { blogId: "b1", title: "Hi" },
      {
        timeoutMs: 5000,
        replyType: ReviewResult,
      },
    );
    expect(reply.data).toEqual({ blogId: "b1", verdict: "approved" });
    expect(reply.type).toBe("blog.reviewed");
    expect(reply.source).toBe("reviewer");
    expect(reply.causationId).toBe(reply.correlationId); // the request's id, which started the flow
    expect(reply.replyTo).toBeUndefined();
    await Promise.all([requester.close(), responder.close()]);
  });

  it("keeps a caller's correlation id and upcasts an old reply version to the latest", async () => {
    const { requester, responder } = pair();
    let requestId = "";
    await responder
      .consume("reviews-v1")
      .on(ReviewBlog, async (msg, ctx) => {
        requestId = msg.id;
        expect(msg.replyTo).toMatch(/^switchyard-reply-/);
        await ctx.reply(ReviewResult, { blogId: msg.data.blogId, ok: false }, { version: 1 });
      })
      .start();
    const reply = await requester.request(
      "reviews-v1",
      ReviewBlog,
      { blogId: "b2", title: "" },
      {
        timeoutMs: 5000,
        replyType: ReviewResult,
        correlationId: "flow-42",
      },
    );
    expect(reply.data).toEqual({ blogId: "b2", verdict: "rejected" });
    expect(reply.schemaVersion).toBe(2);
    expect(reply.correlationId).toBe("flow-42");
    expect(reply.causationId).toBe(requestId);
    await Promise.all([requester.close(), responder.close()]);
  });

  it("matches many concurrent requests to their own replies, whatever order the replies come in", async () => {
    const { requester, responder } = pair();
    await responder
      .consume("echo")
      .on(ReviewBlog, async (msg, ctx) => {
        // Later requests answer sooner: replies come back out of order.
        await new Promise((r) => setTimeout(r, 50 - Number(msg.data.blogId)));
        await ctx.reply(ReviewResult, { blogId: msg.data.blogId, verdict: "approved" });
      })
      .start({ concurrency: 50 });
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, n) =>
        requester.request(
          "echo",
          ReviewBlog,
          { blogId: String(n), title: "t" },
          { timeoutMs: 5000, replyType: ReviewResult },
        ),
      ),
    );
    expect(replies.map((r) => r.data.blogId)).toEqual(Array.from({ length: 40 }, (_, n) => String(n)));
    await Promise.all([requester.close(), responder.close()]);
  });

  it("times out with TIMEOUT, drops the late reply silently, and serves the next request", async () => {
    const broker = new MemoryBroker();
    const logger = debugLog();
    const requester = createBus({ transport: new MemoryTransport({ broker }), logger });
    const responder = createBus({ transport: new MemoryTransport({ broker }) });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let slowReplied!: () => void;
    const slowReplySent = new Promise<void>((r) => (slowReplied = r));
    await responder
      .consume("slow-reviews")
      .on(ReviewBlog, async (msg, ctx) => {
        if (msg.data.title === "slow") {
          await released;
          await ctx.reply(ReviewResult, { blogId: msg.data.blogId, verdict: "approved" });
          slowReplied();
          return;
        }
        await ctx.reply(ReviewResult, { blogId: msg.data.blogId, verdict: "rejected" });
      })
      .start();
    const error = await requester
      .request("slow-reviews", ReviewBlog, { blogId: "late", title: "slow" }, { timeoutMs: 100 })
      .catch((e: unknown) => e);
    expect(isSwitchyardError(error, "TIMEOUT")).toBe(true);
    release();
    await slowReplySent;
    await expect.poll(() => logger.lines.includes("reply dropped"), { timeout: 5000 }).toBe(true);
    const next = await requester.request(
      "slow-reviews",
      ReviewBlog,
      { blogId: "next", title: "fast" },
      {
        timeoutMs: 5000,
        replyType: ReviewResult,
      },
    );
    expect(next.data).toEqual({ blogId: "next", verdict: "rejected" });
    await Promise.all([requester.close(), responder.close()]);
  });

  it("without replyType the reply's data is decoded by content type, typed unknown, and not checked", async () => {
    const { requester, responder } = pair();
    await responder
      .consume("untyped")
      .on(ReviewBlog, (msg, ctx) =>
        ctx.reply(ReviewResult, { blogId: msg.data.blogId, ok: true }, { version: 1 }),
      )
      .start();
    const reply = await requester.request(
      "untyped",
      ReviewBlog,
      { blogId: "b9", title: "x" },
      { timeoutMs: 5000 },
    );
    // @ts-expect-error: without replyType nothing is known about the data
    reply.data.blogId;
    expect(reply.data).toEqual({ blogId: "b9", ok: true }); // v1 as sent: no upcasting either
    expect(reply.schemaVersion).toBe(1);
    await Promise.all([requester.close(), responder.close()]);
  });

  it("rejects a reply of another type than replyType with UNKNOWN_MESSAGE_TYPE", async () => {
    const { requester, responder } = pair();
    await responder
      .consume("wrong-type")
      .on(ReviewBlog, (msg, ctx) => ctx.reply(ReviewBlog, msg.data))
      .start();
    const error = await requester
      .request(
        "wrong-type",
        ReviewBlog,
        { blogId: "b3", title: "x" },
        { timeoutMs: 5000, replyType: ReviewResult },
      )
      .catch((e: unknown) => e);
    expect(isSwitchyardError(error, "UNKNOWN_MESSAGE_TYPE")).toBe(true);
    await Promise.all([requester.close(), responder.close()]);
  });

  it("ctx.reply() on a message that is not a request is NOT_A_REQUEST", async () => {
    const bus = createBus(`memory://rr-${Math.random()}`);
    const errors: unknown[] = [];
    let handled!: () => void;
    const done = new Promise<void>((r) => (handled = r));
    await bus
      .consume("plain")
      .on(ReviewBlog, async (_msg, ctx) => {
        await ctx
          .reply(ReviewResult, { blogId: "b", verdict: "approved" })
          .catch((e: unknown) => errors.push(e));
        handled();
      })
      .start();
    await bus.send("plain", ReviewBlog, { blogId: "b4", title: "x" });
    await done;
    expect(errors).toHaveLength(1);
    expect(isSwitchyardError(errors[0], "NOT_A_REQUEST")).toBe(true);
    await bus.close();
  });

  it("refuses a bad timeout, fails waiting requests on close, and deletes the reply queue", async () => {
    const broker = new MemoryBroker();
    const inner = new MemoryTransport({ broker });
    const removed: string[] = [];
    const transport: Transport = {
      name: "memory",
      capabilities: inner.capabilities,
      provision: (entities) => inner.provision(entities),
      publish: (destination, messages) => inner.publish(destination, messages),
      subscribe: (source, options, deliver) => inner.subscribe(source, options, deliver),
      unprovision: async (entities) => {
        for (const entity of entities) removed.push(entity.name);
        await inner.unprovision(entities);
      },
      close: () => inner.close(),
    };
    const bus = createBus({ transport, replyQueue: "my-replies" });
    const bad = await bus
      .request("nobody-listens", ReviewBlog, { blogId: "b", title: "t" }, { timeoutMs: -1 })
      .catch((e: unknown) => e);
    expect(isSwitchyardError(bad, "CONFIG_INVALID")).toBe(true);
    expect(removed).toEqual([]);
    const waiting = bus
      .request("nobody-listens", ReviewBlog, { blogId: "b", title: "t" }, { timeoutMs: 60_000 })
      .catch((e: unknown) => e);
    await expect
      .poll(() => broker.depth({ kind: "queue", name: "nobody-listens", subscription: "nobody-listens" }))
      .toBe(1);
    await bus.close();
    expect(isSwitchyardError(await waiting, "CLOSED")).toBe(true);
    expect(removed).toEqual(["my-replies"]);
  });
});

describe("request-reply on a slow broker", () => {
  it("times out even while the request is still being sent, without an unhandled rejection", async () => {
    const inner = new MemoryTransport({ broker: new MemoryBroker() });
    const transport: Transport = {
      name: "slow",
      capabilities: inner.capabilities,
      provision: (entities) => inner.provision(entities),
      // Every publish takes 200 ms: longer than the request's timeout.
      publish: async (destination, messages) => {
        await new Promise((r) => setTimeout(r, 200));
        await inner.publish(destination, messages);
      },
      subscribe: (source, options, deliver) => inner.subscribe(source, options, deliver),
      close: () => inner.close(),
    };
    const bus = createBus({ transport });
    const started = Date.now();
    const error = await bus
      .request("slow-queue", ReviewBlog, { blogId: "b", title: "t" }, { timeoutMs: 20 })
      .catch((e: unknown) => e);
    expect(isSwitchyardError(error, "TIMEOUT")).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190); // the send's outcome is awaited first
    await bus.close();
  });
});

describe("tombstones", () => {
  it("are refused with CAPABILITY_MISSING where the transport has no compaction, and checked first", async () => {
    const bus = createBus(`memory://tomb-${Math.random()}`);
    const refused = await bus
      .publish("profiles", ReviewBlog, null, { key: "b1", tombstone: true })
      .catch((e: unknown) => e);
    expect(isSwitchyardError(refused, "CAPABILITY_MISSING")).toBe(true);
    const withData = await bus
      .publish("profiles", ReviewBlog, { blogId: "b", title: "t" } as never, { key: "b1", tombstone: true })
      .catch((e: unknown) => e);
    expect(isSwitchyardError(withData, "INVALID_PAYLOAD")).toBe(true);
    const noKey = await bus
      .publish("profiles", ReviewBlog, null, { tombstone: true } as never)
      .catch((e: unknown) => e);
    expect(isSwitchyardError(noKey, "CONFIG_INVALID")).toBe(true);
    await bus.close();
  });

  it("reach a typed handler unvalidated, with null data, on a transport that stores them", async () => {
    const inner = new MemoryTransport({ broker: new MemoryBroker(), contentMode: "structured" });
    const transport: Transport = {
      name: "compacting",
      capabilities: { ...inner.capabilities, tombstones: true },
      contentMode: "structured",
      provision: (entities) => inner.provision(entities),
      publish: (destination, messages) => inner.publish(destination, messages),
      subscribe: (source, options, deliver) => inner.subscribe(source, options, deliver),
      close: () => inner.close(),
    };
    const bus = createBus({ transport });
    const seen: Array<{ data: unknown; tombstone: boolean | undefined; key: string | undefined }> = [];
    await bus
      .subscribe("profiles", "reader")
      .on(ReviewBlog, (msg) => {
        seen.push({ data: msg.data, tombstone: msg.tombstone, key: msg.key });
      })
      .start();
    await bus.publish("profiles", ReviewBlog, { blogId: "b1", title: "t" }, { key: "b1" });
    const sent = await bus.publish("profiles", ReviewBlog, null, { key: "b1", tombstone: true });
    expect(sent.tombstone).toBe(true);
    await expect.poll(() => seen.length, { timeout: 5000 }).toBe(2);
    expect(seen[1]).toEqual({ data: null, tombstone: true, key: "b1" });
    expect(seen[0]!.tombstone).toBeUndefined();
    await bus.close();
  });
});
