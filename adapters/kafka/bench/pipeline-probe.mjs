// The consume pipeline without a broker (not part of `pnpm bench`): records in the format Switchyard
// writes, made fresh per fetch as a client makes them, fed to the Kafka adapter through a fake driver
// in fetches of 3,000 (PROBE_FETCH), through the core to a handler. Prints CPU µs per message for
// the pipeline and for a bare loop that only JSON-parses the same values: the difference is what
// the adapter and the core add, free of the broker's and the client's noise. It also runs against
// an older checkout (the adapter before the driver seam took the client's message as it is).
// Usage, after `pnpm build`: node adapters/kafka/bench/pipeline-probe.mjs [PROBE_N, PROBE_ROUNDS]
import os from "node:os";
import { createBus, createEnvelope, defineMessage, toWire } from "@switchyard/core";
import { shapeSchema } from "../../../scripts/bench-kit.mjs";
import { KafkaTransport, parseKafkaConfig } from "../dist/index.js";

const N = Number(process.env.PROBE_N ?? 200_000);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 5);
const FETCH = Number(process.env.PROBE_FETCH ?? 3000);
const NOTE = "x".repeat(1024 - 40);
const Bench = defineMessage({
  type: "bench.kafka",
  versions: { 1: shapeSchema({ id: "number", note: "string" }) },
});

// The values of each fetch in one buffer, as a fetch response holds them; the record objects and
// their slices are made fresh per fetch (young objects, as a client makes them).
const FETCHES = [];
for (let i = 0; i < N; i += FETCH) {
  const values = [];
  for (let j = i; j < Math.min(N, i + FETCH); j++) {
    const wire = toWire(
      createEnvelope(
        { type: "bench.kafka", schemaVersion: 1, data: { id: j, note: NOTE } },
        { source: "probe" },
      ),
      {},
      "structured",
    );
    values.push(Buffer.from(wire.body));
  }
  FETCHES.push({ from: i, buffer: Buffer.concat(values), lengths: values.map((v) => v.length) });
}
const NAME = Buffer.from("content-type");
const TYPE = Buffer.from("application/cloudevents+json");
function* fetched() {
  for (const { from, buffer, lengths } of FETCHES) {
    const records = [];
    let at = 0;
    for (let k = 0; k < lengths.length; k++) {
      const i = from + k;
      records.push({
        topic: "q",
        partition: i % 3,
        offset: BigInt(Math.floor(i / 3)),
        key: undefined,
        value: buffer.subarray(at, at + lengths[k]),
        headers: new Map([[NAME, TYPE]]),
        headerEntries: [[NAME.subarray(0), TYPE.subarray(0)]],
        timestamp: 0n,
        metadata: {},
      });
      at += lengths[k];
    }
    yield records;
  }
}

/**
 * Hands one record to the adapter as its @platformatic/kafka driver does; adapters from before the
 * driver seam took the client's message as it is got a copy per record (`records([toIncoming(m)])`),
 * so comparing with an older checkout measures the same work it did.
 */
function deliver(handlers, message) {
  if (handlers.record) return handlers.record(message);
  handlers.records([
    {
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      key: message.key ?? undefined,
      value: message.value ?? undefined,
      headers: message.headerEntries.map(([name, value]) => [
        name.toString("utf8"),
        value ?? Buffer.alloc(0),
      ]),
    },
  ]);
}

class FakeDriver {
  name = "platformatic";
  async connect() {}
  async createTopics() {}
  async send() {}
  async close() {}
  async consume(options, handlers) {
    this.handlers = handlers;
    handlers.assigned([0, 1, 2].map((partition) => ({ topic: options.topics[0], partition })));
    return {
      pause: () => (this.paused = true),
      resume: () => {
        this.paused = false;
        this.wake?.();
      },
      commit: async () => {},
      close: async () => {},
    };
  }
}

const cpu = async (run) => {
  const before = process.cpuUsage();
  const t = performance.now();
  await run();
  const wall = performance.now() - t;
  const used = process.cpuUsage(before);
  return { cpuUs: (used.user + used.system) / N, perSec: N / (wall / 1000) };
};

async function pipeline() {
  const driver = new FakeDriver();
  const bus = createBus({
    transport: new KafkaTransport(parseKafkaConfig(new URL("kafka://h:1?commitIntervalMs=100")), driver),
  });
  let got = 0;
  let sink = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  await bus
    .subscribe("q", "probe")
    .on(Bench, async (msg) => {
      sink += msg.data.id;
      if (++got === N) done();
    })
    .start({ concurrency: 64, prefetch: 1024 });
  const result = await cpu(async () => {
    for (const records of fetched()) {
      if (driver.paused) await new Promise((resolve) => (driver.wake = resolve));
      for (const record of records) deliver(driver.handlers, record);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await finished;
  });
  await bus.close();
  if (sink < 0) console.log(sink);
  return result;
}

async function bare() {
  let sink = 0;
  const result = await cpu(async () => {
    for (const records of fetched()) {
      for (const record of records) sink += JSON.parse(record.value.toString()).data.id;
      await new Promise((resolve) => setImmediate(resolve));
    }
  });
  if (sink < 0) console.log(sink);
  return result;
}

const rounds = { pipeline: [], bare: [] };
for (let r = 0; r < ROUNDS; r++) {
  rounds.bare.push(await bare());
  rounds.pipeline.push(await pipeline());
}
const median = (xs, f) => xs.map((x) => x[f]).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = {
  pipelineCpuUs: +median(rounds.pipeline, "cpuUs").toFixed(2),
  bareCpuUs: +median(rounds.bare, "cpuUs").toFixed(2),
  pipelinePerSec: Math.round(median(rounds.pipeline, "perSec")),
  barePerSec: Math.round(median(rounds.bare, "perSec")),
  load: os.loadavg().map((x) => +x.toFixed(2)),
};
out.addedCpuUs = +(out.pipelineCpuUs - out.bareCpuUs).toFixed(2);
console.log(JSON.stringify(out));
process.exit(0);
