import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { messages, Recorder } from "@switchyard/conformance";
import { BYTES_CONTENT_TYPE, createBus, isSwitchyardError, type Message } from "@switchyard/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as adapter from "../src/index.js";
import {
  createTransport,
  FeedPoller,
  type FeedServer,
  fromCloudEvent,
  HttpFeedTransport,
  PostgresStore,
  parseHttpFeedUrl,
  SqliteStore,
  sqlitePath,
  startFeedServer,
  toCloudEvent,
} from "../src/index.js";

const { Ping } = messages;
const uniq = (label: string) => `hf-${label}-${randomUUID().slice(0, 8)}`;

describe("URL and options", () => {
  it("parses the feed base, store, serve, token, compaction and tuning", () => {
    const url = new URL(
      "http-feed://:s3cret@127.0.0.1:8080/feeds/?store=postgres://u:p@db:5432/app&serve=true&compact=a,b&pageSize=50&tablePrefix=svc_a",
    );
    expect(parseHttpFeedUrl(url)).toEqual({
      store: "postgres://u:p@db:5432/app",
      feedUrl: "http://127.0.0.1:8080/feeds",
      token: "s3cret",
      serve: { host: "127.0.0.1", port: 8080, basePath: "feeds" },
      compact: ["a", "b"],
      pageSize: 50,
      tablePrefix: "svc_a",
    });
    expect(
      parseHttpFeedUrl(new URL("http-feed://feeds.example:443?tls=1&compact=*&store=postgres://x/y")),
    ).toEqual({
      store: "postgres://x/y",
      feedUrl: "https://feeds.example:443",
      compact: true,
    });
    // Serving on a free port: the feed URL comes from the server once it listens.
    expect(parseHttpFeedUrl(new URL("http-feed://127.0.0.1:0/f?serve=1&store=postgres://x/y"))).toEqual({
      store: "postgres://x/y",
      serve: { host: "127.0.0.1", port: 0, basePath: "f" },
    });
  });

  it("refuses a missing or foreign store, bad numbers and bad prefixes with CONFIG_INVALID", () => {
    const codes = [
      "http-feed://h:1/f",
      "http-feed://h:1/f?store=mysql://x/y",
      "http-feed://h:1/f?store=postgres://x/y&pageSize=-3",
      "http-feed://h:1/f?store=postgres://x/y&leaseMs=0",
      "http-feed://h:1/f?store=postgres://x/y&readerLeaseMs=0",
      "http-feed://h:1/f?store=postgres://x/y&tablePrefix=Robert;drop",
      "http-feed://h:1/f?store=sqlite:",
      "http-feed://h:1/f?store=sqlite:///x.db&tablePrefix=Robert;drop",
    ].map((raw) => {
      try {
        createTransport(new URL(raw));
        return "ok";
      } catch (error) {
        return isSwitchyardError(error, "CONFIG_INVALID") ? "CONFIG_INVALID" : String(error);
      }
    });
    expect(codes).toEqual(Array(8).fill("CONFIG_INVALID"));
  });

  it("takes sqlite stores: a file path or :memory:", async () => {
    expect(parseHttpFeedUrl(new URL("http-feed://h:1/f?store=sqlite:///var/lib/app/feed.db")).store).toBe(
      "sqlite:///var/lib/app/feed.db",
    );
    expect(sqlitePath("sqlite:///var/lib/app/feed.db")).toBe("/var/lib/app/feed.db");
    expect(sqlitePath("sqlite:data/feed.db")).toBe("data/feed.db");
    expect(sqlitePath("sqlite::memory:")).toBe(":memory:");
    const transport = createTransport(
      new URL("http-feed://h:1/f?store=sqlite::memory:"),
    ) as HttpFeedTransport;
    expect(transport.store).toBeInstanceOf(SqliteStore);
    await transport.close();
  });

  it("buses of one process with the same sqlite::memory: store share one database", async () => {
    const store = "sqlite::memory:";
    const queue = uniq("mem");
    const producer = await createBus({ transport: new HttpFeedTransport({ store }), source: "svc/a" });
    const consumer = await createBus({ transport: new HttpFeedTransport({ store }), source: "svc/b" });
    try {
      const got: number[] = [];
      await consumer
        .consume(queue)
        .on(Ping, async (msg) => {
          got.push(msg.data.n);
        })
        .start();
      for (let n = 0; n < 3; n++) await producer.send(queue, Ping, { n });
      await expect.poll(() => got).toEqual([0, 1, 2]);
    } finally {
      await producer.close();
      await consumer.close();
    }
  });
});

