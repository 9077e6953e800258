import type { Bus } from "@switchyard/core";
import {
  APPROVAL_EVENTS,
  BLOG_EVENTS,
  BlogApproval,
  BlogCreated,
  CheckTitle,
  TITLE_CHECKS,
} from "./messages.js";

export type TaskState = "To Do" | "In Progress" | "Done";

const BANNED = ["spam", "casino"];

/** Reviews new posts: a task moves To Do → In Progress → Done, then a verdict is published. */
export class ApprovalService {
  readonly tasks = new Map<string, TaskState>();

  constructor(
    readonly bus: Bus,
    readonly log: (line: string) => void,
  ) {}

  async start(): Promise<void> {
    await this.bus
      .subscribe(BLOG_EVENTS, "approval-service")
      .on(BlogCreated, async ({ data }, ctx) => {
        this.#move(data.blogId, "To Do", `received "${data.title}" (attempt ${ctx.attempt})`);
        this.#move(data.blogId, "In Progress", "reviewing");
        const banned = BANNED.find((word) => `${data.title} ${data.body}`.toLowerCase().includes(word));
        const status = banned ? "Rejected" : "Approved";
        const reason = banned ? `mentions "${banned}"` : "looks fine";
        this.#move(data.blogId, "Done", `${status}, publishing blog.approval`);
        await this.bus.publish(
          APPROVAL_EVENTS,
          BlogApproval,
          { blogId: data.blogId, status, reason },
          { key: data.blogId, causationId: ctx.wire.id, correlationId: data.blogId },
        );
      })
      .start();
  }

  /** Answers instant title checks (request-reply): the same verdict, on the title alone. */
  async answerTitleChecks(): Promise<void> {
    await this.bus
      .consume(TITLE_CHECKS)
      .on(CheckTitle, async ({ data }, ctx) => {
        const banned = BANNED.find((word) => data.title.toLowerCase().includes(word));
        await ctx.reply(BlogApproval, {
          blogId: data.blogId,
          status: banned ? "Rejected" : "Approved",
          reason: banned ? `mentions "${banned}"` : "looks fine",
        });
      })
      .start();
  }

  #move(blogId: string, state: TaskState, note: string): void {
    this.tasks.set(blogId, state);
    this.log(`[approval] ${blogId}: ${state.padEnd(11)} ${note}`);
  }
}
