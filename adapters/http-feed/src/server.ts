import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { BATCH_CONTENT_TYPE } from "./cloudevents.js";
import type { FeedStore } from "./store.js";

export interface FeedHandlerOptions {
  store: FeedStore;
  /** Path prefix the feeds live under, e.g. `/feeds` (a feed is `<basePath>/<topic>`). Default `/`. */
  basePath?: string;
  /** Answer 401 unless `Authorization: Bearer <token>` matches. */
  token?: string;
  /**
   * Decide yourself: true lets the request through, false answers 403 (or return 401/403).
   * Runs after the token check.
   */
  authorize?: (req: IncomingMessage, topic: string) => boolean | 401 | 403 | Promise<boolean | 401 | 403>;
  /** Longest long poll a client may ask for, in ms. Default 60,000. */
  maxTimeoutMs?: number;
  /** Page size when the client gives no `limit`. Default 100; the client may ask for up to `maxLimit`. */
  defaultLimit?: number;
  /** Largest `limit` accepted. Default 1,000. */
  maxLimit?: number;
  /** `Cache-Control: max-age` of full pages (they never change unless the topic is compacted). Default 3600 s. */
  fullPageMaxAgeSeconds?: number;
}

/** A plain Node request handler: works in `node:http`, Express (`app.use`) and Fastify (`raw`). */
export type FeedHandler = (req: IncomingMessage, res: ServerResponse, next?: () => void) => void;

const LAST_EVENT_ID = /^[\x21-\x7e]{1,512}$/;