describe("CloudEvents JSON mapping", () => {
  it("JSON stays readable as data; bytes, odd JSON and empty bodies go base64; all round-trip byte-exact", () => {
    const headers = { ce_id: "1", ce_type: "t", ce_source: "s", ce_specversion: "1.0" };
    const cases: Array<[string, Uint8Array, "data" | "data_base64"]> = [
      ["application/json", new TextEncoder().encode('{"a":[1,2],"b":"ü"}'), "data"],
      ["application/json", new TextEncoder().encode('{"a": 1.0}'), "data_base64"], // would not re-serialise
      ["text/plain", new TextEncoder().encode("héllo"), "data"],
      [BYTES_CONTENT_TYPE, Uint8Array.from({ length: 256 }, (_, i) => i), "data_base64"],
      ["application/json", new Uint8Array(0), "data_base64"],
    ];
    for (const [contentType, body, field] of cases) {
      const wire = {
        id: "1",
        key: "k",
        headers: { ...headers, ce_datacontenttype: contentType, "x-user": "v" },
        body,
      };
      const event = toCloudEvent(wire);
      expect(Object.keys(event)).toContain(field);
      expect(event.partitionkey).toBe("k");
      const back = fromCloudEvent(JSON.parse(JSON.stringify(event)));
      expect(Buffer.from(back.body).equals(Buffer.from(body)), contentType).toBe(true);
      expect(back.headers).toEqual({ ...wire.headers, ce_partitionkey: "k" });
      expect(back.key).toBe("k");
    }
  });

  it("refuses only items it cannot identify", () => {
    expect(() => fromCloudEvent("nope")).toThrow(/not a JSON object/);
    expect(() => fromCloudEvent({ type: "x" })).toThrow(/no string id/);
    expect(fromCloudEvent({ id: "only-id" }).headers).toEqual({ ce_id: "only-id" });
  });
});

