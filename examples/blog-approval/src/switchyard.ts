// What the blog-approval demo declares about its messaging, for the `switchyard` command:
//   switchyard topology diff --module examples/blog-approval/dist/switchyard.js --url kafka://127.0.0.1:9092
//   switchyard asyncapi --module examples/blog-approval/dist/switchyard.js --out asyncapi.yaml
// Plain data: the message types, the topics they travel on, and the subscriptions that read them.
import { APPROVAL_EVENTS, BLOG_EVENTS, BlogApproval, BlogCreated } from "./messages.js";

export const switchyard = {
  title: "Blog approval",
  version: "1.0.0",
  description: "A blog service and an approval service talking through Switchyard.",
  topics: [
    {
      name: BLOG_EVENTS,
      description: "Posts as they are written.",
      messages: [BlogCreated],
      subscriptions: ["approval-service"],
    },
    {
      name: APPROVAL_EVENTS,
      description: "Review verdicts.",
      messages: [BlogApproval],
      subscriptions: ["blog-service"],
    },
  ],
};
