import { type AddressInfo, createServer, type Socket } from "node:net";
import { SQSClient } from "@aws-sdk/client-sqs";
import { messages } from "@switchyard/conformance";
import { createBus, type Delivery, isSwitchyardError, type WireMessage } from "@switchyard/core";
import { describe, expect, it } from "vitest";
import {
  ATTR,
  awsError,
  createTransport,
  decodeMessage,
  encodeMessage,
  envelopeLimit,
  escapeName,
  resolveAwsOptions,
  SqsTransport,
  sqsQueueName,
  subscriptionQueueName,
} from "../src/index.js";

function roundTrip(message: WireMessage): WireMessage {
  const encoded = encodeMessage(message, 256 * 1024, "q");
  const attributes = Object.fromEntries(Object.entries(encoded.attributes).map(([k, v]) => [k, { ...v }]));
  return decodeMessage(encoded.body, attributes, "fallback");
}

describe("aws-sqs URL and options", () => {
  it("reads a region host with an endpoint query, a host:port endpoint, and bare sqs://", () => {
    const a = resolveAwsOptions(new URL("sqs://eu-west-2?endpoint=http://127.0.0.1:9324"));
    expect([a.region, a.endpoint]).toEqual(["eu-west-2", "http://127.0.0.1:9324"]);
    const b = resolveAwsOptions(new URL("sqs://127.0.0.1:9324?region=us-west-1&fifo=true&waitTime=2"));
    expect([b.region, b.endpoint, b.fifo, b.waitTimeSeconds]).toEqual([
      "us-west-1",
      "http://127.0.0.1:9324",
      true,
      2,
    ]);
    const c = resolveAwsOptions(new URL("sqs://"), { region: "ap-south-1" });
    expect([c.region, c.endpoint, c.maxMessageBytes]).toEqual(["ap-south-1", undefined, 256 * 1024]);
    expect([c.requestTimeoutMs, c.connectionTimeoutMs]).toEqual([30_000, 5000]);
    const d = resolveAwsOptions(new URL("sqs://us-east-1?requestTimeout=2500&connectionTimeout=700"));
    expect([d.requestTimeoutMs, d.connectionTimeoutMs]).toEqual([2500, 700]);
    expect(resolveAwsOptions(new URL("sqs://us-east-1?requestTimeout=2500")).connectionTimeoutMs).toBe(2500);
    expect(() => resolveAwsOptions(new URL("sqs://us-east-1?requestTimeout=soon"))).toThrow(
      /requestTimeoutMs/,
    );
  });

  it("fails a call on a connection that never answers, in bounded time, instead of waiting for ever", async () => {
    // Accepts and stays silent: what a request meets on a connection that died without a reset.
    const held = new Set<Socket>();
    const silent = createServer((socket) => held.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    const transport = new SqsTransport({
      endpoint: `http://127.0.0.1:${port}`,
      region: "us-east-1",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      requestTimeoutMs: 300,
    });
    const started = Date.now();
    try {
      const error = await transport.base.queues.url("silent").then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isSwitchyardError(error, "TRANSPORT_ERROR"), String(error)).toBe(true);
      expect(String(error)).toMatch(/TimeoutError/);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await transport.close();
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });

  it("refuses credentials in the URL without echoing them, and bad values with CONFIG_INVALID", () => {
    let error: unknown;
    try {
      createTransport(new URL("sqs://AKIAEXAMPLE:s3cr3t@127.0.0.1:9324"));
    } catch (e) {
      error = e;
    }
    expect(isSwitchyardError(error, "CONFIG_INVALID")).toBe(true);
    expect(String((error as Error).message)).not.toContain("s3cr3t");
    expect(() => resolveAwsOptions(new URL("sqs://us-east-1?region=nowhere"))).toThrow(/not an AWS region/);
    expect(() => resolveAwsOptions(new URL("sqs://us-east-1?waitTime=99"))).toThrow(/waitTimeSeconds/);
    expect(() => resolveAwsOptions(undefined, { endpoint: "ftp://x" })).toThrow(/http/);
  });

  it("claims a size limit that survives base64 and scales with the configured SQS limit", () => {
    const t = new SqsTransport({ region: "us-east-1" });
    expect(t.capabilities.maxMessageBytes).toBe(envelopeLimit(256 * 1024));
    expect(envelopeLimit(256 * 1024) * (4 / 3)).toBeLessThan(256 * 1024);
    const big = new SqsTransport({ region: "us-east-1", maxMessageBytes: 1024 * 1024 });
    expect(big.capabilities.maxMessageBytes).toBeGreaterThan(700 * 1024);
    void t.close();
    void big.close();
  });

  it("turns an SDK SyntaxError (an emulator's HTML 500) into a typed TRANSPORT_ERROR", () => {
    const error = awsError(
      "StartMessageMoveTask",
      Object.assign(new SyntaxError("Unexpected token <"), {
        $metadata: { httpStatusCode: 500 },
      }),
    );
    expect(error.code).toBe("TRANSPORT_ERROR");
    expect(error.message).toMatch(/may not implement StartMessageMoveTask/);
  });
});

describe("aws-sqs names", () => {
  it("keeps SQS-safe names, escapes the rest injectively, and keeps within 80 characters", () => {
    expect(sqsQueueName("orders")).toBe("orders");
    expect(sqsQueueName("orders.dlq")).toBe("orders_ddlq");
    expect(sqsQueueName("orders_dlq")).toBe("orders__dlq");
    expect(sqsQueueName("a/b ü")).toBe("a_x2fb_x20_xc3bc");
    expect(sqsQueueName("jobs.fifo")).toBe("jobs.fifo");
    expect(sqsQueueName("jobs", { fifo: true })).toBe("jobs.fifo");
    const names = ["a.b", "a_b", "a_db", "a__b", "a-b", "ab"].map((n) => sqsQueueName(n));
    expect(new Set(names).size).toBe(names.length);
    const long = sqsQueueName("x".repeat(200));
    expect(long.length).toBeLessThanOrEqual(80);
    expect(long).not.toBe(sqsQueueName(`${"x".repeat(199)}y`));
    for (const n of names) expect(n).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
  });

  it("subscription queues share their topic's prefix and no other topic's", () => {
    const q = subscriptionQueueName("orders", "billing");
    expect(q).toBe("orders_sbilling");
    expect(subscriptionQueueName("orders.eu", "x")).toBe("orders_deu_sx");
    // A queue or DLQ never falls under a topic's prefix.
    expect(sqsQueueName("orders.billing.dlq").startsWith("orders_s")).toBe(false);
    expect(sqsQueueName("orders_sbilling").startsWith("orders_s")).toBe(false);
    expect(escapeName("orders_s")).toBe("orders__s");
  });
});

describe("aws-sqs message encoding", () => {
  it("sends text bodies as text and everything else as base64, byte-exact", () => {
    const text = encodeMessage(
      { id: "1", headers: {}, body: new TextEncoder().encode('{"a":"ü"}') },
      1e6,
      "q",
    );
    expect(text.body).toBe('{"a":"ü"}');
    expect(text.attributes[ATTR.encoding]).toBeUndefined();
    for (const body of [
      new Uint8Array(0),
      Uint8Array.from({ length: 256 }, (_, i) => i),
      new TextEncoder().encode("a\r\nb"),
      new Uint8Array([0xff, 0xfe]),
    ]) {
      expect(Buffer.from(roundTrip({ id: "2", headers: {}, body }).body)).toEqual(Buffer.from(body));
    }
  });

  it("packs any number of headers into one attribute and keeps id and key", () => {
    const headers = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`h${i}`, `v${i} ü`]));
    const encoded = encodeMessage({ id: "id-1", key: "k", headers, body: new Uint8Array([1]) }, 1e6, "q");
    expect(Object.keys(encoded.attributes).length).toBeLessThanOrEqual(10);
    expect(roundTrip({ id: "id-1", key: "k", headers, body: new Uint8Array([1]) })).toEqual({
      id: "id-1",
      key: "k",
      headers,
      body: new Uint8Array([1]),
    });
  });

  it("counts body and attributes in bytes and refuses an oversize message with MESSAGE_TOO_LARGE", () => {
    const body = new Uint8Array(3000).fill(0xff); // base64: 4000 characters
    let error: unknown;
    try {
      encodeMessage({ id: "x", headers: { h: "é".repeat(100) }, body }, 4100, "queue q");
    } catch (e) {
      error = e;
    }
    expect(isSwitchyardError(error, "MESSAGE_TOO_LARGE")).toBe(true);
  });

  it("decodes a foreign message: body as UTF-8, attributes as headers, SQS message id", () => {
    expect(decodeMessage("hello", { foreign: { DataType: "String", StringValue: "yes" } }, "m-1")).toEqual({
      id: "m-1",
      headers: { foreign: "yes" },
      body: new TextEncoder().encode("hello"),
    });
    expect(() =>
      decodeMessage("x", { [ATTR.headers]: { DataType: "String", StringValue: "[1]" } }, "m"),
    ).toThrow(/packed headers/);
  });
});

