// The adapter above the driver seam, against a scripted fake driver: URL and options, the record
// mapping, request batching, and the offset/retry bookkeeping of a group member. No broker needed.
import { type Delivery, isSwitchyardError, parseBusUrl, type WireMessage } from "@switchyard/core";
import { describe, expect, it } from "vitest";
import type {
  GroupConsumer,
  GroupHandlers,
  GroupOptions,
  IncomingRecord,
  KafkaDriver,
  OutgoingRecord,
  TopicSpec,
} from "../src/driver.js";
import {
  ATTEMPT_HEADER,
  DUE_HEADER,
  fromRecord,
  ID_HEADER,
  ORIGIN_HEADERS,
  originHeaders,
  toRecord,
} from "../src/mapping.js";
import { parseKafkaConfig } from "../src/options.js";
import { createTransport, KafkaTransport } from "../src/transport.js";

const errorOf = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error");
};

describe("URL and options", () => {
  it("defaults: platformatic driver, 3 partitions, broker's replication, replay from the earliest offset", () => {
    const config = parseKafkaConfig(new URL("kafka://127.0.0.1:9092"));
    expect(config).toMatchObject({
      driver: "platformatic",
      brokers: ["127.0.0.1:9092"],
      clientId: "switchyard",
      partitions: 3,
      replicationFactor: -1,
      compression: "none",
      startFrom: "earliest",
      maxMessageBytes: 1_000_000,
      maxBytesPerPartition: 1_048_576,
      contentMode: "structured",
    });
    expect(createTransport(new URL("kafka://h:1")).contentMode).toBe("structured");
    expect(createTransport(new URL("kafka://h:1?contentMode=binary")).contentMode).toBe("binary");
    expect(createTransport(new URL("kafka://h:1")).capabilities).toMatchObject({
      replayFromStart: true,
      ordering: "partition",
      maxMessageBytes: 1_000_000,
    });
  });

  it("reads several brokers and the query; options win over the URL", () => {
    const url = parseBusUrl(
      "kafka://h1:9092,h2:9093,h3?driver=kafkajs&clientId=svc&partitions=6&compression=gzip",
    );
    const config = parseKafkaConfig(url, { partitions: 12 });
    expect(config.brokers).toEqual(["h1:9092", "h2:9093", "h3:9092"]);
    expect(config).toMatchObject({ driver: "kafkajs", clientId: "svc", partitions: 12, compression: "gzip" });
    expect(parseKafkaConfig(undefined, { brokers: ["a:1", "b"] }).brokers).toEqual(["a:1", "b:9092"]);
    const latest = createTransport(new URL("kafka://h:1?startFrom=latest"));
    expect(latest.capabilities.replayFromStart).toBe(false);
  });

  it("refuses bad input with CONFIG_INVALID and never echoes credentials", () => {
    for (const raw of [
      "kafka://h:1?driver=librdkafka",
      "kafka://h:1?partitions=0",
      "kafka://h:1?parttions=3",
      "kafka://h:1?driver=kafkajs&compression=zstd",
      "kafka://h:1?sasl=plain",
      "kafka://h:1?heartbeatIntervalMs=40000",
      "kafka://h:1?sasl=kerberos",
      "kafka://h:1?contentMode=json",
      "kafka://h:1?maxBytesPerPartition=100",
    ]) {
      const error = errorOf(() => parseKafkaConfig(new URL(raw)));
      expect(isSwitchyardError(error, "CONFIG_INVALID"), raw).toBe(true);
    }
    const error = errorOf(() => parseKafkaConfig(new URL("kafka://alice:s3cret@h:1?sasl=plain&driver=nope")));
    expect((error as Error).message).not.toContain("s3cret");
    const sasl = parseKafkaConfig(new URL("kafka://alice:p%40ss@h:1?sasl=SCRAM-SHA-512&ssl=true"));
    expect(sasl.sasl).toEqual({ mechanism: "scram-sha-512", username: "alice", password: "p@ss" });
    expect(sasl.ssl).toBe(true);
  });
});

