// Fault test (issue 22): HTTP feeds with the PostgreSQL store. A consumer process is SIGKILLed while it
// holds messages and a new one takes over; the producer process, which also serves the feed, is
// SIGKILLed with a batch in flight and a new one serves the same feed again and sends again from the
// first unacknowledged event (processKillCase, @switchyard/broker-stack/fault). PostgreSQL keeps
// running. Short leases (1.5 s) hand the killed consumer's claimed rows and poller lease to the new one
// within seconds. Each run has its own tables (tablePrefix), dropped at the end.
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { processKillCase } from "@switchyard/broker-stack/fault";
import pg from "pg";
import { afterAll, expect, it } from "vitest";

const pgUrl = brokerEndpoint("postgres").url;
const run = randomUUID().slice(0, 8);

/** A free loopback port for the producer's feed server (the new producer serves on the same one). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function urls(name: string) {
  const feed = `http-feed://127.0.0.1:${await freePort()}/feeds?store=${encodeURIComponent(pgUrl)}`;
  return {
    producer: `${feed}&serve=true&tablePrefix=fk_${run}_${name}_p`,
    consumer: `${feed}&tablePrefix=fk_${run}_${name}_c&pollTimeoutMs=1000&leaseMs=1500&readerLeaseMs=1500&pageSize=200`,
  };
}

describeWithBroker("postgres", "http-feed fault (PostgreSQL store): a process SIGKILLed mid-stream", () => {
  afterAll(async () => {
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ tablename: string }>(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE $1",
        [`fk\\_${run}\\_%`],
      );
      for (const { tablename } of rows) await client.query(`DROP TABLE IF EXISTS "${tablename}" CASCADE`);
    } finally {
      await client.end();
    }
  });

  it("10,000 events: the consumer killed holding events, a new one handles every event in key order", async () => {
    const figures = await processKillCase({
      broker: "http-feed (postgres)",
      adapter: "adapters/http-feed/fault",
      kill: "consumer",
      url: await urls("consumer"),
      target: { kind: "topic", name: "fault-stream", subscription: "fault" },
    });
    expect(figures.ordering).toBe("key");
  });

  it("10,000 events: the producer and its feed server killed mid-batch, every acknowledged event delivered", async () => {
    const figures = await processKillCase({
      broker: "http-feed (postgres)",
      adapter: "adapters/http-feed/fault",
      kill: "producer",
      url: await urls("producer"),
      target: { kind: "topic", name: "fault-stream", subscription: "fault" },
    });
    expect(figures.ordering).toBe("key");
  });
});