describe("aws-sqs consumer", () => {
  it("a message handed out again (moto's receive races) is handled once: a copy while held swaps in its newer receipt handle, a copy after the delete is deleted", async () => {
    // No broker: the client answers from this script (a middleware that never sends a request).
    const client = new SQSClient({
      region: "us-east-1",
      endpoint: "http://127.0.0.1:1",
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
    });
    const copy = (handle: string, receives: number) => [
      {
        MessageId: "m-1",
        ReceiptHandle: handle,
        Body: "hello",
        Attributes: { ApproximateReceiveCount: String(receives) },
      },
    ];
    // Each receive takes the next fed batch (waiting for one); `received()` resolves at the next call,
    // i.e. once the consumer has taken in the batch before it.
    const batches: ReturnType<typeof copy>[] = [];
    let fed: (() => void) | undefined;
    let called: (() => void) | undefined;
    const received = () => new Promise<void>((resolve) => (called = resolve));
    const feed = (batch: ReturnType<typeof copy>) => {
      batches.push(batch);
      fed?.();
    };
    let closing = false;
    const deleted: string[] = [];
    let onDelete: (() => void) | undefined;
    const answer = (output: object) => ({ output: { $metadata: {}, ...output } as never, response: {} });
    client.middlewareStack.add(
      (_next, context) => async (args) => {
        const entries = (args.input as { Entries?: { Id: string; ReceiptHandle: string }[] }).Entries ?? [];
        switch (context.commandName) {
          case "CreateQueueCommand":
            return answer({ QueueUrl: "http://127.0.0.1:1/q" });
          case "ReceiveMessageCommand":
            called?.();
            while (batches.length === 0 && !closing) await new Promise<void>((resolve) => (fed = resolve));
            return answer({ Messages: batches.shift() ?? [] });
          case "DeleteMessageBatchCommand":
            deleted.push(...entries.map((e) => e.ReceiptHandle));
            onDelete?.();
            return answer({ Successful: entries.map((e) => ({ Id: e.Id })) });
          default:
            return answer({});
        }
      },
      { step: "initialize" },
    );
    const transport = new SqsTransport({ client, waitTimeSeconds: 1 });
    const deliveries: Delivery[] = [];
    const subscription = await transport.subscribe(
      { kind: "queue", name: "q", subscription: "q" },
      { prefetch: 10 },
      (delivery) => deliveries.push(delivery),
    );
    let next = received();
    feed(copy("h1", 1));
    await next;
    next = received();
    feed(copy("h2", 2)); // while the first is held
    await next;
    expect(deliveries.map((d) => d.attempt)).toEqual([1]);
    await deliveries[0]!.ack();
    expect(deleted).toEqual(["h2"]);
    const copyDeleted = new Promise<void>((resolve) => (onDelete = resolve));
    next = received();
    feed(copy("h3", 3)); // after the delete
    await next;
    await copyDeleted;
    expect(deliveries).toHaveLength(1);
    expect(deleted).toEqual(["h2", "h3"]);
    closing = true;
    fed?.();
    await subscription.close();
    await transport.close();
  });
});

