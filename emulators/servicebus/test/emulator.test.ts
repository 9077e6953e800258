import {
  ServiceBusClient,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from "@azure/service-bus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServiceBusEmulator, startEmulator } from "../src/index.js";

let emulator: ServiceBusEmulator;
let client: ServiceBusClient;

beforeAll(async () => {
  emulator = await startEmulator({
    port: 0,
    adminPort: 0,
    config: {
      queues: [
        { name: "basic" },
        { name: "abandon" },
        { name: "dead" },
        { name: "expiring", deadLetteringOnMessageExpiration: true },
        { name: "credit" },
        { name: "scheduled" },
        { name: "short-lock", lockDurationMs: 300, maxDeliveryCount: 2 },
        { name: "peek" },
        { name: "batch" },
        { name: "rad" },
        { name: "defer" },
        { name: "renew", lockDurationMs: 500 },
        { name: "small", maxMessageSizeBytes: 2048 },
        { name: "sessions", requiresSession: true },
        { name: "session-pair", requiresSession: true },
        { name: "session-wait", requiresSession: true },
        { name: "session-lock", requiresSession: true, lockDurationMs: 400 },
        { name: "session-state", requiresSession: true },
      ],
      topics: [
        { name: "events", subscriptions: [{ name: "a" }, { name: "b" }] },
        {
          name: "ruled",
          subscriptions: [
            { name: "all" },
            { name: "eu", rules: [{ name: "eu-big", filter: { sql: "region = 'eu' AND amount > 10" } }] },
            {
              name: "vip",
              rules: [
                {
                  name: "gold",
                  filter: { correlation: { subject: "vip", applicationProperties: { tier: "gold" } } },
                },
              ],
            },
            { name: "managed" },
            {
              name: "sql",
              rules: [
                {
                  name: "many",
                  filter: {
                    sql: "color IN ('red', 'green') AND NOT (size > 3) AND missing IS NULL AND EXISTS(color) AND code LIKE 'a!_%' ESCAPE '!'",
                  },
                },
              ],
            },
          ],
        },
      ],
    },
  });
  client = new ServiceBusClient(emulator.connectionString, {
    retryOptions: { maxRetries: 0, timeoutInMs: 5000 },
  });
});

afterAll(async () => {
  await client?.close();
  await emulator?.stop();
});

async function receiveOne(receiver: ServiceBusReceiver, waitMs = 3000): Promise<ServiceBusReceivedMessage> {
  const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: waitMs });
  if (!message) throw new Error("no message");
  return message;
}