describe("record mapping", () => {
  const wire: WireMessage = {
    id: "id-1",
    key: "kü",
    headers: { ce_id: "id-1", ce_type: "t", "x-user": "ü" },
    body: new Uint8Array([0, 1, 255]),
  };

  it("binary mode: headers as UTF-8 headers, the key as the record key, the body as the value", () => {
    const record = toRecord("orders", wire);
    expect(record.topic).toBe("orders");
    expect(record.key?.toString("utf8")).toBe("kü");
    expect([...(record.value ?? [])]).toEqual([0, 1, 255]);
    expect(record.headers.map(([n, v]) => [n, v.toString("utf8")])).toEqual([
      ["ce_id", "id-1"],
      ["ce_type", "t"],
      ["x-user", "ü"],
    ]);
    const incoming = { ...record, headerEntries: record.headers, partition: 2, offset: 41n, key: record.key };
    const back = fromRecord(incoming);
    expect(back.attempt).toBe(1);
    expect(back.message).toEqual({ id: "id-1", key: "kü", body: record.value, headers: wire.headers });
    expect(originHeaders(incoming, back.message)).toEqual({
      [ORIGIN_HEADERS.topic]: "orders",
      [ORIGIN_HEADERS.partition]: "2",
      [ORIGIN_HEADERS.offset]: "41",
    });
  });

  it("keeps an id that is not ce_id, reads attempt and due time, and strips its own headers", () => {
    const foreign: WireMessage = { id: "mine", headers: { foreign: "yes" }, body: new Uint8Array() };
    const record = toRecord("q", foreign, { [ATTEMPT_HEADER]: "3", [DUE_HEADER]: "1234" });
    expect(record.headers.find(([n]) => n === ID_HEADER)?.[1].toString()).toBe("mine");
    const back = fromRecord({
      ...record,
      headerEntries: record.headers,
      partition: 0,
      offset: 5n,
      key: undefined,
    });
    expect(back).toMatchObject({ attempt: 3, dueAt: 1234, message: { id: "mine" } });
    expect(Object.keys(back.message.headers)).not.toContain(ATTEMPT_HEADER);
    expect(Object.keys(back.message.headers)).not.toContain(ID_HEADER);
    // A record from another producer, no headers at all: an id from its position.
    const raw = fromRecord({
      topic: "q",
      partition: 1,
      offset: 9n,
      key: undefined,
      value: undefined,
      headerEntries: [],
    });
    expect(raw.message.id).toBe("kafka:q/1/9");
    expect(raw.message.body.byteLength).toBe(0);
  });

  it("keeps the first origin through retries and dead letters", () => {
    const origin = {
      [ORIGIN_HEADERS.topic]: "a",
      [ORIGIN_HEADERS.partition]: "0",
      [ORIGIN_HEADERS.offset]: "7",
    };
    const record = toRecord("a.retry", {
      id: "x",
      headers: { ce_id: "x", ...origin },
      body: new Uint8Array(),
    });
    const retried = { ...record, headerEntries: record.headers, partition: 1, offset: 99n, key: undefined };
    const back = fromRecord(retried);
    expect(back.message.headers).toMatchObject(origin);
    expect(originHeaders(retried, back.message)).toEqual({}); // the first origin stays
  });

  it("refuses names Kafka cannot take", async () => {
    const transport = createTransport(new URL("kafka://h:1"));
    for (const name of ["a b", "ü", "x".repeat(250), ".."]) {
      await expect(transport.publish({ kind: "queue", name }, [])).rejects.toSatisfy(
        (e) => isSwitchyardError(e, "CONFIG_INVALID"),
        name,
      );
    }
  });
});

/** A driver that records what the adapter asks of it and lets a test play the broker. */
class FakeDriver implements KafkaDriver {
  readonly name = "platformatic";
  readonly sent: OutgoingRecord[][] = [];
  readonly created: TopicSpec[] = [];
  readonly commits: Array<Array<{ topic: string; partition: number; offset: bigint }>> = [];
  handlers!: GroupHandlers;
  options!: GroupOptions;
  paused = false;
  sendDelayMs = 5;
  failSends = false;
  /** Commits that fail before one goes through. */
  failCommits = 0;