/**
 * An SQS client the test answers (a middleware that never sends a request): each ReceiveMessage
 * waits until the test answers it, oldest first; deletes, visibility changes and failures of the
 * next delete are scripted too.
 */
function scriptedSqs() {
  const client = new SQSClient({
    region: "us-east-1",
    endpoint: "http://127.0.0.1:1",
    credentials: { accessKeyId: "x", secretAccessKey: "x" },
  });
  const waiting: ((messages: object[] | Error) => void)[] = [];
  const onReceive = new Set<() => void>();
  let ended = false;
  const sqs = {
    client,
    receives: 0,
    deleted: [] as string[],
    /** The entries of each SendMessageBatch: what a receive may hand back. */
    sent: [] as { MessageBody: string; MessageAttributes: object }[],
    /** Each ChangeMessageVisibilityBatch: its handles and timeout. */
    madeVisible: [] as { handles: string[]; seconds: number }[],
    /** While set, a ChangeMessageVisibility (a nack) is answered only once it resolves. */
    nackAnswered: undefined as Promise<void> | undefined,
    /** Failures the next DeleteMessageBatch calls throw, in order. */
    deleteFailures: [] as Error[],
    /** Resolves once `count` receives wait for an answer. */
    waiting(count: number): Promise<void> {
      return new Promise((resolve) => {
        const check = () => {
          if (waiting.length < count) return;
          onReceive.delete(check);
          resolve();
        };
        onReceive.add(check);
        check();
      });
    },
    /** Answers the oldest waiting receive with these messages, or fails it. */
    answer(messages: object[] | Error): void {
      waiting.shift()!(messages);
    },
    /** Answers every receive, waiting or to come, with no message. */
    end(): void {
      ended = true;
      for (const answer of waiting.splice(0)) answer([]);
    },
  };
  const output = (fields: object) => ({ output: { $metadata: {}, ...fields } as never, response: {} });
  client.middlewareStack.add(
    (_next, context) => async (args) => {
      const input = args.input as {
        Entries?: { Id: string; ReceiptHandle: string }[];
        VisibilityTimeout?: number;
      };
      const entries = input.Entries ?? [];
      switch (context.commandName) {
        case "CreateQueueCommand":
          return output({ QueueUrl: "http://127.0.0.1:1/q" });
        case "ReceiveMessageCommand": {
          sqs.receives++;
          if (ended) return output({ Messages: [] });
          const answer = await new Promise<object[] | Error>((resolve) => {
            waiting.push(resolve);
            for (const check of [...onReceive]) check();
          });
          if (answer instanceof Error) throw answer;
          return output({ Messages: answer });
        }
        case "SendMessageBatchCommand":
          sqs.sent.push(...(entries as unknown as (typeof sqs.sent)[number][]));
          return output({ Successful: entries.map((e) => ({ Id: e.Id, MessageId: e.Id })) });
        case "DeleteMessageBatchCommand": {
          const failure = sqs.deleteFailures.shift();
          if (failure) throw failure;
          sqs.deleted.push(...entries.map((e) => e.ReceiptHandle));
          return output({ Successful: entries.map((e) => ({ Id: e.Id })) });
        }
        case "ChangeMessageVisibilityCommand":
          await sqs.nackAnswered;
          return output({});
        case "ChangeMessageVisibilityBatchCommand":
          sqs.madeVisible.push({
            handles: entries.map((e) => e.ReceiptHandle),
            seconds: (entries[0] as { VisibilityTimeout?: number } | undefined)?.VisibilityTimeout ?? -1,
          });
          return output({ Successful: entries.map((e) => ({ Id: e.Id })) });
        default:
          return output({});
      }
    },
    { step: "initialize" },
  );
  return sqs;
}