describe("servicebus emulator, driven by @azure/service-bus", () => {
  it("send, peek-lock receive with broker annotations, complete", async () => {
    const sender = client.createSender("basic");
    await sender.sendMessages({
      body: Buffer.from("hello"),
      messageId: "m-1",
      correlationId: "c-1",
      subject: "greeting",
      contentType: "application/octet-stream",
      applicationProperties: { a: "1", n: 7 },
    });
    const receiver = client.createReceiver("basic");
    const message = await receiveOne(receiver);
    expect(Buffer.from(message.body as Buffer).toString()).toBe("hello");
    expect(message).toMatchObject({
      messageId: "m-1",
      correlationId: "c-1",
      subject: "greeting",
      contentType: "application/octet-stream",
      applicationProperties: { a: "1", n: 7 },
      deliveryCount: 0,
    });
    expect(message.lockToken).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(message.sequenceNumber)).toBe(1);
    expect(message.enqueuedTimeUtc).toBeInstanceOf(Date);
    expect(message.lockedUntilUtc!.getTime()).toBeGreaterThan(Date.now());
    await receiver.completeMessage(message);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    await receiver.close();
    await sender.close();
  });

  it("abandon redelivers with deliveryCount + 1", async () => {
    await client.createSender("abandon").sendMessages({ body: "x" });
    const receiver = client.createReceiver("abandon");
    const first = await receiveOne(receiver);
    await receiver.abandonMessage(first, { note: "again" });
    const second = await receiveOne(receiver);
    expect(second.deliveryCount).toBe(1);
    expect(second.applicationProperties?.note).toBe("again");
    expect(second.sequenceNumber!.toNumber()).toBe(first.sequenceNumber!.toNumber());
    await receiver.completeMessage(second);
    await receiver.close();
  });

  it("deadLetter moves to $DeadLetterQueue with reason, description and properties", async () => {
    await client.createSender("dead").sendMessages({ body: "x", applicationProperties: { keep: "me" } });
    const receiver = client.createReceiver("dead");
    const message = await receiveOne(receiver);
    await receiver.deadLetterMessage(message, {
      deadLetterReason: "bad",
      deadLetterErrorDescription: "really bad",
      extra: "yes",
    } as never);
    const dlq = client.createReceiver("dead", { subQueueType: "deadLetter" });
    const dead = await receiveOne(dlq);
    expect(dead.deadLetterReason).toBe("bad");
    expect(dead.deadLetterErrorDescription).toBe("really bad");
    expect(dead.applicationProperties).toMatchObject({ keep: "me", extra: "yes" });
    await dlq.completeMessage(dead);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    await dlq.close();
    await receiver.close();
  });

  it("an expired message moves to $DeadLetterQueue (TTLExpiredException), where it does not expire", async () => {
    await client.createSender("expiring").sendMessages({ messageId: "ttl", body: "x", timeToLive: 100 });
    // A time to live is time: outlive it. Expiry is applied when the queue is next looked at (a peek;
    // the client peeks on from the last sequence number it saw, so this is the first peek).
    await new Promise((r) => setTimeout(r, 150));
    const peeker = client.createReceiver("expiring");
    expect(await peeker.peekMessages(1)).toEqual([]);
    await peeker.close();
    // Outlive it again: a dead letter stays until it is received.
    await new Promise((r) => setTimeout(r, 250));
    const dlq = client.createReceiver("expiring", { subQueueType: "deadLetter" });
    const dead = await receiveOne(dlq);
    expect(dead.messageId).toBe("ttl");
    expect(dead.deadLetterReason).toBe("TTLExpiredException");
    expect(dead.deadLetterSource).toBe("expiring");
    await dlq.completeMessage(dead);
    await dlq.close();
  });

  it("scheduled messages appear at their time and can be cancelled", async () => {
    const sender = client.createSender("scheduled");
    const at = new Date(Date.now() + 700);
    const [keep] = await sender.scheduleMessages({ body: "later" }, at);
    const [cancel] = await sender.scheduleMessages({ body: "never" }, at);
    await sender.cancelScheduledMessages(cancel!);
    const receiver = client.createReceiver("scheduled");
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    const message = await receiveOne(receiver, 3000);
    expect(Date.now()).toBeGreaterThanOrEqual(at.getTime() - 5);
    expect(message.body).toBe("later");
    expect(message.sequenceNumber!.toNumber()).toBe(keep!.toNumber());
    await receiver.completeMessage(message);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 })).toEqual([]);
    await receiver.close();
  });

  it("a lock that expires redelivers and counts; past maxDeliveryCount it is dead-lettered", async () => {
    await client.createSender("short-lock").sendMessages({ body: "slow" });
    // No automatic renewal, so the lock really lapses.
    const receiver = client.createReceiver("short-lock", { maxAutoLockRenewalDurationInMs: 0 });
    const first = await receiveOne(receiver);
    expect(first.deliveryCount).toBe(0);
    const second = await receiveOne(receiver, 3000);
    expect(second.deliveryCount).toBe(1);
    await expect(receiver.completeMessage(first)).rejects.toThrow(/lock/i);
    // Let the second lock lapse too: maxDeliveryCount 2 reached.
    const dlq = client.createReceiver("short-lock", { subQueueType: "deadLetter" });
    const dead = await receiveOne(dlq, 3000);
    expect(dead.deadLetterReason).toBe("MaxDeliveryCountExceeded");
    await dlq.completeMessage(dead);
    await dlq.close();
    await receiver.close();
  });

  it("renewLock extends the lock", async () => {
    await client.createSender("renew").sendMessages({ body: "r" });
    const receiver = client.createReceiver("renew");
    const message = await receiveOne(receiver);
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const until = await receiver.renewMessageLock(message);
      expect(until.getTime()).toBeGreaterThan(Date.now());
    }
    await receiver.completeMessage(message);
    await receiver.close();
  });

  it("peek shows messages without locking them", async () => {
    await client.createSender("peek").sendMessages([{ body: "p1" }, { body: "p2" }]);
    const receiver = client.createReceiver("peek");
    const peeked = await receiver.peekMessages(10);
    expect(peeked.map((m) => m.body)).toEqual(["p1", "p2"]);
    const received = await receiver.receiveMessages(2, { maxWaitTimeInMs: 1000 });
    expect(received.map((m) => m.body).sort()).toEqual(["p1", "p2"]);
    for (const m of received) await receiver.completeMessage(m);
    await receiver.close();
  });

  it("batches (format 0x80013700) arrive whole; topics fan out to every subscription", async () => {
    const sender = client.createSender("events");
    const batch = await sender.createMessageBatch();
    for (let i = 0; i < 5; i++) expect(batch.tryAddMessage({ body: `e${i}` })).toBe(true);
    await sender.sendMessages(batch);
    for (const name of ["a", "b"]) {
      const receiver = client.createReceiver("events", name, { receiveMode: "receiveAndDelete" });
      const got: unknown[] = [];
      while (got.length < 5) {
        const messages = await receiver.receiveMessages(5, { maxWaitTimeInMs: 1000 });
        if (messages.length === 0) break;
        got.push(...messages.map((m) => m.body));
      }
      expect(got).toEqual(["e0", "e1", "e2", "e3", "e4"]);
      await receiver.close();
    }
  });

  it("receiveMessages(1) locks one message only; the rest stay available to other receivers", async () => {
    const sender = client.createSender("credit");
    await sender.sendMessages(Array.from({ length: 6 }, (_, i) => ({ messageId: `c${i}`, body: i })));
    const first = client.createReceiver("credit");
    for (const expected of ["c0", "c1"]) {
      const got = await first.receiveMessages(1, { maxWaitTimeInMs: 3000 });
      expect(got.map((m) => m.messageId)).toEqual([expected]);
      await first.completeMessage(got[0]!);
    }
    // Another receiver gets every other message at once: none is held (locked, unsent) for `first`.
    const second = client.createReceiver("credit");
    const rest: ServiceBusReceivedMessage[] = [];
    const until = Date.now() + 5000;
    while (rest.length < 4 && Date.now() < until) {
      rest.push(...(await second.receiveMessages(4 - rest.length, { maxWaitTimeInMs: until - Date.now() })));
    }
    expect(rest.map((m) => m.messageId)).toEqual(["c2", "c3", "c4", "c5"]);
    for (const m of rest) expect(m.deliveryCount).toBe(0);
    for (const m of rest) await second.completeMessage(m);
    expect(await first.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    await first.close();
    await second.close();
  });

  it("subscription rules: SQL and correlation filters pick what each subscription gets", async () => {
    await client.createSender("ruled").sendMessages([
      { messageId: "r1", body: 1, applicationProperties: { region: "eu", amount: 50 } },
      { messageId: "r2", body: 2, applicationProperties: { region: "eu", amount: 5 } },
      { messageId: "r3", body: 3, applicationProperties: { region: "us", amount: 50 } },
      { messageId: "r4", body: 4, subject: "vip", applicationProperties: { tier: "gold" } },
      { messageId: "r5", body: 5, subject: "vip", applicationProperties: { tier: "silver" } },
    ]);
    const drain = async (sub: string, count: number) => {
      const receiver = client.createReceiver("ruled", sub, { receiveMode: "receiveAndDelete" });
      const got: string[] = [];
      const until = Date.now() + 3000;
      while (got.length < count && Date.now() < until) {
        const batch = await receiver.receiveMessages(count - got.length, {
          maxWaitTimeInMs: until - Date.now(),
        });
        got.push(...batch.map((m) => String(m.messageId)));
      }
      // Nothing beyond what the rules let through.
      got.push(
        ...(await receiver.receiveMessages(5, { maxWaitTimeInMs: 200 })).map((m) => String(m.messageId)),
      );
      await receiver.close();
      return got.sort();
    };
    expect(await drain("all", 5)).toEqual(["r1", "r2", "r3", "r4", "r5"]);
    expect(await drain("eu", 1)).toEqual(["r1"]);
    expect(await drain("vip", 1)).toEqual(["r4"]);
    await drain("managed", 5);
  });

  it("subscription rules: IN, NOT, IS NULL, EXISTS, LIKE … ESCAPE, and unknown (missing) is no match", async () => {
    await client.createSender("ruled").sendMessages([
      { messageId: "s1", body: 1, applicationProperties: { color: "red", size: 2, code: "a_1" } },
      { messageId: "s2", body: 2, applicationProperties: { color: "blue", size: 2, code: "a_1" } },
      { messageId: "s3", body: 3, applicationProperties: { color: "green", size: 5, code: "a_x" } },
      { messageId: "s4", body: 4, applicationProperties: { color: "red", size: 1, code: "ab" } },
      {
        messageId: "s5",
        body: 5,
        applicationProperties: { color: "red", size: 1, code: "a_z", missing: "x" },
      },
      { messageId: "s6", body: 6, applicationProperties: { size: 1, code: "a_" } },
      { messageId: "s7", body: 7, applicationProperties: { color: "green", code: "a_q" } },
    ]);
    const receiver = client.createReceiver("ruled", "sql", { receiveMode: "receiveAndDelete" });
    const got = (await receiver.receiveMessages(1, { maxWaitTimeInMs: 3000 })).map((m) => m.messageId);
    got.push(...(await receiver.receiveMessages(7, { maxWaitTimeInMs: 300 })).map((m) => m.messageId));
    expect(got).toEqual(["s1"]);
    await receiver.close();
    for (const sub of ["all", "eu", "vip", "managed"]) {
      const r = client.createReceiver("ruled", sub, { receiveMode: "receiveAndDelete" });
      while ((await r.receiveMessages(10, { maxWaitTimeInMs: 200 })).length > 0) {}
      await r.close();
    }
  });

  it("subscription rules: the rule manager lists, creates and deletes rules; bad SQL is refused", async () => {
    const rules = client.createRuleManager("ruled", "managed");
    const listed = async () => {
      const out: Array<{ name: string; filter: unknown }> = [];
      for await (const rule of rules.listRules()) out.push({ name: rule.name, filter: rule.filter });
      return out;
    };
    expect(await listed()).toEqual([{ name: "$Default", filter: { sqlExpression: "1=1" } }]);
    await rules.createRule("big", { sqlExpression: "amount >= 100 OR sys.Label LIKE 'urgent%'" });
    await rules.createRule("blue", { applicationProperties: { color: "blue" }, contentType: "text/plain" });
    await rules.deleteRule("$Default");
    expect((await listed()).map((r) => r.name)).toEqual(["big", "blue"]);
    expect((await listed())[1]!.filter).toMatchObject({
      contentType: "text/plain",
      applicationProperties: { color: "blue" },
    });
    await expect(rules.createRule("big", { sqlExpression: "1=1" })).rejects.toThrow(/exists/);
    await expect(rules.createRule("broken", { sqlExpression: "amount >>> 3" })).rejects.toThrow(/SQL filter/);
    await expect(rules.deleteRule("nope")).rejects.toThrow(/does not exist/);

    await client.createSender("ruled").sendMessages([
      { messageId: "m1", body: 1, applicationProperties: { amount: 150 } },
      { messageId: "m2", body: 2, applicationProperties: { amount: 99 } },
      { messageId: "m3", body: 3, subject: "urgent: now" },
      { messageId: "m4", body: 4, contentType: "text/plain", applicationProperties: { color: "blue" } },
      { messageId: "m5", body: 5, applicationProperties: { color: "blue" } },
    ]);
    const receiver = client.createReceiver("ruled", "managed", { receiveMode: "receiveAndDelete" });
    const got: string[] = [];
    const until = Date.now() + 3000;
    while (got.length < 3 && Date.now() < until) {
      const batch = await receiver.receiveMessages(3 - got.length, { maxWaitTimeInMs: until - Date.now() });
      got.push(...batch.map((m) => String(m.messageId)));
    }
    got.push(
      ...(await receiver.receiveMessages(5, { maxWaitTimeInMs: 200 })).map((m) => String(m.messageId)),
    );
    expect(got.sort()).toEqual(["m1", "m3", "m4"]);
    await receiver.close();
    // The other subscriptions are untouched by these rules.
    const all = client.createReceiver("ruled", "all", { receiveMode: "receiveAndDelete" });
    const allGot: string[] = [];
    while (allGot.length < 5) {
      const batch = await all.receiveMessages(5 - allGot.length, { maxWaitTimeInMs: 3000 });
      if (batch.length === 0) break;
      allGot.push(...batch.map((m) => String(m.messageId)));
    }
    expect(allGot.sort()).toEqual(["m1", "m2", "m3", "m4", "m5"]);
    await all.close();
  });

  it("subscribe() streams with a bounded number of messages in flight", async () => {
    const sender = client.createSender("batch");
    await sender.sendMessages(Array.from({ length: 20 }, (_, i) => ({ body: i })));
    const receiver = client.createReceiver("batch");
    const got: number[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    await new Promise<void>((resolve, reject) => {
      receiver.subscribe(
        {
          processMessage: async (m) => {
            inFlight++;
            maxInFlight = Math.max(maxInFlight, inFlight);
            await new Promise((r) => setTimeout(r, 5));
            got.push(m.body as number);
            inFlight--;
            if (got.length === 20) resolve();
          },
          processError: async (e) => reject(e.error),
        },
        { maxConcurrentCalls: 3 },
      );
    });
    expect(got.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(maxInFlight).toBeLessThanOrEqual(3);
    await receiver.close();
  });

  it("defer, then receiveDeferredMessages by sequence number", async () => {
    await client.createSender("defer").sendMessages({ body: "d" });
    const receiver = client.createReceiver("defer");
    const message = await receiveOne(receiver);
    await receiver.deferMessage(message);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    const [deferred] = await receiver.receiveDeferredMessages(message.sequenceNumber!);
    expect(deferred?.body).toBe("d");
    await receiver.completeMessage(deferred!);
    expect(await receiver.peekMessages(1)).toEqual([]);
    await receiver.close();
  });

  it("an oversize message is refused; an unknown entity is a clear not-found error", async () => {
    const sender = client.createSender("small");
    await expect(sender.sendMessages({ body: Buffer.alloc(4096) })).rejects.toThrow();
    await sender.sendMessages({ body: "fits" });
    const receiver = client.createReceiver("small", { receiveMode: "receiveAndDelete" });
    expect((await receiveOne(receiver)).body).toBe("fits");
    await receiver.close();
    const missing = client.createSender("no-such-queue");
    await expect(missing.sendMessages({ body: "x" })).rejects.toThrow(/no-such-queue/);
    await missing.close().catch(() => {});
  });

  it("the admin API declares entities", async () => {
    const put = await fetch(`${emulator.adminUrl}/queues/made-by-admin`, {
      method: "PUT",
      body: JSON.stringify({ maxDeliveryCount: 3 }),
    });
    expect(put.status).toBe(201);
    expect((await fetch(`${emulator.adminUrl}/queues/made-by-admin`, { method: "PUT" })).status).toBe(200);
    await client.createSender("made-by-admin").sendMessages({ body: "ok" });
    const info = await (await fetch(`${emulator.adminUrl}/queues/made-by-admin`)).json();
    expect(info).toMatchObject({ activeMessageCount: 1, maxDeliveryCount: 3 });
    expect((await fetch(`${emulator.adminUrl}/topics/nope/subscriptions/x`)).status).toBe(404);
  });

  it("sessions: acceptSession gets only its session's messages, in order; acceptNextSession the next", async () => {
    const sender = client.createSender("sessions");
    const batch = [];
    for (let i = 0; i < 5; i++) {
      batch.push({ body: `a-${i}`, sessionId: "a" });
      batch.push({ body: `b-${i}`, sessionId: "b" });
    }
    await sender.sendMessages(batch);
    const a = await client.acceptSession("sessions", "a");
    expect(a.sessionId).toBe("a");
    expect(a.sessionLockedUntilUtc!.getTime()).toBeGreaterThan(Date.now());
    const got: string[] = [];
    while (got.length < 5) {
      for (const m of await a.receiveMessages(5, { maxWaitTimeInMs: 1000 })) {
        expect(m.sessionId).toBe("a");
        got.push(String(m.body));
        await a.completeMessage(m);
      }
    }
    expect(got).toEqual(["a-0", "a-1", "a-2", "a-3", "a-4"]);
    expect(await a.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    // "a" is empty and held: the next available session is "b".
    const b = await client.acceptNextSession("sessions");
    expect(b.sessionId).toBe("b");
    const rest: string[] = [];
    while (rest.length < 5) {
      for (const m of await b.receiveMessages(5, { maxWaitTimeInMs: 1000 })) {
        rest.push(String(m.body));
        await b.completeMessage(m);
      }
    }
    expect(rest).toEqual(["b-0", "b-1", "b-2", "b-3", "b-4"]);
    await a.close();
    await b.close();
    // Abandon returns a session's message to that session, counted.
    await sender.sendMessages({ body: "c-0", sessionId: "c" });
    const c = await client.acceptSession("sessions", "c");
    const first = await receiveOne(c);
    await c.abandonMessage(first);
    const again = await receiveOne(c);
    expect(String(again.body)).toBe("c-0");
    expect(again.deliveryCount).toBe(1);
    await c.completeMessage(again);
    await c.close();
    await sender.close();
  });

  it("sessions: one receiver per session; two receivers on two sessions in parallel", async () => {
    const sender = client.createSender("session-pair");
    await sender.sendMessages(
      ["x", "y"].flatMap((s) => [0, 1, 2].map((i) => ({ body: `${s}-${i}`, sessionId: s }))),
    );
    const [r1, r2] = await Promise.all([
      client.acceptNextSession("session-pair"),
      client.acceptNextSession("session-pair"),
    ]);
    expect([r1.sessionId, r2.sessionId].sort()).toEqual(["x", "y"]);
    await expect(client.acceptSession("session-pair", r1.sessionId)).rejects.toMatchObject({
      code: "SessionCannotBeLocked",
    });
    const drain = async (r: ServiceBusReceiver) => {
      const out: string[] = [];
      while (out.length < 3) {
        for (const m of await r.receiveMessages(3, { maxWaitTimeInMs: 1000 })) {
          out.push(String(m.body));
          await r.completeMessage(m);
        }
      }
      return out;
    };
    const [o1, o2] = await Promise.all([drain(r1), drain(r2)]);
    expect(o1).toEqual([0, 1, 2].map((i) => `${(r1 as any).sessionId}-${i}`));
    expect(o2).toEqual([0, 1, 2].map((i) => `${(r2 as any).sessionId}-${i}`));
    await r1.close();
    // Released on close: it can be accepted again.
    const again = await client.acceptSession("session-pair", o1[0]!.slice(0, 1));
    await again.close();
    await r2.close();
    await sender.close();
  });

  it("sessions: acceptNextSession waits for a session with messages; refusals are clear", async () => {
    const waiting = client.acceptNextSession("session-wait");
    await new Promise((r) => setTimeout(r, 300));
    const sender = client.createSender("session-wait");
    await sender.sendMessages({ body: "late", sessionId: "late" });
    const receiver = await waiting;
    expect(receiver.sessionId).toBe("late");
    const message = await receiveOne(receiver);
    expect(String(message.body)).toBe("late");
    await receiver.completeMessage(message);
    await receiver.close();
    // A message without a session id, and a plain receiver, are refused on a session queue.
    await expect(sender.sendMessages({ body: "no session" })).rejects.toThrow(/SessionId/);
    const plainReceiver = client.createReceiver("session-wait");
    await expect(plainReceiver.receiveMessages(1, { maxWaitTimeInMs: 1000 })).rejects.toThrow(
      /requires sessions/,
    );
    await plainReceiver.close();
    // With nothing to take, acceptNextSession ends with a timeout error, not a hang.
    const quick = new ServiceBusClient(emulator.connectionString, {
      retryOptions: { maxRetries: 0, timeoutInMs: 500 },
    });
    const started = Date.now();
    await expect(quick.acceptNextSession("session-wait")).rejects.toBeTruthy();
    expect(Date.now() - started).toBeLessThan(3000);
    await quick.close();
    await sender.close();
  });

  it("sessions: the session lock lapses without renewal and is renewed by renewSessionLock", async () => {
    const sender = client.createSender("session-lock");
    await sender.sendMessages([
      { body: "1", sessionId: "s" },
      { body: "2", sessionId: "s" },
    ]);
    const receiver = await client.acceptSession("session-lock", "s", {
      maxAutoLockRenewalDurationInMs: 0,
    });
    const before = receiver.sessionLockedUntilUtc!.getTime();
    await new Promise((r) => setTimeout(r, 200));
    await receiver.renewSessionLock();
    expect(receiver.sessionLockedUntilUtc!.getTime()).toBeGreaterThan(before);
    const first = await receiveOne(receiver);
    expect(String(first.body)).toBe("1");
    // Not renewed any more: the lock lapses, the unsettled message goes back, another receiver takes it.
    await new Promise((r) => setTimeout(r, 700));
    const other = await client.acceptSession("session-lock", "s");
    const redelivered = await receiveOne(other);
    expect(String(redelivered.body)).toBe("1");
    await other.completeMessage(redelivered);
    expect(String((await receiveOne(other)).body)).toBe("2");
    await other.close();
    await receiver.close().catch(() => {});
    await sender.close();
  });

  it("sessions: session state get/set, kept across receivers", async () => {
    const sender = client.createSender("session-state");
    await sender.sendMessages([
      { body: "1", sessionId: "p" },
      { body: "2", sessionId: "q" },
    ]);
    const receiver = await client.acceptSession("session-state", "p");
    expect(await receiver.getSessionState()).toBeFalsy();
    await receiver.setSessionState(Buffer.from("checkpoint-1"));
    expect(Buffer.from(await receiver.getSessionState()).toString()).toBe("checkpoint-1");
    await receiver.close();
    const again = await client.acceptSession("session-state", "p");
    expect(Buffer.from(await again.getSessionState()).toString()).toBe("checkpoint-1");
    await again.close();
    await sender.close();
  });
});
