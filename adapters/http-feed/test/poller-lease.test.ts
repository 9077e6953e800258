import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { messages } from "@switchyard/conformance";
import { type Bus, createBus } from "@switchyard/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createFeedHandler,
  type FeedStore,
  HttpFeedTransport,
  PostgresStore,
  SqliteStore,
} from "../src/index.js";

const { Ping } = messages;
const uniq = (label: string) => `hf-${label}-${randomUUID().slice(0, 8)}`;

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Competing consumers of one subscription, each with its own store connection on one database:
 * only the holder of the poller lease follows the feed. The feed is reached through a counting
 * proxy, one path per consumer (`/a/<topic>`, `/b/<topic>`), so the test sees who polls.
 */
function definePollerLeaseSuite(name: string, createStore: () => FeedStore): void {
  describe(`poller lease: ${name}`, () => {
    const feedStore = createStore();
    let proxy: Server;
    let proxyUrl: string;
    const requests = new Map<string, number>();
    beforeAll(async () => {
      await feedStore.init();
      const handler = createFeedHandler({ store: feedStore, basePath: "/feeds" });
      proxy = createServer((req, res) => {
        const match = /^\/([^/]+)(\/.*)$/.exec(req.url ?? "");
        if (!match) return void res.writeHead(404).end();
        requests.set(match[1]!, (requests.get(match[1]!) ?? 0) + 1);
        req.url = `/feeds${match[2]}`;
        handler(req, res);
      });
      await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
      proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      proxy?.closeAllConnections();
      await new Promise((resolve) => proxy?.close(resolve));
      await feedStore.close();
    });

    /** Two consumers `a` and `b` of one subscription; `seen` collects every handled event id. */
    async function consumers(topic: string, readerLeaseMs: number) {
      const seen = new Set<string>();
      const made: { bus: Bus; store: FeedStore; path: string }[] = [];
      for (const path of [`${topic}-a`, `${topic}-b`]) {
        const store = createStore();
        const bus = await createBus({
          transport: new HttpFeedTransport({
            store,
            feedUrl: `${proxyUrl}/${path}`,
            readerLeaseMs,
            pollTimeoutMs: 300,
            leaseMs: 1500,
            idlePollMs: 100,
          }),
        });
        await bus
          .subscribe(topic, "workers")
          .on(Ping, async (msg) => {
            seen.add(msg.id);
          })
          .start({ concurrency: 4 });
        made.push({ bus, store, path });
      }
      const count = (path: string) => requests.get(path) ?? 0;
      return { seen, made, count };
    }

    async function publish(topic: string, from: number, to: number): Promise<string[]> {
      const producer = await createBus({ transport: new HttpFeedTransport({ store: feedStore }) });
      try {
        const ids: string[] = [];
        for (let n = from; n < to; n++)
          ids.push((await producer.publish(topic, Ping, { n }, { key: `k${n % 3}` })).id);
        return ids;
      } finally {
        await producer.close();
      }
    }

    it("only the lease holder polls; a holder that crashes (no release) is taken over once its lease lapses, nothing missed", {
      timeout: 60_000,
    }, async () => {
      const topic = uniq("crash");
      const readerLeaseMs = 900;
      const { seen, made, count } = await consumers(topic, readerLeaseMs);
      try {
        const before = await publish(topic, 0, 20);
        await waitFor(() => before.every((id) => seen.has(id)), 15_000, "the events published before");
        // Both are up and polling would cost nothing: still, only one of them asks the feed.
        await waitFor(() => count(made[0]!.path) + count(made[1]!.path) >= 8, 15_000, "eight feed requests");
        const [holder, standby] = count(made[0]!.path) > 0 ? [made[0]!, made[1]!] : [made[1]!, made[0]!];
        expect(count(standby.path)).toBe(0);
        expect(count(holder.path)).toBeGreaterThanOrEqual(8);

        // The holder crashes: its database connection is gone, so it can neither renew nor release.
        const crashedAt = Date.now();
        await holder.store.close();
        const during = await publish(topic, 20, 30);
        await waitFor(() => count(standby.path) > 0, readerLeaseMs * 4, "the standby to take over");
        const tookOverMs = Date.now() - crashedAt;
        // The lease lapses at most readerLeaseMs after the last renewal; the standby retries every third of it.
        expect(tookOverMs).toBeLessThan(readerLeaseMs * 2 + 500);
        const after = await publish(topic, 30, 50);
        const holderRequests = count(holder.path);
        await waitFor(
          () => [...before, ...during, ...after].every((id) => seen.has(id)),
          20_000,
          "every event published before, during and after the take-over",
        );
        expect(count(holder.path)).toBe(holderRequests); // the crashed holder stopped following
      } finally {
        await Promise.all(made.map(({ bus }) => bus.close().catch(() => {})));
        await Promise.all(made.map(({ store }) => store.close()));
      }
    });

    it("a holder that stops cleanly releases the lease: the standby takes over well before it would lapse", {
      timeout: 60_000,
    }, async () => {
      const topic = uniq("clean");
      const readerLeaseMs = 6000; // renewed every 2 s: without the release a take-over needs at least 4 s
      const { seen, made, count } = await consumers(topic, readerLeaseMs);
      try {
        const before = await publish(topic, 0, 10);
        await waitFor(() => before.every((id) => seen.has(id)), 15_000, "the events published before");
        const [holder, standby] = count(made[0]!.path) > 0 ? [made[0]!, made[1]!] : [made[1]!, made[0]!];
        expect(count(standby.path)).toBe(0);
        const stoppedAt = Date.now();
        await holder.bus.close();
        await waitFor(() => count(standby.path) > 0, readerLeaseMs, "the standby to take over");
        expect(Date.now() - stoppedAt).toBeLessThan(readerLeaseMs / 3 + 1500);
        const after = await publish(topic, 10, 20);
        await waitFor(() => after.every((id) => seen.has(id)), 15_000, "the events published after");
      } finally {
        await Promise.all(made.map(({ bus }) => bus.close().catch(() => {})));
        await Promise.all(made.map(({ store }) => store.close()));
      }
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), "http-feed-lease-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
definePollerLeaseSuite("sqlite (a temp file)", () => new SqliteStore({ path: join(dir, "store.db") }));

describeWithBroker("postgres", "http-feed poller lease on PostgreSQL", () => {
  definePollerLeaseSuite(
    "postgres",
    () => new PostgresStore({ url: brokerEndpoint("postgres").url, tablePrefix: "hf_lease", poolSize: 4 }),
  );
});
