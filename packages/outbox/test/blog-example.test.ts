// The worked example of docs/outbox.md: the blog-approval demo's blog service saves a post and
// publishes `blog.created` through the outbox in one transaction. The doc quotes this file.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { type Bus, createBus, defineMessage } from "@switchyard/core";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createOutbox, type Outbox } from "../src/index.js";

// The demo's message and topic (examples/blog-approval/src/messages.ts), repeated here because the
// example app is not a dependency of this package.
const BlogCreated = defineMessage({
  type: "blog.created",
  versions: { 1: z.object({ blogId: z.string(), title: z.string(), body: z.string() }) },
});
const BLOG_EVENTS = "blog-events";

// --- example: create-post
/** Saves the post and writes `blog.created` in the same transaction: both commit, or neither. */
async function createPost(
  pool: pg.Pool,
  outbox: Outbox,
  post: { blogId: string; title: string; body: string },
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("INSERT INTO blog_posts (blog_id, title, body) VALUES ($1, $2, $3)", [
      post.blogId,
      post.title,
      post.body,
    ]);
    await outbox.publish(client, BLOG_EVENTS, BlogCreated, post, { key: post.blogId });
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  } finally {
    client.release();
  }
}
// --- end

describe("docs/outbox.md", () => {
  it("quotes this file's examples verbatim", () => {
    const doc = readFileSync(new URL("../../../docs/outbox.md", import.meta.url), "utf8");
    const source = readFileSync(new URL(import.meta.url), "utf8");
    const regions = [...source.matchAll(/^( *)\/\/ --- example: ([\w-]+)\n([\s\S]*?)^ *\/\/ --- end$/gm)];
    expect(regions.map((r) => r[2])).toEqual(["create-post", "approval-side", "relay"]);
    for (const [, indent, name, body] of regions) {
      const code = body!
        .split("\n")
        .map((line) => line.slice(indent!.length))
        .join("\n");
      expect(doc.includes(`\`\`\`ts\n${code}\`\`\``), `region ${name} differs from docs/outbox.md`).toBe(
        true,
      );
    }
  });
});

describeWithBroker(
  "postgres",
  "docs/outbox.md: the blog service saves and publishes through the outbox",
  () => {
    // Each run gets its own schema: the posts table and the outbox table live in it.
    const schema = `blog_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const pool = new pg.Pool({
      connectionString: brokerEndpoint("postgres").url,
      options: `-c search_path=${schema}`,
      max: 4,
    });
    pool.on("error", () => {});
    const outbox = createOutbox({ pool, table: `${schema}.switchyard_outbox`, source: "blog-service" });
    const bus: Bus = createBus({ url: `memory://${schema}`, source: "blog-service" });

    beforeAll(async () => {
      await pool.query(`CREATE SCHEMA ${schema}`);
      await pool.query(
        "CREATE TABLE blog_posts (blog_id text PRIMARY KEY, title text NOT NULL, body text NOT NULL)",
      );
      await outbox.install();
    });
    afterAll(async () => {
      await bus.close();
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await pool.end();
    });

    it("a saved post's blog.created reaches the approval service; a failed save sends nothing", async () => {
      // --- example: approval-side
      const reviewed: string[] = [];
      await bus
        .subscribe(BLOG_EVENTS, "approval-service")
        .on(BlogCreated, async ({ data }) => {
          reviewed.push(data.blogId);
        })
        .start({ idempotency: true }); // the envelope id is the idempotency key: a resent row is dropped
      // --- end

      const first = { blogId: `post-${randomUUID()}`, title: "Hello", body: "First post" };
      await createPost(pool, outbox, first);
      // Committed, not yet sent: the lag figure counts it.
      expect((await outbox.lag()).unsent).toBe(1);

      // Saving the same post again fails on the posts table's key: the transaction rolls back, no event.
      await expect(createPost(pool, outbox, { ...first, title: "Again" })).rejects.toMatchObject({
        code: "23505", // unique_violation
      });
      expect((await outbox.lag()).unsent).toBe(1);

      // --- example: relay
      const relay = outbox.relay(bus, { batchSize: 100, intervalMs: 1_000, onError: console.error });
      await relay.elected; // this process holds the advisory lock: it is the one relay sending
      // --- end
      await expect.poll(() => reviewed).toEqual([first.blogId]);
      await expect.poll(() => outbox.lag()).toEqual({ unsent: 0, oldestAgeMs: 0, parked: 0 });
      expect(relay.stats).toMatchObject({ leader: true, sent: 1 });

      // Sent while the relay runs: woken by NOTIFY, no poll wait needed.
      const second = { blogId: `post-${randomUUID()}`, title: "More", body: "Second post" };
      await createPost(pool, outbox, second);
      await expect.poll(() => reviewed).toEqual([first.blogId, second.blogId]);
      await relay.stop();
      expect(relay.stats).toMatchObject({ leader: false, sent: 2 });
      const saved = await pool.query("SELECT blog_id FROM blog_posts ORDER BY blog_id");
      expect(saved.rows.map((r) => r.blog_id).sort()).toEqual([first.blogId, second.blogId].sort());
    });

    it("a publish that follows the insert rolls back with it: neither the post nor the event exists", async () => {
      const blogId = `post-${randomUUID()}`;
      // The post's insert succeeds (PostgreSQL stores 42 as text), then publish refuses the data
      // (body must be a string) with VALIDATION_FAILED; createPost rolls back, so the post is gone too.
      await expect(
        createPost(pool, outbox, { blogId, title: "Bad body", body: 42 as unknown as string }),
      ).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
      const saved = await pool.query("SELECT 1 FROM blog_posts WHERE blog_id = $1", [blogId]);
      expect(saved.rowCount).toBe(0);
      expect((await outbox.lag()).unsent).toBe(0);
    });
  },
);
