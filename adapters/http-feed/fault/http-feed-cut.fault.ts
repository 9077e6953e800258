// Fault test (issue 22): every PostgreSQL connection of the feed server, the producer and the consumer
// (pools and the LISTEN connection) is cut through a loopback TCP proxy mid-stream, new ones refused
// for ~2 s, then let through again; PostgreSQL keeps running. The pools reconnect on their own (no new
// bus), every event is handled at least once, in order per subject, and the duplicates are counted.
// Runs only in the fault phase (vitest.fault.config.ts).
import { randomUUID } from "node:crypto";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { connectionCutCase, Handled, TcpProxy } from "@switchyard/broker-stack/fault";
import { messages } from "@switchyard/conformance";
import { createBus } from "@switchyard/core";
import { it } from "vitest";
import { HttpFeedTransport, PostgresStore, startFeedServer } from "../src/index.js";

const { Ping } = messages;
const TOTAL = Number(process.env.FAULT_TOTAL ?? 10_000);

describeWithBroker(
  "postgres",
  "http-feed fault: PostgreSQL connections cut through a proxy mid-stream",
  () => {
    it("10,000 events: the stores reconnect on their own, every event is handled in subject order", async () => {
      const store = new URL(brokerEndpoint("postgres").url);
      const proxy = await TcpProxy.start({ host: store.hostname, port: Number(store.port || 5432) });
      store.host = proxy.hostPort;
      const serverStore = new PostgresStore({ url: store.href });
      const server = await startFeedServer({ store: serverStore, basePath: "/feeds" });
      const topic = `sy-fault-feed-cut-${randomUUID().slice(0, 8)}`;
      const transport = () =>
        new HttpFeedTransport({ store: store.href, feedUrl: server.url, pollTimeoutMs: 5000 });
      const producer = createBus({ transport: transport(), source: "fault-producer" });
      const errors: string[] = [];
      const consumer = createBus({
        transport: transport(),
        source: "fault-consumer",
        hooks: { onError: (event) => errors.push(String(event.error)) },
      });
      const handled = new Handled();
      try {
        await consumer
          .subscribe(topic, "fault")
          .on(Ping, async (msg) => handled.add(msg.data.n, msg.key))
          .start({ concurrency: 32 });
        await connectionCutCase({
          broker: "http-feed (postgres)",
          adapter: "adapters/http-feed/fault",
          proxy,
          total: TOTAL,
          handled,
          errors,
          producer,
          consumer,
          ordered: true,
          send: (numbers) =>
            producer
              .publishBatch(
                topic,
                Ping,
                numbers.map((n) => ({ data: { n }, options: { id: `${topic}-${n}`, key: `s${n % 16}` } })),
              )
              .then(() => {}),
        });
      } finally {
        await server.close();
        await serverStore.close();
      }
    });
  },
);
