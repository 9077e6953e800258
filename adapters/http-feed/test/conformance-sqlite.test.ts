import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConformanceSuite } from "@switchyard/conformance";
import { afterAll, beforeAll, describe } from "vitest";
import { type FeedServer, HttpFeedTransport, SqliteStore, startFeedServer } from "../src/index.js";

// The conformance suite on the embedded store: one SQLite file, one process. The server's store and
// every bus's `sqlite://` store are separate connections to that file; appends wake the long polls
// in-process, and every read goes over real HTTP on loopback.
describe("http-feed on SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "http-feed-conformance-"));
  const file = join(dir, "feed.db");
  const store = `sqlite://${file}`;
  const serverStore = new SqliteStore({ path: file });
  let server: FeedServer;
  beforeAll(async () => {
    server = await startFeedServer({ store: serverStore, basePath: "/feeds" });
  });
  afterAll(async () => {
    await server?.close();
    await serverStore.close();
    rmSync(dir, { recursive: true, force: true });
  });
  defineConformanceSuite({
    name: "http-feed (sqlite)",
    createTransport: () => new HttpFeedTransport({ store, feedUrl: server.url, pollTimeoutMs: 5000 }),
  });
});
