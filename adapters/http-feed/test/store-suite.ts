import { randomUUID } from "node:crypto";
import { isSwitchyardError, type WireMessage } from "@switchyard/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppendInput, FeedStore, SubKey } from "../src/index.js";

/**
 * The store tests every `FeedStore` passes, through the interface only. `createStore` is called
 * more than once: every store it returns must see the same data (the same database or file), which
 * is how durability across a reopen is tested. Names are unique per case, so stores may be shared.
 */
export function defineStoreSuite(name: string, createStore: () => FeedStore): void {
  describe(`FeedStore: ${name}`, () => {
    let store: FeedStore;
    beforeAll(async () => {
      store = createStore();
      await store.init();
    });
    afterAll(async () => {
      await store?.close();
    });

    const uniq = (what: string) => `${what}-${randomUUID().slice(0, 8)}`;
    const event = (id: string, extra: Partial<AppendInput> = {}): AppendInput => ({
      id,
      json: JSON.stringify({ id, specversion: "1.0", type: "t", source: "s" }),
      ...extra,
    });
    const wire = (id: string, key?: string): WireMessage => ({
      id,
      headers: { ce_id: id },
      body: new TextEncoder().encode(id),
      ...(key !== undefined ? { key } : {}),
    });
    const queue = (): SubKey => {
      const name = uniq("q");
      return { kind: "queue", name, sub: name };
    };
    const ids = (records: { id: string }[]) => records.map((r) => r.id);
    const claimedIds = async (key: SubKey, limit = 10, leaseMs = 30_000) =>
      (await store.claim(key, limit, leaseMs)).map((r) => r.message.id);
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

    it("appends in order and reads in pages from a lastEventId, [] at the end", async () => {
      const topic = uniq("t");
      await store.append(topic, [event("a"), event("b"), event("c")], { compact: false });
      await store.append(topic, [event("d"), event("e")], { compact: false });
      const first = await store.read(topic, undefined, 2);
      expect(first.status).toBe("ok");
      if (first.status !== "ok") return;
      expect(ids(first.events)).toEqual(["a", "b"]);
      expect(first.events[0]!.seq).toBeLessThan(first.events[1]!.seq);
      expect(JSON.parse(first.events[0]!.json)).toMatchObject({ id: "a", type: "t" });
      expect(await store.read(topic, "b", 2)).toMatchObject({
        status: "ok",
        events: [{ id: "c" }, { id: "d" }],
      });
      expect(await store.read(topic, "d", 100)).toMatchObject({ status: "ok", events: [{ id: "e" }] });
      expect(await store.read(topic, "e", 100)).toEqual({ status: "ok", events: [] });
      expect(await store.read(uniq("empty"), undefined, 100)).toEqual({ status: "ok", events: [] });
    });

    it("does not append an id the topic already has; other topics are independent", async () => {
      const topic = uniq("t");
      const other = uniq("t");
      await store.append(topic, [event("a"), event("b")], { compact: false });
      await store.append(topic, [event("b"), event("c"), event("a")], { compact: false });
      await store.append(other, [event("a")], { compact: false });
      const read = await store.read(topic, undefined, 100);
      expect(read.status === "ok" && ids(read.events)).toEqual(["a", "b", "c"]);
      const otherRead = await store.read(other, undefined, 100);
      expect(otherRead.status === "ok" && ids(otherRead.events)).toEqual(["a"]);
    });

    it("answers unknown for a lastEventId the topic never had", async () => {
      const topic = uniq("t");
      await store.append(topic, [event("a")], { compact: false });
      expect(await store.read(topic, "never", 10)).toEqual({ status: "unknown" });
      expect(await store.read(uniq("t"), "a", 10)).toEqual({ status: "unknown" });
    });

    it("compacts by subject, keeps tombstones, and resolves compacted ids as positions", async () => {
      const topic = uniq("t");
      await store.append(topic, [event("a1", { subject: "a" }), event("b1", { subject: "b" }), event("n1")], {
        compact: true,
      });
      await store.append(
        topic,
        [
          event("a2", { subject: "a" }),
          event("a3", { subject: "a" }),
          event("b2", { subject: "b", method: "DELETE" }),
        ],
        { compact: true },
      );
      const read = await store.read(topic, undefined, 100);
      expect(read.status === "ok" && ids(read.events)).toEqual(["n1", "a3", "b2"]);
      // a1 and a2 were compacted away: a reader positioned there continues right after them.
      const afterA1 = await store.read(topic, "a1", 100);
      expect(afterA1.status === "ok" && ids(afterA1.events)).toEqual(["n1", "a3", "b2"]);
      const afterA2 = await store.read(topic, "a2", 100);
      expect(afterA2.status === "ok" && ids(afterA2.events)).toEqual(["a3", "b2"]);
      // Without compact, the same subject is kept twice.
      const plain = uniq("t");
      await store.append(plain, [event("x1", { subject: "x" }), event("x2", { subject: "x" })], {
        compact: false,
      });
      const plainRead = await store.read(plain, undefined, 100);
      expect(plainRead.status === "ok" && ids(plainRead.events)).toEqual(["x1", "x2"]);
    });

    it("calls append listeners with the topic, until they unsubscribe", async () => {
      const topic = uniq("t");
      const seen: string[] = [];
      const off = store.onAppend((t) => {
        if (t === topic) seen.push(t);
      });
      await store.append(topic, [event("a")], { compact: false });
      await expect.poll(() => seen.length).toBeGreaterThanOrEqual(1);
      off();
      const before = seen.length;
      await store.append(topic, [event("b")], { compact: false });
      await sleep(100);
      expect(seen.length).toBe(before);
    });

    it("keeps a cursor per subscription, moved only from the expected position", async () => {
      const key: SubKey = { kind: "topic", name: uniq("t"), sub: "s1" };
      const sibling: SubKey = { ...key, sub: "s2" };
      expect(await store.cursor(key)).toBeUndefined();
      await store.ensureCursor(key);
      await store.ensureCursor(sibling);
      expect(await store.cursor(key)).toBeUndefined();
      expect(await store.fill(key, undefined, "b", [wire("a"), wire("b")])).toBe(true);
      expect(await store.cursor(key)).toBe("b");
      expect(await store.cursor(sibling)).toBeUndefined();
      // A poller that read from the old position lost the race: nothing written.
      expect(await store.fill(key, undefined, "c", [wire("stale")])).toBe(false);
      expect(await store.fill(key, "a", "c", [wire("stale")])).toBe(false);
      expect(await store.cursor(key)).toBe("b");
      await store.ensureCursor(key); // does not reset
      expect(await store.cursor(key)).toBe("b");
      expect(await store.fill(key, "b", "c", [wire("c")])).toBe(true);
      expect(await claimedIds(key)).toEqual(["a", "b", "c"]);
      expect(await claimedIds(sibling)).toEqual([]);
    });

    it("claims visible rows oldest first, up to the limit, with a lease; each claim counts an attempt", async () => {
      const key = queue();
      await store.enqueue(key, [wire("a"), wire("b"), wire("c")]);
      const first = await store.claim(key, 2, 30_000);
      expect(first.map((r) => [r.message.id, r.attempt])).toEqual([
        ["a", 1],
        ["b", 1],
      ]);
      expect(await claimedIds(key)).toEqual(["c"]);
      expect(await claimedIds(key)).toEqual([]); // all leased
      expect(await claimedIds(queue())).toEqual([]); // work tables are separate
    });

    it("round-trips messages: id, key, headers and body bytes", async () => {
      const key = queue();
      const body = new Uint8Array([0, 1, 2, 255, 254, 0, 10]);
      await store.enqueue(key, [
        { id: "m1", key: "k", headers: { ce_type: "x", "user-h": "é ✓" }, body },
        { id: "m2", headers: {}, body: new Uint8Array() },
      ]);
      const [m1, m2] = await store.claim(key, 10, 30_000);
      expect(m1!.message).toEqual({ id: "m1", key: "k", headers: { ce_type: "x", "user-h": "é ✓" }, body });
      expect(m2!.message.key).toBeUndefined();
      expect(m2!.message.body).toEqual(new Uint8Array());
      expect(m1!.seq).not.toBe(m2!.seq);
    });

    it("keeps per-key order: a key's younger row waits while an older one is pending", async () => {
      const key = queue();
      await store.enqueue(key, [
        wire("a1", "a"),
        wire("a2", "a"),
        wire("b1", "b"),
        wire("n1"),
        wire("b2", "b"),
      ]);
      const first = await store.claim(key, 10, 30_000);
      expect(first.map((r) => r.message.id)).toEqual(["a1", "b1", "n1"]);
      await store.ack(first[0]!.seq); // a1 done: a2 may go
      await store.nack(first[1]!.seq, 60_000); // b1 delayed: b2 still waits behind it
      expect(await claimedIds(key)).toEqual(["a2"]);
    });

    it("a key's next row is claimable once the one before is acked: same batch, a later one, or one enqueued while the ack runs", async () => {
      const key = queue();
      await store.enqueue(key, [wire("k1", "k"), wire("k2", "k")]);
      await store.enqueue(key, [wire("k3", "k")]);
      for (const id of ["k1", "k2", "k3"]) {
        const rows = await store.claim(key, 10, 30_000);
        expect(rows.map((r) => r.message.id)).toEqual([id]);
        expect(await claimedIds(key)).toEqual([]); // the rest of the key waits behind it
        await store.ack(rows[0]!.seq);
      }
      // An ack and an enqueue of the same key racing: the new row must never be left unclaimable.
      await store.enqueue(key, [wire("r0", "k")]);
      for (let i = 0; i < 20; i++) {
        const rows = await store.claim(key, 10, 30_000);
        expect(rows.map((r) => r.message.id)).toEqual([`r${i}`]);
        await Promise.all([store.ack(rows[0]!.seq), store.enqueue(key, [wire(`r${i + 1}`, "k")])]);
      }
      expect(await claimedIds(key)).toEqual(["r20"]);
    });

    it("ack deletes; nack releases at once or after the delay, counting attempts", async () => {
      const key = queue();
      await store.enqueue(key, [wire("a"), wire("b")]);
      const [a, b] = await store.claim(key, 10, 30_000);
      await store.ack(a!.seq);
      await store.nack(b!.seq, 0);
      const again = await store.claim(key, 10, 30_000);
      expect(again.map((r) => [r.message.id, r.attempt])).toEqual([["b", 2]]);
      await store.nack(again[0]!.seq, 400);
      expect(await claimedIds(key)).toEqual([]);
      await sleep(500);
      const late = await store.claim(key, 10, 30_000);
      expect(late.map((r) => [r.message.id, r.attempt])).toEqual([["b", 3]]);
      await store.ack(late[0]!.seq);
      await store.ack(late[0]!.seq); // acking twice is harmless
      await sleep(50);
      expect(await claimedIds(key)).toEqual([]);
    });

    it("hands a row out again when its lease lapses, unless it was renewed", async () => {
      const key = queue();
      await store.enqueue(key, [wire("lapsed"), wire("renewed")]);
      const [lapsed, renewed] = await store.claim(key, 10, 300);
      await store.renew([renewed!.seq], 30_000);
      await sleep(450);
      const again = await store.claim(key, 10, 30_000);
      expect(again.map((r) => [r.message.id, r.attempt])).toEqual([["lapsed", 2]]);
      expect(lapsed!.attempt).toBe(1);
      await store.renew([], 1000); // nothing to do
    });

    it("calls pending listeners on enqueue, fill and nack", async () => {
      const key = queue();
      const sub: SubKey = { kind: "topic", name: uniq("t"), sub: "s" };
      const seen: string[] = [];
      const off = store.onPending((k) => {
        if (k.name === key.name || k.name === sub.name) seen.push(`${k.kind}:${k.sub}`);
      });
      await store.enqueue(key, [wire("a")]);
      await expect.poll(() => seen.includes(`queue:${key.sub}`)).toBe(true);
      await store.ensureCursor(sub);
      await store.fill(sub, undefined, "x", [wire("x")]);
      await expect.poll(() => seen.includes("topic:s")).toBe(true);
      const [row] = await store.claim(key, 1, 30_000);
      seen.length = 0;
      await store.nack(row!.seq, 0);
      await expect.poll(() => seen.includes(`queue:${key.sub}`)).toBe(true);
      off();
    });

    it("is durable: a new store over the same data sees feeds, cursors and pending rows", async () => {
      const topic = uniq("t");
      const key: SubKey = { kind: "topic", name: topic, sub: "s" };
      await store.append(topic, [event("a")], { compact: false });
      await store.ensureCursor(key);
      await store.fill(key, undefined, "a", [wire("a")]);
      const reopened = createStore();
      try {
        await reopened.init();
        const read = await reopened.read(topic, undefined, 10);
        expect(read.status === "ok" && ids(read.events)).toEqual(["a"]);
        expect(await reopened.cursor(key)).toBe("a");
        expect((await reopened.claim(key, 10, 30_000)).map((r) => r.message.id)).toEqual(["a"]);
      } finally {
        await reopened.close();
      }
    });

    it("poller lease: acquired when free, renewed by its holder, refused to others, taken over after expiry, released", async () => {
      const key: SubKey = { kind: "topic", name: uniq("t"), sub: "s" };
      const other: SubKey = { kind: "topic", name: key.name, sub: "other" };
      expect(await store.leasePoller(key, "a", 1000)).toBe(true); // free: acquired
      expect(await store.leasePoller(key, "b", 1000)).toBe(false); // held by a
      expect(await store.leasePoller(other, "b", 1000)).toBe(true); // another subscription: its own lease
      await sleep(600);
      expect(await store.leasePoller(key, "a", 1000)).toBe(true); // renewed: runs 1 s from now
      await sleep(600);
      expect(await store.leasePoller(key, "b", 1000)).toBe(false); // would have expired without the renewal
      await sleep(500);
      expect(await store.leasePoller(key, "b", 60_000)).toBe(true); // a's lease lapsed: b takes over
      expect(await store.leasePoller(key, "a", 400)).toBe(false); // and a cannot renew any more
      await store.releasePoller(key, "a"); // not the holder: no effect
      expect(await store.leasePoller(key, "a", 400)).toBe(false);
      await store.releasePoller(key, "b");
      expect(await store.leasePoller(key, "a", 400)).toBe(true); // released: free at once
      // Another store on the same database sees the same lease.
      const second = createStore();
      try {
        await second.init();
        expect(await second.leasePoller(key, "c", 400)).toBe(false);
      } finally {
        await second.close();
      }
    });

    it("poller lease: of many concurrent acquirers exactly one wins", async () => {
      const key: SubKey = { kind: "topic", name: uniq("t"), sub: "s" };
      const stores = [store, createStore(), createStore()];
      try {
        await Promise.all(stores.map((s) => s.init()));
        const won = await Promise.all(
          Array.from({ length: 12 }, (_, n) => stores[n % stores.length]!.leasePoller(key, `h${n}`, 30_000)),
        );
        expect(won.filter(Boolean)).toHaveLength(1);
      } finally {
        await Promise.all(stores.slice(1).map((s) => s.close()));
      }
    });

    it("closes once; a closed store rejects with a SwitchyardError", async () => {
      const closing = createStore();
      await closing.init();
      await closing.close();
      await closing.close();
      const error = await closing.read(uniq("t"), undefined, 10).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isSwitchyardError(error)).toBe(true);
    });
  });
}
