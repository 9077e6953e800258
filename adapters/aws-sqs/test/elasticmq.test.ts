import { GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { brokerEndpoint, describeWithBroker, localAws } from "@switchyard/broker-stack/available";
import { deleteSqsQueuesNamed } from "@switchyard/broker-stack/cleanup";
import { TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus, type Delivery, isSwitchyardError } from "@switchyard/core";
import { afterAll, expect, it, onTestFinished } from "vitest";
import { SqsTransport, type SqsTransportOptions } from "../src/index.js";

const Item = messages.Ordered;

describeWithBroker("elasticmq", "aws-sqs on ElasticMQ: native mapping", () => {
  const endpoint = brokerEndpoint("elasticmq").url;
  const run = Math.random().toString(36).slice(2, 8);
  const make = (extra: SqsTransportOptions = {}) =>
    new SqsTransport({ endpoint, ...localAws, waitTimeSeconds: 1, ...extra });
  const raw = new SQSClient({ endpoint, ...localAws });
  // Every queue here is named `sy-<label>-<run>…` (subscription queues and DLQs included): delete
  // them all when done, passed or failed; ElasticMQ is shared and keeps every queue.
  afterAll(() => deleteSqsQueuesNamed(endpoint, [`-${run}`]), 60_000);

  it("a FIFO queue (name ends in .fifo) keeps per-key order under concurrency", async () => {
    const bus = createBus({ transport: make() });
    const queue = `sy-fifo-${run}.fifo`;
    const seen: { key: string; seq: number }[] = [];
    await bus
      .consume(queue)
      .on(Item, async (msg) => {
        await new Promise((r) => setTimeout(r, (msg.data.seq * 7) % 5));
        seen.push(msg.data);
      })
      .start({ concurrency: 8 });
    for (let seq = 0; seq < 10; seq++) {
      await Promise.all(["a", "b"].map((key) => bus.send(queue, Item, { key, seq }, { key })));
    }
    const deadline = Date.now() + 20_000;
    while (seen.length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const key of ["a", "b"]) {
      expect(seen.filter((s) => s.key === key).map((s) => s.seq)).toEqual([...Array(10).keys()]);
    }
    const transport = (await bus.transport()) as SqsTransport;
    const url = await transport.base.queues.url(`sy-fifo-${run}.fifo`);
    const attrs = await raw.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["FifoQueue"] }),
    );
    expect(attrs.Attributes?.FifoQueue).toBe("true");
    await bus.close();
  });

  it("packs the envelope into at most 4 String attributes; subscription queues carry a RedrivePolicy backstop", async () => {
    const bus = createBus({ transport: make() });
    const topic = `sy-native-${run}`;
    await bus
      .subscribe(topic, "audit")
      .on(Item, async () => {})
      .start({ retry: { maxAttempts: 4 } });
    const transport = (await bus.transport()) as SqsTransport;
    const url = await transport.base.queues.url(`sy-native-${run}_saudit`);
    const attrs = await raw.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }));
    const redrive = JSON.parse(attrs.Attributes!.RedrivePolicy!);
    expect(redrive.maxReceiveCount).toBe(4 + 5);
    expect(redrive.deadLetterTargetArn).toMatch(/sy-native-.*_daudit_ddlq$/);
    await bus.close();

    const queue = `sy-attrs-${run}`;
    const producer = createBus({ transport: make() });
    const headers = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`h${i}`, `v${i}`]));
    await producer.send(queue, Item, { key: "k", seq: 1 }, { key: "k", headers });
    await producer.close();
    const qurl = await make().base.queues.url(queue);
    const got = await raw.send(
      new ReceiveMessageCommand({ QueueUrl: qurl, MessageAttributeNames: ["All"], WaitTimeSeconds: 2 }),
    );
    const m = got.Messages![0]!;
    expect(Object.keys(m.MessageAttributes!).sort()).toEqual(["sy-headers", "sy-id", "sy-key"]);
    expect(JSON.parse(m.MessageAttributes!["sy-headers"]!.StringValue!)).toMatchObject(headers);
    expect(JSON.parse(m.Body!)).toEqual({ key: "k", seq: 1 });
  });

  it("extends the visibility of a message whose handler outlasts the timeout: no second delivery", async () => {
    const queue = `sy-heartbeat-${run}`;
    const starts: number[] = [];
    const buses = [
      createBus({ transport: make({ visibilityTimeoutSeconds: 5 }) }),
      createBus({ transport: make({ visibilityTimeoutSeconds: 5 }) }),
    ];
    let done = 0;
    for (const bus of buses) {
      await bus
        .consume(queue)
        .on(Item, async () => {
          starts.push(Date.now());
          await new Promise((r) => setTimeout(r, 9000));
          done++;
        })
        .start({ concurrency: 1 });
    }
    await buses[0]!.send(queue, Item, { key: "k", seq: 1 });
    const deadline = Date.now() + 20_000;
    while (done < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1500));
    expect(starts).toHaveLength(1);
    await Promise.all(buses.map((b) => b.close()));
  }, 40_000);

  it("extends a message that waits for a handler slot as well: another consumer does not get it", async () => {
    const queue = `sy-waiting-${run}`;
    const handled: string[] = [];
    const a = createBus({ transport: make({ visibilityTimeoutSeconds: 5 }) });
    const b = createBus({ transport: make({ visibilityTimeoutSeconds: 5 }) });
    await a.sendBatch(queue, Item, [{ data: { key: "k", seq: 1 } }, { data: { key: "k", seq: 2 } }]);
    let firstStarted!: () => void;
    const started = new Promise<void>((resolve) => (firstStarted = resolve));
    let secondHandled!: () => void;
    const bothOnA = new Promise<void>((resolve) => (secondHandled = resolve));
    // One slot: seq 2 waits in the consumer (received with seq 1) while seq 1's handler outlasts the
    // visibility timeout.
    await a
      .consume(queue)
      .on(Item, async (msg) => {
        handled.push(`a${msg.data.seq}`);
        if (msg.data.seq === 2) secondHandled();
        else {
          firstStarted();
          await new Promise((r) => setTimeout(r, 7000));
        }
      })
      .start({ concurrency: 1, prefetch: 2 });
    await started;
    // Would receive seq 2 ~5 s in, were it not extended while it waits.
    await b
      .consume(queue)
      .on(Item, async (msg) => {
        handled.push(`b${msg.data.seq}`);
      })
      .start({ concurrency: 1 });
    await Promise.race([bothOnA, new Promise((r) => setTimeout(r, 20_000))]);
    expect(handled).toEqual(["a1", "a2"]);
    await Promise.all([a.close(), b.close()]);
    const direct = make();
    await direct.base.queues.delete(direct.base.queueName(queue));
    await direct.close();
  }, 40_000);

  it("refuses at publish what does not fit once encoded (base64 of a binary body), and sends nothing", async () => {
    const transport = make({ maxMessageBytes: 8192 });
    const queue = `sy-limit-${run}`;
    await transport.provision([{ kind: "queue", name: queue }]);
    const error = await transport
      .publish({ kind: "queue", name: queue }, [
        { id: "ok", headers: {}, body: new Uint8Array([1]) },
        { id: "big", headers: {}, body: new Uint8Array(7000).fill(0xff) },
      ])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isSwitchyardError(error, "MESSAGE_TOO_LARGE")).toBe(true);
    const url = await transport.base.queues.url(queue);
    const got = await raw.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1 }));
    expect(got.Messages ?? []).toHaveLength(0);
    await transport.close();
  });

  it("FIFO deduplicates by envelope id by default (a second send of one id within 5 minutes is dropped)", async () => {
    const transport = make();
    const queue = `sy-dedup-${run}.fifo`;
    await transport.provision([{ kind: "queue", name: queue }]);
    for (let i = 0; i < 2; i++) {
      await transport.publish({ kind: "queue", name: queue }, [
        { id: "same-id", key: "k", headers: {}, body: new Uint8Array([i]) },
      ]);
    }
    const url = await transport.base.queues.url(queue);
    const got = await raw.send(
      new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    expect(got.Messages ?? []).toHaveLength(1);
    await transport.close();
  });

  /**
   * A transport that reaches ElasticMQ through a loopback proxy (to cut its connections), its
   * deliveries in arrival order, and a promise of the first `command` that failed: the middleware is
   * outermost, so it sees the failure after the SDK's own retries, as the adapter does.
   */
  async function throughProxy(queue: string, command: string) {
    const target = new URL(endpoint);
    const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
    const transport = make({ endpoint: `http://${proxy.hostPort}` });
    const failed = new Promise<void>((resolve) => {
      transport.base.client.middlewareStack.add(
        (next, context) => async (args) => {
          try {
            return await next(args);
          } catch (error) {
            if (context.commandName === command) resolve();
            throw error;
          }
        },
        { step: "initialize" },
      );
    });
    const arrived: Delivery[] = [];
    const waiting: ((delivery: Delivery) => void)[] = [];
    const next = () =>
      new Promise<Delivery>((resolve) => {
        const delivery = arrived.shift();
        if (delivery) resolve(delivery);
        else waiting.push(resolve);
      });
    const source = { kind: "queue", name: queue, subscription: queue } as const;
    await transport.publish(source, [{ id: "m1", headers: {}, body: new Uint8Array([1]) }]);
    const subscription = await transport.subscribe(source, { prefetch: 1 }, (delivery) => {
      const waiter = waiting.shift();
      if (waiter) waiter(delivery);
      else arrived.push(delivery);
    });
    const direct = make();
    onTestFinished(async () => {
      await subscription.close();
      await transport.close();
      await proxy.close();
      await direct.base.queues.delete(direct.base.queueName(queue));
      await direct.close();
    });
    // Neither waiting nor in flight: nothing would come back after a visibility timeout.
    const left = () => direct.backlog(source);
    return { proxy, failed, next, left };
  }

  it("an ack whose delete fails on a cut connection is retried once it is back: deleted, not redelivered", async () => {
    const { proxy, failed, next, left } = await throughProxy(
      `sy-ack-cut-${run}`,
      "DeleteMessageBatchCommand",
    );
    const delivery = await next();
    proxy.cut();
    const acked = delivery.ack();
    await failed;
    proxy.restore();
    await acked; // it waits for the delete (the handler slot with it), rather than fail
    expect(await left()).toBe(0);
  });

  it("a nack whose visibility change fails on a cut connection is retried: redelivered at once, not after the timeout", async () => {
    const { proxy, failed, next, left } = await throughProxy(
      `sy-nack-cut-${run}`,
      "ChangeMessageVisibilityCommand",
    );
    const first = await next();
    proxy.cut();
    const nacked = first.nack({ delayMs: 0 });
    await failed;
    proxy.restore();
    await nacked;
    // Visible again now: without the retry it would stay hidden for the 30 s visibility timeout.
    const again = await next();
    expect(again.message.id).toBe("m1");
    expect(again.attempt).toBe(2);
    await again.ack();
    expect(await left()).toBe(0);
  });

  it("a wrong endpoint fails with a typed error in bounded time", async () => {
    const transport = new SqsTransport({
      endpoint: "http://127.0.0.1:1",
      ...localAws,
      requestTimeoutMs: 1000,
    });
    const started = Date.now();
    const error = await transport
      .publish({ kind: "queue", name: "nowhere" }, [{ id: "1", headers: {}, body: new Uint8Array([1]) }])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isSwitchyardError(error, "TRANSPORT_ERROR"), String(error)).toBe(true);
    expect(Date.now() - started).toBeLessThan(15_000);
    await transport.close();
  });
});
