import { type Bus, isSwitchyardError } from "@switchyard/core";
import {
  APPROVAL_EVENTS,
  BLOG_EVENTS,
  BlogApproval,
  BlogCreated,
  CheckTitle,
  TITLE_CHECKS,
} from "./messages.js";

export interface Post {
  blogId: string;
  title: string;
  body: string;
  published: boolean;
  review?: string;
}

/** Owns the posts. Publishes `blog.created`; listens for `blog.approval` to publish or hold a post. */
export class BlogService {
  readonly posts = new Map<string, Post>();
  readonly #settled = new Map<string, () => void>();

  constructor(
    readonly bus: Bus,
    readonly log: (line: string) => void,
  ) {}

  async start(): Promise<void> {
    await this.bus
      .subscribe(APPROVAL_EVENTS, "blog-service")
      .on(BlogApproval, async ({ data }) => {
        const post = this.posts.get(data.blogId);
        if (!post) return; // another instance's post
        post.published = data.status === "Approved";
        post.review = data.reason;
        this.log(
          `[blog]     "${post.title}" ${post.published ? "is published" : "stays unpublished"} (${data.reason})`,
        );
        this.#settled.get(data.blogId)?.();
      })
      .start();
  }

  /**
   * Asks the approval service about a draft title and waits for its answer (request-reply);
   * `undefined` when no answer came within `timeoutMs` (the reviewer is busy or down).
   */
  async checkTitle(blogId: string, title: string, timeoutMs = 2_000) {
    try {
      const reply = await this.bus.request(
        TITLE_CHECKS,
        CheckTitle,
        { blogId, title },
        {
          timeoutMs,
          replyType: BlogApproval,
        },
      );
      return reply.data; // { blogId, status: "Approved" | "Rejected", reason }, validated
    } catch (error) {
      if (isSwitchyardError(error, "TIMEOUT")) return undefined;
      throw error;
    }
  }

  /** Saves a post and announces it; resolves once its review came back. */
  async create(post: Omit<Post, "published">): Promise<Post> {
    const saved: Post = { ...post, published: false };
    this.posts.set(post.blogId, saved);
    const reviewed = new Promise<void>((resolve) => this.#settled.set(post.blogId, resolve));
    await this.bus.publish(BLOG_EVENTS, BlogCreated, post, { key: post.blogId, subject: post.blogId });
    this.log(`[blog]     created "${post.title}" (unpublished), published blog.created`);
    await reviewed;
    return saved;
  }
}