describeWithBroker("postgres", "http-feed on PostgreSQL", () => {
  const pgUrl = brokerEndpoint("postgres").url;
  const store = new PostgresStore({ url: pgUrl });
  let server: FeedServer;
  const token = `tok-${randomUUID()}`;
  let secured: FeedServer;
  beforeAll(async () => {
    server = await startFeedServer({ store, basePath: "/feeds" });
    secured = await startFeedServer({ store, token, basePath: "/private" });
  });
  afterAll(async () => {
    await Promise.all([server?.close(), secured?.close()]);
    await store.close();
  });

  const get = (base: string, topic: string, query = "", init?: RequestInit) =>
    fetch(`${base}/${encodeURIComponent(topic)}${query}`, init);

  it("two transports of one process serving the same store on one address share the server", async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const serve = { host: "127.0.0.1", port, basePath: "/shared" };
    const a = new HttpFeedTransport({ store: pgUrl, serve });
    const b = new HttpFeedTransport({ store: pgUrl, serve });
    await Promise.all([a.connect(), b.connect()]);
    expect(a.server).toBe(b.server);
    await a.close();
    expect((await fetch(`${b.server!.url}/${uniq("any")}`)).status).toBe(200); // still served
    await b.close();
    await expect(fetch(`http://127.0.0.1:${port}/shared/x`)).rejects.toThrow(); // port released
  });

  it("a feed Switchyard serves reads correctly with nothing but fetch and the spec", async () => {
    const topic = uniq("spec");
    const producer = await createBus({
      transport: new HttpFeedTransport({ store: pgUrl }),
      source: "svc/producer",
    });
    try {
      const sent = [];
      for (let n = 0; n < 3; n++)
        sent.push(await producer.publish(topic, Ping, { n }, { subject: `s-${n}` }));
      const first = await get(server.url, topic);
      expect(first.status).toBe(200);
      expect(first.headers.get("content-type")).toBe("application/cloudevents-batch+json");
      const page = (await first.json()) as Array<Record<string, unknown>>;
      expect(page.map((e) => [e.id, e.specversion, e.type, e.source, e.subject, e.data])).toEqual(
        sent.map((env, n) => [env.id, "1.0", Ping.type, "svc/producer", `s-${n}`, { n }]),
      );
      // Paging with limit, then the empty array at the end.
      const firstTwo = (await (await get(server.url, topic, "?limit=2")).json()) as Array<{ id: string }>;
      expect(firstTwo.map((e) => e.id)).toEqual(sent.slice(0, 2).map((e) => e.id));
      const rest = (await (await get(server.url, topic, `?lastEventId=${firstTwo[1]!.id}`)).json()) as Array<{
        id: string;
      }>;
      expect(rest.map((e) => e.id)).toEqual([sent[2]!.id]);
      const end = await get(server.url, topic, `?lastEventId=${sent[2]!.id}`);
      expect(await end.json()).toEqual([]);
      // Long polling: the request waits, and answers as soon as an event is appended.
      const started = Date.now();
      const waiting = get(server.url, topic, `?lastEventId=${sent[2]!.id}&timeout=10000`);
      setTimeout(() => void producer.publish(topic, Ping, { n: 3 }), 300);
      const woken = (await (await waiting).json()) as Array<{ data: unknown }>;
      const took = Date.now() - started;
      expect(woken.map((e) => e.data)).toEqual([{ n: 3 }]);
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(5000);
      // An empty long poll answers [] after its timeout.
      const lastId = (woken[0] as unknown as { id: string }).id;
      const t0 = Date.now();
      expect(await (await get(server.url, topic, `?lastEventId=${lastId}&timeout=300`)).json()).toEqual([]);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    } finally {
      await producer.close();
    }
  });

  it("full pages carry a strong ETag and cache headers; partial pages are not cached", async () => {
    const topic = uniq("etag");
    const transport = new HttpFeedTransport({ store: pgUrl });
    const bus = await createBus({ transport });
    try {
      for (let n = 0; n < 3; n++) await bus.publish(topic, Ping, { n });
      const full = await get(server.url, topic, "?limit=2");
      const etag = full.headers.get("etag");
      expect(etag).toMatch(/^"[^"]+"$/);
      expect(full.headers.get("cache-control")).toMatch(/max-age=\d+/);
      const again = await get(server.url, topic, "?limit=2", { headers: { "if-none-match": etag! } });
      expect(again.status).toBe(304);
      const partial = await get(server.url, topic, "?limit=10");
      expect(partial.headers.get("etag")).toBeNull();
      expect(partial.headers.get("cache-control")).toBe("no-store");
    } finally {
      await bus.close();
    }
  });

  it("bad input answers 400 problem details and the server keeps serving; unknown positions 410", async () => {
    const topic = uniq("bad");
    for (const query of [
      "?lastEventId=%00bad",
      `?lastEventId=${"x".repeat(600)}`,
      "?timeout=-1",
      "?timeout=99999999",
      "?timeout=abc",
      "?limit=0",
      "?limit=100000",
    ]) {
      const response = await get(server.url, topic, query);
      expect(response.status, query).toBe(400);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      expect(((await response.json()) as { status: number }).status).toBe(400);
    }
    const gone = await get(server.url, topic, "?lastEventId=never-was");
    expect(gone.status).toBe(410);
    expect((await fetch(`${server.url}/${topic}`, { method: "POST" })).status).toBe(405);
    expect((await get(server.url, topic)).status).toBe(200);
  });

  it("a bearer token guards the feed (401 without, 403 wrong) and a consumer with the token reads it", async () => {
    const topic = uniq("auth");
    expect((await get(secured.url, topic)).status).toBe(401);
    expect((await get(secured.url, topic, "", { headers: { authorization: "Bearer nope" } })).status).toBe(
      403,
    );
    const producer = await createBus({ transport: new HttpFeedTransport({ store: pgUrl }) });
    const consumer = await createBus({
      transport: new HttpFeedTransport({ store: pgUrl, feedUrl: secured.url, token, tablePrefix: "hf_auth" }),
    });
    try {
      const seen = new Recorder<number>();
      await consumer
        .subscribe(topic, "reader")
        .on(Ping, async (msg) => seen.push(msg.data.n))
        .start();
      await producer.publish(topic, Ping, { n: 1 });
      await seen.count(1, 10_000);
    } finally {
      await Promise.all([producer.close(), consumer.close()]);
    }
  });

  it("one bus serves its feed (serve in the URL), another consumes it over HTTP with state in its own tables", async () => {
    const topic = uniq("two");
    const port = await freePort();
    const producer = await createBus({
      url: `http-feed://127.0.0.1:${port}/events?serve=true&store=${encodeURIComponent(pgUrl)}&tablePrefix=hf_producer`,
      adapter,
      source: "svc/blog",
    });
    const consumer = await createBus({
      url: `http-feed://127.0.0.1:${port}/events?store=${encodeURIComponent(pgUrl)}&tablePrefix=hf_consumer&pollTimeoutMs=2000`,
      adapter,
      source: "svc/approval",
    });
    try {
      await producer.transport(); // starts the server
      const seen = new Recorder<Message>();
      await consumer
        .subscribe(topic, "approval")
        .on(Ping, async (msg) => seen.push(msg))
        .start({ concurrency: 4 });
      const published = [];
      for (let n = 0; n < 20; n++)
        published.push(await producer.publish(topic, Ping, { n }, { key: `k${n % 3}` }));
      await seen.count(20, 15_000);
      expect(new Set(seen.items.map((m) => m.id))).toEqual(new Set(published.map((e) => e.id)));
      // The consumer's tables saw the events; the producer's tables never saw a subscription.
      const consumerPos = await store.pool.query(
        "SELECT last_event_id FROM hf_consumer_cursors WHERE name = $1 AND sub = 'approval'",
        [topic],
      );
      expect(consumerPos.rows[0]?.last_event_id).toBe(published.at(-1)!.id);
      const producerPos = await store.pool.query(
        "SELECT count(*)::int AS n FROM hf_producer_cursors WHERE name = $1",
        [topic],
      );
      expect(producerPos.rows[0]?.n).toBe(0);
    } finally {
      await Promise.all([producer.close(), consumer.close()]);
    }
  });

  it("a Switchyard consumer reads an independent minimal http-feeds.org server (the spec's example)", async () => {
    // Written from the spec: GET /inventory?lastEventId=… returns the events after it, [] at the end.
    const inventory = [
      {
        specversion: "1.0",
        type: "org.http-feeds.example.inventory",
        source: "https://example.http-feeds.org/inventory",
        id: "1c6b8c6e-d8d0-4a91-b51c-1f56bd04c758",
        time: "2021-01-01T00:00:01Z",
        subject: "9521234567899",
        data: { sku: "9521234567899", updated: "2022-01-01T00:00:01Z", quantity: 5 },
      },
      {
        specversion: "1.0",
        type: "org.http-feeds.example.inventory",
        source: "https://example.http-feeds.org/inventory",
        id: "292042fb-ab04-4653-af90-19a24032bffe",
        time: "2021-12-01T00:00:15Z",
        subject: "9521234512349",
        data: { sku: "9521234512349", updated: "2022-01-01T00:00:12Z", quantity: 0 },
      },
      {
        specversion: "1.0",
        type: "org.http-feeds.example.inventory",
        source: "https://example.http-feeds.org/inventory",
        id: "fa3e2a22-398c-4d02-ad08-9415e43178e6",
        time: "2021-01-01T00:00:22Z",
        subject: "9521234567899",
        method: "DELETE",
      },
    ];
    const foreign = createServer((req, res) => {
      const url = new URL(req.url!, "http://x");
      const last = url.searchParams.get("lastEventId");
      const from = last ? inventory.findIndex((e) => e.id === last) + 1 : 0;
      const page = inventory.slice(from, from + 2); // pages of two
      res.writeHead(200, { "content-type": "application/cloudevents-batch+json" });
      res.end(JSON.stringify(page));
    });
    await new Promise<void>((resolve) => foreign.listen(0, "127.0.0.1", resolve));
    const { port } = foreign.address() as AddressInfo;
    const consumer = await createBus({
      transport: new HttpFeedTransport({
        store: pgUrl,
        feedUrl: `http://127.0.0.1:${port}`,
        tablePrefix: "hf_foreign",
        pollTimeoutMs: 200,
      }),
    });
    try {
      const seen = new Recorder<Message>();
      await consumer
        .subscribe("inventory", uniq("sub"))
        .onAny(async (msg) => seen.push(msg))
        .start();
      await seen.count(3, 10_000);
      expect(seen.items.map((m) => [m.id, m.subject, m.data])).toEqual(
        inventory.map((e) => [e.id, e.subject, e.data ?? null]),
      );
      expect(seen.items[2]!.headers).toEqual({ method: "DELETE" });
    } finally {
      await consumer.close();
      foreign.close();
    }
  });

  it("compaction by subject keeps the latest per subject and a DELETE tombstone; a compacted lastEventId still resumes", async () => {
    const topic = uniq("compact");
    const bus = await createBus({ transport: new HttpFeedTransport({ store: pgUrl, compact: [topic] }) });
    try {
      const a1 = await bus.publish(topic, Ping, { n: 1 }, { subject: "a" });
      const b1 = await bus.publish(topic, Ping, { n: 2 }, { subject: "b" });
      const a2 = await bus.publish(topic, Ping, { n: 3 }, { subject: "a" });
      const bGone = await bus.publish(topic, Ping, { n: 4 }, { subject: "b", headers: { method: "DELETE" } });
      const page = (await (await get(server.url, topic)).json()) as Array<Record<string, unknown>>;
      expect(page.map((e) => e.id)).toEqual([a2.id, bGone.id]);
      expect(page[1]!.method).toBe("DELETE");
      // A consumer that had read up to b1 (now compacted away) continues right after b1's position.
      const after = (await (await get(server.url, topic, `?lastEventId=${b1.id}`)).json()) as Array<{
        id: string;
      }>;
      expect(after.map((e) => e.id)).toEqual([a2.id, bGone.id]);
      const afterA1 = (await (await get(server.url, topic, `?lastEventId=${a1.id}`)).json()) as Array<{
        id: string;
      }>;
      expect(afterA1.map((e) => e.id)).toEqual([a2.id, bGone.id]);
    } finally {
      await bus.close();
    }
  });

  it("a feed answering errors or garbage never moves the position; items without type are dead-lettered as decode", async () => {
    const mode = { value: "garbage" as "garbage" | "5xx" | "html" | "good" };
    const good = [
      { specversion: "1.0", id: "e1", source: "x", data: { n: 1 } }, // no type: not a CloudEvent
      { specversion: "1.0", id: "e2", type: Ping.type, source: "x", schemaversion: "1", data: { n: 2 } },
    ];
    const hits = { count: 0 };
    const flaky = createServer((req, res) => {
      hits.count++;
      const last = new URL(req.url!, "http://x").searchParams.get("lastEventId");
      if (mode.value === "5xx") return void res.writeHead(503).end();
      if (mode.value === "html")
        return void res.writeHead(200, { "content-type": "text/html" }).end("<p>hi</p>");
      res.writeHead(200, { "content-type": "application/cloudevents-batch+json" });
      if (mode.value === "garbage") return void res.end('{"not":"an array"}');
      res.end(JSON.stringify(last === "e2" ? [] : last === "e1" ? [good[1]] : good));
    });
    await new Promise<void>((resolve) => flaky.listen(0, "127.0.0.1", resolve));
    const { port } = flaky.address() as AddressInfo;
    const key = { kind: "topic" as const, name: uniq("flaky"), sub: "s" };
    await store.ensureCursor(key);
    const poller = new FeedPoller(store, key, `http://127.0.0.1:${port}`, {
      pollTimeoutMs: 100,
      pageSize: 10,
    });
    poller.start();
    try {
      for (const m of ["garbage", "5xx", "html"] as const) {
        mode.value = m;
        const before = hits.count;
        await waitFor(() => hits.count >= before + 2, 5000);
        expect(await store.cursor(key)).toBeUndefined();
        expect(poller.lastError).toBeDefined();
        expect(poller.lastError).not.toContain(pgUrl);
      }
      mode.value = "good";
      await waitFor(async () => (await store.cursor(key)) === "e2", 10_000);
    } finally {
      await poller.stop();
      flaky.close();
    }
    // The rows reached the subscription; a consumer dead-letters the one without a type.
    const consumer = await createBus({
      transport: new HttpFeedTransport({ store: pgUrl, feedUrl: `http://127.0.0.1:1` }),
    });
    try {
      const seen = new Recorder<number>();
      await consumer
        .subscribe(key.name, "s")
        .on(Ping, async (msg) => seen.push(msg.data.n))
        .start();
      await seen.count(1, 10_000);
      const letters = await consumer.deadLetters(key.name, "s").list({ idleMs: 500 });
      expect(letters.map((l) => [l.id, l.reason])).toEqual([["e1", "decode"]]);
    } finally {
      await consumer.close();
    }
  });

  it("a subscription created later replays the whole feed; a restarted consumer resumes without replaying", async () => {
    const topic = uniq("resume");
    const producer = await createBus({ transport: new HttpFeedTransport({ store: pgUrl }) });
    const make = () =>
      createBus({
        transport: new HttpFeedTransport({ store: pgUrl, feedUrl: server.url, tablePrefix: "hf_resume" }),
      });
    try {
      for (let n = 0; n < 5; n++) await producer.publish(topic, Ping, { n });
      const first = await make();
      const seen = new Recorder<number>();
      await first
        .subscribe(topic, "late")
        .on(Ping, async (msg) => seen.push(msg.data.n))
        .start();
      await seen.count(5, 10_000);
      await first.close();
      for (let n = 5; n < 8; n++) await producer.publish(topic, Ping, { n });
      const second = await make();
      await second
        .subscribe(topic, "late")
        .on(Ping, async (msg) => seen.push(msg.data.n))
        .start();
      await seen.count(8, 10_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(seen.items).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      await second.close();
    } finally {
      await producer.close();
    }
  });

  it("feed server and consumer restarted during a stream of 10,000 events: all handled, in order per subject", {
    timeout: 200_000,
  }, async () => {
    const topic = uniq("fault");
    const port = await freePort();
    const feedUrl = `http://127.0.0.1:${port}/feeds`;
    const producer = await createBus({ transport: new HttpFeedTransport({ store: pgUrl }) });
    let feed = await startFeedServer({ store, port, basePath: "/feeds" });
    const perSubject = new Map<string, number[]>();
    const handled = new Recorder<number>();
    const consume = async () => {
      const bus = await createBus({
        transport: new HttpFeedTransport({
          store: pgUrl,
          feedUrl,
          tablePrefix: "hf_fault",
          pollTimeoutMs: 1000,
        }),
      });
      await bus
        .subscribe(topic, "fault")
        .on(Ping, async (msg) => {
          const list = perSubject.get(msg.subject!) ?? [];
          list.push(msg.data.n);
          perSubject.set(msg.subject!, list);
          handled.push(msg.data.n);
        })
        .start({ concurrency: 8 });
      return bus;
    };
    let consumer = await consume();
    const subjects = 10;
    const rounds = 1000;
    try {
      for (let n = 0; n < rounds; n++) {
        await Promise.all(
          Array.from({ length: subjects }, (_, s) =>
            producer.publish(topic, Ping, { n }, { subject: `s${s}`, key: `s${s}` }),
          ),
        );
        if (n === 300) {
          await feed.close(); // the producer's server goes away mid-stream…
          await consumer.close(); // …and so does the consumer
        }
        if (n === 500) {
          feed = await startFeedServer({ store, port, basePath: "/feeds" });
          consumer = await consume();
        }
      }
      await handled.until(
        () =>
          [...perSubject.values()].every((list) => new Set(list).size === rounds) &&
          perSubject.size === subjects,
        60_000,
        "every event of every subject",
      );
      for (const [subject, list] of perSubject) {
        const firsts = list.filter((n, i) => list.indexOf(n) === i);
        expect(firsts, subject).toEqual([...Array(rounds).keys()]);
      }
    } finally {
      await Promise.all([consumer.close(), producer.close()]);
      await feed.close();
    }
  });

  it("subscribing to a topic without a feed URL is a CONFIG_INVALID that says what is missing", async () => {
    const transport = new HttpFeedTransport({ store: pgUrl });
    try {
      const error = await transport
        .subscribe({ kind: "topic", name: "t", subscription: "s" }, { prefetch: 1 }, () => {})
        .catch((e: unknown) => e);
      expect(isSwitchyardError(error, "CONFIG_INVALID")).toBe(true);
      expect(String(error)).toContain("feed URL");
    } finally {
      await transport.close();
    }
  });

  it("store errors name the store without its password", async () => {
    const transport = new HttpFeedTransport({ store: "postgres://postgres:hunter2@127.0.0.1:1/none" });
    try {
      const error = await transport.publish({ kind: "topic", name: "t" }, []).catch((e: unknown) => e);
      expect(isSwitchyardError(error, "TRANSPORT_ERROR")).toBe(true);
      expect(String((error as Error).message)).not.toContain("hunter2");
    } finally {
      await transport.close();
    }
  });
});

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}