  async connect() {}
  async createTopics(topics: TopicSpec[]) {
    this.created.push(...topics);
  }
  async send(records: OutgoingRecord[]) {
    this.sent.push(records);
    await new Promise((r) => setTimeout(r, this.sendDelayMs));
    if (this.failSends) throw new Error("broker gone");
  }
  async consume(options: GroupOptions, handlers: GroupHandlers): Promise<GroupConsumer> {
    this.options = options;
    this.handlers = handlers;
    handlers.assigned([
      { topic: options.topics[0]!, partition: 0 },
      { topic: options.topics[0]!, partition: 1 },
      { topic: options.topics[1]!, partition: 0 },
    ]);
    return {
      pause: () => {
        this.paused = true;
      },
      resume: () => {
        this.paused = false;
      },
      commit: async (offsets) => {
        if (this.failCommits-- > 0) throw new Error("coordinator lost (sasl password s3cret)");
        this.commits.push(offsets);
      },
      close: async () => {},
    };
  }
  async close() {}
  lastCommit(partition: number, topic = this.options.topics[0]!): bigint | undefined {
    for (let i = this.commits.length - 1; i >= 0; i--) {
      const hit = this.commits[i]!.find((c) => c.topic === topic && c.partition === partition);
      if (hit) return hit.offset;
    }
    return undefined;
  }
}

function record(
  topic: string,
  partition: number,
  offset: number,
  headers: Record<string, string> = {},
): IncomingRecord {
  return {
    topic,
    partition,
    offset: BigInt(offset),
    key: undefined,
    value: Buffer.from(`m${offset}`),
    headerEntries: Object.entries({ ce_id: `${topic}-${partition}-${offset}`, ...headers }).map(([n, v]) => [
      n,
      Buffer.from(v),
    ]),
  };
}

