import type { WireMessage } from "@switchyard/core";

/** One event as the feed holds it: its position, id, subject and CloudEvents JSON text. */
export interface FeedRecord {
  seq: number;
  id: string;
  /** The CloudEvent, serialised (what the feed serves, byte for byte). */
  json: string;
}

export interface AppendInput {
  id: string;
  subject?: string;
  /** `DELETE` marks a tombstone (http-feeds.org). */
  method?: string;
  json: string;
}

/** A subscription's (or a queue's) pending table row, as handed to a consumer. */
export interface PendingRecord {
  seq: string;
  message: WireMessage;
  attempt: number;
}

/** What a read of a feed found. `unknown`: lastEventId names no event of this feed, ever. */
export type FeedRead = { status: "ok"; events: FeedRecord[] } | { status: "unknown" };

/** Identifies a consumer-side work table: a queue (`sub` = name) or one subscription of a topic. */
export interface SubKey {
  kind: "queue" | "topic";
  name: string;
  sub: string;
}

/**
 * Everything the transport keeps, behind one small interface. The producer side uses the feed
 * half (append, read, wait); the consumer side the rest (cursor per subscription, pending rows
 * with leases, delays and attempt counts). One store may serve both sides, or each side its own.
 */
export interface FeedStore {
  init(): Promise<void>;
  /** Appends in order; an id already in the feed is not appended twice. Compacts by subject if asked. */
  append(topic: string, events: AppendInput[], options: { compact: boolean }): Promise<void>;
  /** Events after `lastEventId` (from the start when undefined), oldest first, at most `limit`. */
  read(topic: string, lastEventId: string | undefined, limit: number): Promise<FeedRead>;
  /** Calls `listener(topic)` after every append this store sees (this process or, for PostgreSQL, any). */
  onAppend(listener: (topic: string) => void): () => void;

  /** Creates the subscription's cursor at the start of the feed, if it has none. */
  ensureCursor(key: SubKey): Promise<void>;
  cursor(key: SubKey): Promise<string | undefined>;
  /**
   * Adds fetched events to the subscription's pending rows and moves its cursor from `expected` to
   * `next`, atomically; false (and nothing written) if another poller moved the cursor first.
   */
  fill(key: SubKey, expected: string | undefined, next: string, messages: WireMessage[]): Promise<boolean>;
  /** Adds rows to a queue or one subscription directly (queue sends, dead letters, redrives). */
  enqueue(key: SubKey, messages: WireMessage[]): Promise<void>;
  /**
   * Leases up to `limit` visible rows, oldest first, skipping rows another consumer holds and rows
   * whose key has an older row still pending (per-key order). Each claim counts one attempt.
   */
  claim(key: SubKey, limit: number, leaseMs: number): Promise<PendingRecord[]>;
  ack(seq: string): Promise<void>;
  /** Releases the row, visible again after `delayMs`. */
  nack(seq: string, delayMs: number): Promise<void>;
  /** Extends the leases of rows still being handled. */
  renew(seqs: string[], leaseMs: number): Promise<void>;
  /**
   * The subscription's poller lease: one holder at a time follows the producer's feed. Acquires
   * the lease when nobody holds it or it has expired, renews it when `holder` already holds it
   * (either way it now runs until `leaseMs` from now), and answers false while another holder's
   * lease runs. Atomic: of two competing callers, one gets it.
   */
  leasePoller(key: SubKey, holder: string, leaseMs: number): Promise<boolean>;
  /** Gives the lease up if `holder` holds it (a clean stop), so a standby takes over at once. */
  releasePoller(key: SubKey, holder: string): Promise<void>;
  /** Calls `listener(key)` when rows of a work table were added or released. */
  onPending(listener: (key: SubKey) => void): () => void;
  close(): Promise<void>;
}

export function subKeyString(key: SubKey): string {
  return `${key.kind}\u0001${key.name}\u0001${key.sub}`;
}

export function parseSubKey(text: string): SubKey | undefined {
  const [kind, name, sub] = text.split("\u0001");
  if ((kind !== "queue" && kind !== "topic") || name === undefined || sub === undefined) return undefined;
  return { kind, name, sub };
}
