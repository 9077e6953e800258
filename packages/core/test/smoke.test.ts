import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createBus, defineMessage, PermanentError } from "../src/index.js";

const BlogCreated = defineMessage({
  type: "blog.created",
  versions: {
    1: z.object({ blogId: z.string(), title: z.string() }),
    2: z.object({ blogId: z.string(), title: z.string(), authorId: z.string() }),
  },
  upcast: { 1: (v1) => ({ ...v1, authorId: "unknown" }) },
});

describe("smoke", () => {
  it("publishes and handles, with retries and a dead letter", async () => {
    const bus = createBus(`memory://smoke-${Math.random()}`);
    const seen: string[] = [];
    let failures = 0;
    await bus
      .subscribe("blog", "approval")
      .on(BlogCreated, async (msg, ctx) => {
        if (msg.data.title === "boom") {
          failures++;
          throw new Error("nope");
        }
        if (msg.data.title === "perm") throw new PermanentError("never");
        seen.push(`${msg.data.blogId}:${msg.data.authorId}:${ctx.attempt}`);
      })
      .start({ retry: { initialDelayMs: 1, maxAttempts: 3 } });
    await bus.publish("blog", BlogCreated, { blogId: "b1", title: "hi", authorId: "a" });
    await bus.publish("blog", BlogCreated, { blogId: "b0", title: "old" }, { version: 1 });
    await bus.publish("blog", BlogCreated, { blogId: "b2", title: "boom", authorId: "a" });
    await bus.publish("blog", BlogCreated, { blogId: "b3", title: "perm", authorId: "a" });
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.sort()).toEqual(["b0:unknown:1", "b1:a:1"]);
    expect(failures).toBe(3);
    const letters = await bus.deadLetters("blog", "approval").list({ idleMs: 50 });
    expect(letters.map((l) => l.reason).sort()).toEqual(["handler-error", "max-attempts"]);
    await bus.close();
  });
});
