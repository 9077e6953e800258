// The blog-approval demo: a blog service and an approval service talking through Switchyard.
// Runs on the embedded in-memory broker by default; set SWITCHYARD_URL to use a real one.
import { createBus, redactUrl } from "@switchyard/core";
import { runFlow } from "./flow.js";

const url = process.env.SWITCHYARD_URL ?? "memory://";
console.log(`Switchyard blog-approval demo on ${redactUrl(url)}\n`);
const blogBus = createBus({ url, source: "blog-service" });
const approvalBus = createBus({ url, source: "approval-service" });
const timeout = setTimeout(() => {
  console.error("the flow did not finish within 60 s");
  process.exit(1);
}, 60_000);
try {
  const posts = await runFlow(blogBus, approvalBus, (line) => console.log(line));
  console.log("\nFinal state:");
  for (const post of posts) console.log(`  ${post.title.padEnd(24)} published=${post.published}`);
} finally {
  clearTimeout(timeout);
  await Promise.all([blogBus.close(), approvalBus.close()]);
}
