import { defineMessage } from "@switchyard/core";
import { z } from "zod";

/** Published by the blog service when a post is written. */
export const BlogCreated = defineMessage({
  type: "blog.created",
  versions: {
    1: z.object({ blogId: z.string(), title: z.string(), body: z.string() }),
  },
});

/** Published by the approval service when a review is done. */
export const BlogApproval = defineMessage({
  type: "blog.approval",
  versions: {
    1: z.object({ blogId: z.string(), status: z.enum(["Approved", "Rejected"]), reason: z.string() }),
  },
});

/** Sent by the blog service with `bus.request()`: may a draft title be used? Answered by a BlogApproval. */
export const CheckTitle = defineMessage({
  type: "blog.title-check-requested",
  versions: { 1: z.object({ blogId: z.string(), title: z.string() }) },
});

export const BLOG_EVENTS = "blog-events";
/** The queue the approval service answers title checks on (request-reply). */
export const TITLE_CHECKS = "title-checks";
export const APPROVAL_EVENTS = "approval-events";
