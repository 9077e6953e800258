import type { Bus } from "@switchyard/core";
import { ApprovalService } from "./approval-service.js";
import { BlogService, type Post } from "./blog-service.js";

/** Runs the whole approval flow for two posts; each service has its own bus, as in production. */
export async function runFlow(blogBus: Bus, approvalBus: Bus, log: (line: string) => void): Promise<Post[]> {
  const blog = new BlogService(blogBus, log);
  const approval = new ApprovalService(approvalBus, log);
  await approval.start();
  await blog.start();
  const suffix = Date.now().toString(36);
  return Promise.all([
    blog.create({ blogId: `post-1-${suffix}`, title: "Queues vs pub/sub", body: "Two shapes of messaging." }),
    blog.create({ blogId: `post-2-${suffix}`, title: "Win big at the casino", body: "Click here." }),
  ]);
}
