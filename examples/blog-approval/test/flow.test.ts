import { createBus } from "@switchyard/core";
import { expect, it } from "vitest";
import { ApprovalService } from "../src/approval-service.js";
import { BlogService } from "../src/blog-service.js";
import { runFlow } from "../src/flow.js";

it("approves the clean post, rejects the spam, and logs every step in order", async () => {
  const url = `memory://demo-${Math.random()}`;
  const blogBus = createBus({ url, source: "blog-service" });
  const approvalBus = createBus({ url, source: "approval-service" });
  const lines: string[] = [];
  const posts = await runFlow(blogBus, approvalBus, (line) => lines.push(line));
  await Promise.all([blogBus.close(), approvalBus.close()]);
  expect(posts.map((p) => [p.title, p.published])).toEqual([
    ["Queues vs pub/sub", true],
    ["Win big at the casino", false],
  ]);
  const first = posts[0]!.blogId;
  const steps = lines.filter((l) => l.includes(first) || l.includes("Queues vs pub/sub"));
  expect(steps.map((l) => l.replace(/\s+/g, " "))).toEqual([
    '[blog] created "Queues vs pub/sub" (unpublished), published blog.created',
    `[approval] ${first}: To Do received "Queues vs pub/sub" (attempt 1)`,
    `[approval] ${first}: In Progress reviewing`,
    `[approval] ${first}: Done Approved, publishing blog.approval`,
    '[blog] "Queues vs pub/sub" is published (looks fine)',
  ]);
});

it("checks a draft title by request-reply, and reports no answer when nobody replies in time", async () => {
  const url = `memory://demo-${Math.random()}`;
  const blogBus = createBus({ url, source: "blog-service" });
  const approvalBus = createBus({ url, source: "approval-service" });
  const blog = new BlogService(blogBus, () => {});
  const approval = new ApprovalService(approvalBus, () => {});
  try {
    expect(await blog.checkTitle("draft-0", "Nobody reviews yet", 100)).toBeUndefined();
    await approval.answerTitleChecks();
    expect(await blog.checkTitle("draft-1", "Queues vs pub/sub")).toEqual({
      blogId: "draft-1",
      status: "Approved",
      reason: "looks fine",
    });
    expect((await blog.checkTitle("draft-2", "Casino night"))?.status).toBe("Rejected");
  } finally {
    await Promise.all([blogBus.close(), approvalBus.close()]);
  }
});
