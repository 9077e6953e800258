import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { defineConformanceSuite } from "@switchyard/conformance";
import { afterAll, beforeAll } from "vitest";
import { type FeedServer, HttpFeedTransport, PostgresStore, startFeedServer } from "../src/index.js";

// Producer and consumers in one process: one feed server over the store, every bus publishes into
// the same PostgreSQL and polls that server over real HTTP on loopback.
describeWithBroker("postgres", "http-feed on PostgreSQL", () => {
  const store = brokerEndpoint("postgres").url;
  const serverStore = new PostgresStore({ url: store });
  let server: FeedServer;
  beforeAll(async () => {
    server = await startFeedServer({ store: serverStore, basePath: "/feeds" });
  });
  afterAll(async () => {
    await server?.close();
    await serverStore.close();
  });
  defineConformanceSuite({
    name: "http-feed (postgres)",
    createTransport: () => new HttpFeedTransport({ store, feedUrl: server.url, pollTimeoutMs: 5000 }),
  });
});
