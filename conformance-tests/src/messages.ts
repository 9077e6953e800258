import { defineMessage } from "@switchyard/core";
import { z } from "zod";

/** The message types the suite publishes. */
export const Ping = defineMessage({
  type: "conformance.ping",
  versions: { 1: z.object({ n: z.number().int(), text: z.string().optional() }) },
});

export const Ordered = defineMessage({
  type: "conformance.ordered",
  versions: { 1: z.object({ key: z.string(), seq: z.number().int() }) },
});

export const Versioned = defineMessage({
  type: "conformance.versioned",
  versions: {
    1: z.object({ name: z.string() }),
    2: z.object({ firstName: z.string(), lastName: z.string() }),
  },
  upcast: {
    1: (v1: { name: string }) => {
      const [firstName = "", ...rest] = v1.name.split(" ");
      return { firstName, lastName: rest.join(" ") };
    },
  },
});

/** Version 3 of `Versioned`, known to a newer producer only. */
export const VersionedNext = defineMessage({
  type: "conformance.versioned",
  versions: {
    1: z.object({ name: z.string() }),
    2: z.object({ firstName: z.string(), lastName: z.string() }),
    3: z.object({ fullName: z.string() }),
  },
});

export const NoUpcast = defineMessage({
  type: "conformance.versioned",
  versions: {
    1: z.object({ name: z.string() }),
    2: z.object({ firstName: z.string(), lastName: z.string() }),
  },
});

/** The reply a responder sends to a `Ping` request in the request-reply cases. */
export const Pong = defineMessage({
  type: "conformance.pong",
  versions: { 1: z.object({ n: z.number().int(), by: z.string() }) },
});

/** The blog-approval flow: an author submits a post, moderation reviews it. */
export const PostSubmitted = defineMessage({
  type: "conformance.post.submitted",
  versions: { 1: z.object({ postId: z.string(), title: z.string() }) },
});

export const PostReviewed = defineMessage({
  type: "conformance.post.reviewed",
  versions: { 1: z.object({ postId: z.string(), approved: z.boolean() }) },
});
