import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { afterAll } from "vitest";
import { PostgresStore, SqliteStore } from "../src/index.js";
import { defineStoreSuite } from "./store-suite.js";

// The same store tests on every store.
const dir = mkdtempSync(join(tmpdir(), "http-feed-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
defineStoreSuite("sqlite (a temp file)", () => new SqliteStore({ path: join(dir, "store.db") }));

describeWithBroker("postgres", "http-feed stores on PostgreSQL", () => {
  defineStoreSuite("postgres", () => new PostgresStore({ url: brokerEndpoint("postgres").url }));
});