/** A received SQS message: its MessageId, receipt handle and ApproximateReceiveCount. */
const received = (id: string, handle: string, receives: number) => ({
  MessageId: id,
  ReceiptHandle: handle,
  Body: id,
  Attributes: { ApproximateReceiveCount: String(receives) },
});

const queueSource = { kind: "queue" as const, name: "q", subscription: "q" };

describe("aws-sqs consumer: concurrent receives, stop, recovered errors", () => {
  it("a message two receives in flight both took (moto's race) is handled once at its true attempt, whichever copy answers first", async () => {
    const sqs = scriptedSqs();
    const transport = new SqsTransport({ client: sqs.client, waitTimeSeconds: 1 });
    const deliveries: Delivery[] = [];
    let delivered: (() => void) | undefined;
    const next = () => new Promise<void>((resolve) => (delivered = resolve));
    // Prefetch 20: two receive loops, so two receives in flight at once.
    const subscription = await transport.subscribe(queueSource, { prefetch: 20 }, (delivery) => {
      deliveries.push(delivery);
      delivered?.();
    });

    // Copies counted 2, then 1: the one counted 2 waits for the other receive in flight.
    await sqs.waiting(2);
    sqs.answer([received("m-1", "h1b", 2)]);
    await sqs.waiting(2); // its loop took the answer in and receives again
    expect(deliveries).toEqual([]);
    let handedOut = next();
    sqs.answer([received("m-1", "h1a", 1)]);
    await handedOut;
    expect(deliveries.map((d) => d.attempt)).toEqual([1]);
    await deliveries[0]!.ack();
    expect(sqs.deleted).toEqual(["h1b"]); // the receipt handle of the copy counted last

    // Both copies counted 2 (moto counted both receives before copying either): attempt 1 still.
    await sqs.waiting(2);
    sqs.answer([received("m-2", "h2a", 2)]);
    await sqs.waiting(2);
    handedOut = next();
    sqs.answer([received("m-2", "h2b", 2)]);
    await handedOut;
    expect(deliveries.map((d) => d.attempt)).toEqual([1, 1]);

    // A real redelivery (counted 3, no copy): attempt 3, once the other receive answered.
    await sqs.waiting(2);
    sqs.answer([received("m-3", "h3", 3)]);
    await sqs.waiting(2);
    expect(deliveries).toHaveLength(2);
    handedOut = next();
    sqs.answer([]);
    await handedOut;
    expect(deliveries.map((d) => d.attempt)).toEqual([1, 1, 3]);

    // A first delivery (counted 1) never waits, though another receive is in flight.
    await sqs.waiting(2);
    handedOut = next();
    sqs.answer([received("m-4", "h4", 1)]);
    await handedOut;

    // A redelivery whose other receive stays quiet (long-polling an idle queue) waits only briefly.
    await sqs.waiting(2);
    handedOut = next();
    sqs.answer([received("m-5", "h5", 2)]);
    await handedOut;
    expect(deliveries.map((d) => [d.message.id, d.attempt])).toEqual([
      ["m-1", 1],
      ["m-2", 1],
      ["m-3", 3],
      ["m-4", 1],
      ["m-5", 2],
    ]);
    sqs.end();
    await subscription.close();
    await transport.close();
  });

  /** A subscription that holds one delivery (m-1, handle h1) and has its next receive in flight. */
  async function holdingOne() {
    const sqs = scriptedSqs();
    const transport = new SqsTransport({ client: sqs.client, waitTimeSeconds: 1 });
    const deliveries: Delivery[] = [];
    let delivered!: () => void;
    const handedOut = new Promise<void>((resolve) => (delivered = resolve));
    const subscription = await transport.subscribe(queueSource, { prefetch: 10 }, (delivery) => {
      deliveries.push(delivery);
      delivered();
    });
    await sqs.waiting(1);
    sqs.answer([received("m-1", "h1", 1)]);
    await handedOut;
    await sqs.waiting(1);
    return { sqs, transport, subscription, deliveries };
  }

  it("stop() ends receiving: what the receive in flight brings goes straight back, a held delivery stays settleable", async () => {
    const { sqs, transport, subscription, deliveries } = await holdingOne();
    let stopped = false;
    const stopping = subscription.stop!().then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false); // its receive is still in flight
    sqs.answer([received("m-2", "h2", 1)]);
    await stopping;
    expect(deliveries.map((d) => d.message.id)).toEqual(["m-1"]);
    expect(sqs.madeVisible).toEqual([{ handles: ["h2"], seconds: 0 }]);
    expect(sqs.receives).toBe(2);
    await deliveries[0]!.ack();
    expect(sqs.deleted).toEqual(["h1"]);
    await subscription.close();
    expect(sqs.receives).toBe(2); // nothing received after stop()
    expect(sqs.madeVisible).toHaveLength(1); // nothing left to hand back at close
    await transport.close();
  });

  it("stop() hands back a nacked message's redelivery that comes before the nack's answer", async () => {
    const { sqs, transport, subscription, deliveries } = await holdingOne();
    const stopping = subscription.stop!();
    // The core releases what has not started while it stops; SQS makes it visible, and the receive
    // still in flight takes it before the nack's answer is in.
    let answerNack!: () => void;
    sqs.nackAnswered = new Promise<void>((resolve) => (answerNack = resolve));
    const nacked = deliveries[0]!.nack();
    sqs.answer([received("m-1", "h1b", 2)]);
    await stopping;
    expect(sqs.madeVisible).toEqual([{ handles: ["h1b"], seconds: 0 }]);
    answerNack();
    await nacked;
    await subscription.close();
    await transport.close();
  });

  it("a failed receive and a failed delete that are retried reach the bus's onError hook; the ack still goes through", async () => {
    const sqs = scriptedSqs();
    const events: { error: unknown; attempt: number; willRetry: boolean }[] = [];
    const bus = createBus({
      transport: new SqsTransport({ client: sqs.client, waitTimeSeconds: 1 }),
      hooks: { onError: ({ error, attempt, willRetry }) => events.push({ error, attempt, willRetry }) },
    });
    const handled: number[] = [];
    await bus
      .consume("q")
      .on(messages.Ping, async (message) => {
        handled.push(message.data.n);
      })
      .start({ concurrency: 1, prefetch: 10 });
    await sqs.waiting(1);
    sqs.answer(Object.assign(new Error("socket hang up"), { name: "TimeoutError" }));
    // Received again after its backoff: the message comes, and its first delete fails.
    await sqs.waiting(1);
    sqs.deleteFailures.push(Object.assign(new Error("connection reset"), { name: "NetworkingError" }));
    await bus.send("q", messages.Ping, { n: 7 });
    const { MessageBody, MessageAttributes } = sqs.sent[0]!;
    sqs.answer([{ ...received("m-1", "h1", 1), Body: MessageBody, MessageAttributes }]);
    await expect.poll(() => sqs.deleted).toEqual(["h1"]);
    expect(handled).toEqual([7]);
    expect(
      events.map((e) => [e.attempt, e.willRetry, isSwitchyardError(e.error, "TRANSPORT_ERROR")]),
    ).toEqual([
      [0, true, true],
      [0, true, true],
    ]);
    expect(events.map((e) => (e.error as Error).message)).toEqual([
      "[switchyard] ReceiveMessage failed: TimeoutError: socket hang up",
      "[switchyard] DeleteMessageBatch failed: NetworkingError: connection reset",
    ]);
    sqs.end();
    await bus.close();
  });
});