/** Hands records to the member as a fetch does (one call each, in one turn); its pump runs after. */
async function feed(driver: FakeDriver, records: IncomingRecord[]): Promise<void> {
  for (const r of records) driver.handlers.record(r);
  await Promise.resolve();
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

async function member(prefetch = 10) {
  const driver = new FakeDriver();
  const config = parseKafkaConfig(new URL("kafka://h:1?commitIntervalMs=0"));
  const transport = new KafkaTransport(config, driver);
  const deliveries: Delivery[] = [];
  const subscription = await transport.subscribe(
    { kind: "queue", name: "q", subscription: "q" },
    { prefetch },
    (d) => deliveries.push(d),
  );
  return { driver, transport, deliveries, subscription };
}

describe("producing", () => {
  it("concurrent publishes share requests; a request stays under the size limit", async () => {
    const driver = new FakeDriver();
    const transport = new KafkaTransport(
      parseKafkaConfig(new URL("kafka://h:1?maxMessageBytes=10000")),
      driver,
    );
    const message = (n: number, size = 10): WireMessage => ({
      id: `m${n}`,
      headers: { ce_id: `m${n}` },
      body: new Uint8Array(size),
    });
    await Promise.all(
      Array.from({ length: 50 }, (_, n) => transport.publish({ kind: "queue", name: "q" }, [message(n)])),
    );
    // Publishes made in one turn of the event loop go in one request.
    expect(driver.sent.map((r) => r.length)).toEqual([50]);
    driver.sent.length = 0;
    await Promise.all([
      transport.publish({ kind: "queue", name: "q" }, [message(1)]),
      transport.publish({ kind: "queue", name: "q" }, [message(2, 6000)]),
      transport.publish({ kind: "queue", name: "q" }, [message(3, 6000)]),
      transport.publish({ kind: "queue", name: "q" }, [message(4, 9990)]),
    ]);
    expect(driver.sent.map((r) => r.map((x) => x.value?.byteLength))).toEqual([[10, 6000], [6000], [9990]]);
  });

  it("a failed request rejects each of its publishes with TRANSPORT_ERROR", async () => {
    const driver = new FakeDriver();
    driver.failSends = true;
    const transport = new KafkaTransport(parseKafkaConfig(new URL("kafka://h:1")), driver);
    const error = await transport
      .publish({ kind: "topic", name: "t" }, [{ id: "a", headers: {}, body: new Uint8Array() }])
      .catch((e: unknown) => e);
    expect(isSwitchyardError(error, "TRANSPORT_ERROR")).toBe(true);
    expect((error as Error).message).toContain("broker gone");
  });
});

describe("a group member", () => {
  it("joins the queue's group on the queue and its retry topic, created beforehand", async () => {
    const { driver } = await member();
    expect(driver.options.groupId).toBe("q");
    expect(driver.options.topics).toEqual(["q", "q.retry"]);
    // Fetches bounded per partition, not the client's 50 MB (records a fetch holds cost GC).
    expect(driver.options.maxBytesPerPartition).toBe(1_048_576);
    expect(driver.created.map((t) => t.topic).sort()).toEqual(["q", "q.retry"]);
    expect(driver.created[0]).toMatchObject({ partitions: 3, replicationFactor: -1 });
    expect(driver.created[0]!.configs["max.message.bytes"]).toBe("1048588");
  });

  it("keeps at most prefetch deliveries out and pauses fetching when its buffer is full", async () => {
    const { driver, deliveries } = await member(3);
    await feed(
      driver,
      Array.from({ length: 600 }, (_, i) => record("q", 0, i)),
    );
    expect(deliveries).toHaveLength(3);
    expect(driver.paused).toBe(true);
    for (const d of deliveries.splice(0)) await d.ack();
    await tick();
    expect(deliveries).toHaveLength(3);
    expect(deliveries.map((d) => d.message.body.toString())).toEqual(["m3", "m4", "m5"]);
  });

  it("commits only up to the lowest unsettled offset of each partition", async () => {
    const { driver, deliveries } = await member();
    await feed(driver, [record("q", 0, 10), record("q", 0, 11), record("q", 0, 12), record("q", 1, 4)]);
    const [a, b, c, d] = deliveries;
    await c!.ack();
    await b!.ack();
    await d!.ack();
    await tick();
    expect(driver.lastCommit(0)).toBe(10n); // 10 is still out: nothing past it counts as done
    expect(driver.lastCommit(1)).toBe(5n);
    await a!.ack();
    await tick();
    expect(driver.lastCommit(0)).toBe(13n);
    await expect(a!.ack()).rejects.toSatisfy((e) => isSwitchyardError(e, "ALREADY_SETTLED"));
  });

  it("drops repeats after a rejoin and records of partitions that went to another member", async () => {
    const { driver, deliveries } = await member();
    await feed(driver, [record("q", 0, 0), record("q", 0, 1), record("q", 1, 0)]);
    expect(deliveries).toHaveLength(3);
    // Rejoin: partition 1 moved away; partition 0 is re-fetched from the committed offset.
    driver.handlers.assigned([{ topic: "q", partition: 0 }]);
    await feed(driver, [record("q", 0, 0), record("q", 0, 1), record("q", 0, 2), record("q", 1, 1)]);
    expect(deliveries.map((d) => d.message.id)).toEqual(["q-0-0", "q-0-1", "q-1-0", "q-0-2"]);
    for (const d of deliveries) await d.ack();
    await tick();
    expect(driver.lastCommit(0)).toBe(3n);
    expect(driver.lastCommit(1)).toBeUndefined(); // not ours any more
  });

  it("nack writes a retry copy (attempt + 1, due time) before the offset counts as done", async () => {
    const { driver, deliveries } = await member();
    await feed(driver, [record("q", 0, 0)]);
    const before = Date.now();
    await deliveries[0]!.nack({ delayMs: 5000 });
    const [retry] = driver.sent.at(-1)!;
    const headers = Object.fromEntries(retry!.headers.map(([n, v]) => [n, v.toString()]));
    expect(retry!.topic).toBe("q.retry");
    expect(headers[ATTEMPT_HEADER]).toBe("2");
    expect(Number(headers[DUE_HEADER])).toBeGreaterThanOrEqual(before + 5000);
    expect(headers[ORIGIN_HEADERS.offset]).toBe("0");
    await tick();
    expect(driver.lastCommit(0)).toBe(1n);
  });

  it("holds a retry copy until it is due, then delivers it with its attempt", async () => {
    const { driver, deliveries } = await member();
    await feed(driver, [
      record("q.retry", 0, 0, { [ATTEMPT_HEADER]: "4", [DUE_HEADER]: String(Date.now() + 150) }),
      record("q.retry", 0, 1, { [ATTEMPT_HEADER]: "2", [DUE_HEADER]: String(Date.now() - 1) }),
    ]);
    expect(deliveries.map((d) => d.attempt)).toEqual([2]);
    await deliveries[0]!.ack();
    await tick();
    expect(driver.lastCommit(0, "q.retry")).toBe(0n); // the held one is not done
    await tick(200);
    expect(deliveries.map((d) => d.attempt)).toEqual([2, 4]);
    await deliveries[1]!.ack();
    await tick();
    expect(driver.lastCommit(0, "q.retry")).toBe(2n);
  });

  it("a nack whose retry copy cannot be written is redelivered from memory, never committed past", async () => {
    const { driver, deliveries } = await member();
    await feed(driver, [record("q", 0, 0)]);
    driver.failSends = true;
    await expect(deliveries[0]!.nack()).rejects.toSatisfy((e) => isSwitchyardError(e, "TRANSPORT_ERROR"));
    await tick(150);
    expect(deliveries.map((d) => d.attempt)).toEqual([1, 2]);
    expect(driver.lastCommit(0)).toBeUndefined();
    await deliveries[1]!.ack();
    await tick();
    expect(driver.lastCommit(0)).toBe(1n);
  });

  it("stop() ends deliveries while those out stay settleable; close() commits them", async () => {
    const { driver, deliveries, subscription } = await member(2);
    await feed(driver, [record("q", 0, 0), record("q", 0, 1), record("q", 0, 2)]);
    await subscription.stop?.();
    expect(driver.paused).toBe(true);
    await deliveries[0]!.ack();
    await deliveries[1]!.ack();
    await feed(driver, [record("q", 0, 3)]);
    await tick();
    expect(deliveries).toHaveLength(2);
    await subscription.close();
    expect(driver.lastCommit(0)).toBe(2n);
  });
});

describe("recovered errors", () => {
  it("a failed commit is reported to onError, without the password, and tried again", async () => {
    const driver = new FakeDriver();
    driver.failCommits = 1;
    const url = new URL("kafka://alice:s3cret@h:1?sasl=plain&commitIntervalMs=0");
    const transport = new KafkaTransport(parseKafkaConfig(url), driver);
    const deliveries: Delivery[] = [];
    let reported: (error: unknown) => void = () => {};
    const error = new Promise<unknown>((resolve) => {
      reported = resolve;
    });
    const subscription = await transport.subscribe(
      { kind: "queue", name: "q", subscription: "q" },
      { prefetch: 10, onError: (e) => reported(e) },
      (d) => deliveries.push(d),
    );
    await feed(driver, [record("q", 0, 0)]);
    await deliveries[0]!.ack();
    const recovered = await error;
    expect(isSwitchyardError(recovered, "TRANSPORT_ERROR")).toBe(true);
    expect((recovered as Error).message).toContain("committing offsets");
    expect((recovered as Error).message).not.toContain("s3cret");
    await subscription.close();
    expect(driver.lastCommit(0)).toBe(1n);
  });
});

describe("connecting", () => {
  it("an unreachable broker is a TRANSPORT_ERROR within the connect timeout, for both drivers", async () => {
    for (const driver of ["platformatic", "kafkajs"]) {
      const transport = createTransport(
        new URL(`kafka://127.0.0.1:1?driver=${driver}&connectTimeoutMs=1500`),
      );
      const started = Date.now();
      const error = await transport.connect().catch((e: unknown) => e);
      expect(isSwitchyardError(error, "TRANSPORT_ERROR"), `${driver}: ${String(error)}`).toBe(true);
      expect((error as Error).message).toContain("127.0.0.1:1");
      expect(Date.now() - started).toBeLessThan(5_000);
      await transport.close();
    }
  });
});