function problem(res: ServerResponse, status: number, title: string, detail?: string): void {
  const body = JSON.stringify({ type: "about:blank", title, status, ...(detail ? { detail } : {}) });
  res.writeHead(status, {
    "content-type": "application/problem+json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

function intParam(value: string | null, name: string, min: number, max: number): number | string | undefined {
  if (value === null) return undefined;
  if (!/^\d{1,9}$/.test(value)) return `${name} must be an integer from ${min} to ${max}`;
  const n = Number(value);
  if (n < min || n > max) return `${name} must be an integer from ${min} to ${max}`;
  return n;
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Serves `GET <basePath>/<topic>?lastEventId=…&timeout=…&limit=…` as http-feeds.org describes:
 * a JSON array of CloudEvents, oldest first, `[]` at the end; with `timeout` (ms) an empty read
 * waits until an event is appended or the time is up. Full pages get a strong ETag and may be cached.
 */
export function createFeedHandler(options: FeedHandlerOptions): FeedHandler {
  const store = options.store;
  const base = `/${(options.basePath ?? "/").replace(/^\/+|\/+$/g, "")}`.replace(/^\/$/, "");
  const maxTimeout = options.maxTimeoutMs ?? 60_000;
  const maxLimit = options.maxLimit ?? 1000;
  const defaultLimit = Math.min(options.defaultLimit ?? 100, maxLimit);
  const maxAge = options.fullPageMaxAgeSeconds ?? 3600;

  // Long polls wait on one in-process signal per topic, fed by the store's append notifications.
  const waiters = new Map<string, Set<() => void>>();
  let listening = false;
  const wake = (topic: string) => {
    const set = waiters.get(topic);
    if (set) for (const waiter of [...set]) waiter();
  };
  const waitForAppend = (topic: string, ms: number, closed: Promise<void>) =>
    new Promise<void>((resolve) => {
      if (!listening) {
        listening = true;
        store.onAppend(wake);
      }
      let set = waiters.get(topic);
      if (!set) {
        set = new Set();
        waiters.set(topic, set);
      }
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0) waiters.delete(topic);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
      void closed.then(done);
    });

  return (req, res, next) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://feed.invalid");
      const path = url.pathname;
      if (base !== "" && path !== base && !path.startsWith(`${base}/`)) {
        if (next) return next();
        return problem(res, 404, "Not Found");
      }
      const rest = path.slice(base.length).replace(/^\/+/, "");
      if (rest === "" || rest.includes("/")) return problem(res, 404, "Not Found", "GET <base>/<topic>");
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.setHeader("allow", "GET, HEAD");
        return problem(res, 405, "Method Not Allowed");
      }
      let topic: string;
      try {
        topic = decodeURIComponent(rest);
      } catch {
        return problem(res, 400, "Bad Request", "the topic is not valid percent-encoding");
      }
      if (options.token !== undefined) {
        const auth = req.headers.authorization ?? "";
        const match = /^Bearer\s+(.+)$/i.exec(auth);
        if (!match) {
          res.setHeader("www-authenticate", 'Bearer realm="http-feed"');
          return problem(res, 401, "Unauthorized");
        }
        if (!sameToken(match[1]!.trim(), options.token)) return problem(res, 403, "Forbidden");
      }
      if (options.authorize) {
        const verdict = await options.authorize(req, topic);
        if (verdict === 401 || verdict === 403 || verdict === false) {
          return problem(res, verdict === 401 ? 401 : 403, verdict === 401 ? "Unauthorized" : "Forbidden");
        }
      }
      const lastEventId = url.searchParams.get("lastEventId") ?? undefined;
      if (lastEventId !== undefined && !LAST_EVENT_ID.test(lastEventId)) {
        return problem(res, 400, "Bad Request", "lastEventId must be 1 to 512 printable ASCII characters");
      }
      const timeout = intParam(url.searchParams.get("timeout"), "timeout", 0, maxTimeout) ?? 0;
      if (typeof timeout === "string") return problem(res, 400, "Bad Request", timeout);
      const limit = intParam(url.searchParams.get("limit"), "limit", 1, maxLimit) ?? defaultLimit;
      if (typeof limit === "string") return problem(res, 400, "Bad Request", limit);

      let closeSignal!: () => void;
      const closed = new Promise<void>((resolve) => {
        closeSignal = resolve;
      });
      res.on("close", () => closeSignal());
      const deadline = Date.now() + timeout;
      let read = await store.read(topic, lastEventId, limit);
      while (read.status === "ok" && read.events.length === 0 && Date.now() < deadline && !res.destroyed) {
        await waitForAppend(topic, deadline - Date.now(), closed);
        if (res.destroyed) return;
        read = await store.read(topic, lastEventId, limit);
      }
      if (res.destroyed) return;
      if (read.status === "unknown") {
        return problem(
          res,
          410,
          "Gone",
          "lastEventId names no event of this feed; the consumer must be reset to a known position",
        );
      }
      const body = `[${read.events.map((e) => e.json).join(",")}]`;
      const headers: Record<string, string | number> = {
        "content-type": BATCH_CONTENT_TYPE,
        "content-length": Buffer.byteLength(body),
      };
      if (read.events.length === limit) {
        // A full page: the same request always answers the same bytes (unless compaction removes some).
        const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 32)}"`;
        headers.etag = etag;
        headers["cache-control"] = `public, max-age=${maxAge}`;
        if (req.headers["if-none-match"] === etag) {
          res.writeHead(304, { etag, "cache-control": headers["cache-control"] });
          return res.end();
        }
      } else {
        headers["cache-control"] = "no-store";
      }
      res.writeHead(200, headers);
      res.end(req.method === "HEAD" ? undefined : body);
    })().catch((error: unknown) => {
      if (res.headersSent) return res.destroy();
      problem(res, 503, "Service Unavailable", error instanceof Error ? error.message : "store error");
    });
  };
}

export interface FeedServer {
  /** Base URL of the feeds, e.g. `http://127.0.0.1:43121/feeds`. */
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/** A standalone `node:http` server around `createFeedHandler`. `port: 0` picks a free port. */
export async function startFeedServer(
  options: FeedHandlerOptions & { host?: string; port?: number },
): Promise<FeedServer> {
  const handler = createFeedHandler(options);
  const server = createServer((req, res) => handler(req, res));
  server.requestTimeout = 0; // long polls are bounded by maxTimeoutMs, not by Node's default
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const base = (options.basePath ?? "").replace(/^\/+|\/+$/g, "");
  return {
    url: `http://${host}:${address.port}${base ? `/${base}` : ""}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
