import { randomUUID } from "node:crypto";
import net from "node:net";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { type Delivery, isSwitchyardError, type WireMessage } from "@switchyard/core";
import stompit from "stompit";
import { afterAll, expect, it } from "vitest";
import { createTransport, type StompTransport } from "../src/index.js";

const brokers = [
  { broker: "activemq", dialect: "activemq" },
  { broker: "rabbitmq-stomp", dialect: "rabbitmq" },
] as const;

function urlOf(broker: (typeof brokers)[number]["broker"], dialect: string, port?: number): URL {
  const url = new URL(brokerEndpoint(broker).url);
  url.protocol = `stomp+${dialect}:`;
  if (port !== undefined) {
    url.hostname = "127.0.0.1";
    url.port = String(port);
  }
  return url;
}

const wire = (n: number): WireMessage => ({
  id: `m-${n}`,
  headers: { ce_id: `m-${n}`, n: String(n) },
  body: new Uint8Array([n & 0xff, 0]),
});

/** A TCP proxy in front of the broker whose connections a test can cut. */
async function proxy(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

for (const { broker, dialect } of brokers) {
  describeWithBroker(broker, `stomp adapter on ${broker}: native behaviour`, () => {
    const transports: StompTransport[] = [];
    const open = (port?: number) => {
      const t = createTransport(urlOf(broker, dialect, port), { reconnectMaxDelayMs: 500 });
      transports.push(t);
      return t;
    };
    afterAll(async () => {
      await Promise.allSettled(transports.map((t) => t.close()));
    });

    it("a subscription is a durable queue a plain STOMP client can read", async () => {
      const t = open();
      const topic = `sy-native-${randomUUID().slice(0, 8)}`;
      await t.provision([
        { kind: "subscription", topic, name: "billing", deadLetterQueue: "x", maxAttempts: 3 },
      ]);
      await t.publish({ kind: "topic", name: topic }, [wire(7)]);
      const queue =
        dialect === "activemq"
          ? `/queue/Consumer.billing.VirtualTopic.${topic}`
          : `/amq/queue/Consumer.billing.${topic}`;
      const endpoint = new URL(brokerEndpoint(broker).url);
      const headers = await new Promise<Record<string, string>>((resolve, reject) => {
        const connectHeaders: Record<string, string> = { host: "/", "heart-beat": "0,0" };
        if (endpoint.username) {
          connectHeaders.login = decodeURIComponent(endpoint.username);
          connectHeaders.passcode = decodeURIComponent(endpoint.password);
        }
        stompit.connect(
          { host: endpoint.hostname, port: Number(endpoint.port), connectHeaders },
          (err, client) => {
            if (err) return reject(err);
            client.subscribe({ destination: queue, ack: "auto" }, (err2, message) => {
              if (err2) return reject(err2);
              message.readString("utf-8", () => {
                client.disconnect();
                resolve((message as unknown as { headers: Record<string, string> }).headers);
              });
            });
          },
        );
      });
      expect(headers.ce_id).toBe("m-7");
      expect(headers.n).toBe("7");
    });

    it("a nack copies the message back with the next attempt; a delayed one waits", async () => {
      const t = open();
      const queue = `sy-attempts-${randomUUID().slice(0, 8)}`;
      const seen: Array<{ attempt: number; at: number }> = [];
      let done!: () => void;
      const finished = new Promise<void>((r) => {
        done = r;
      });
      const sub = await t.subscribe(
        { kind: "queue", name: queue, subscription: queue },
        { prefetch: 1 },
        (d) => {
          seen.push({ attempt: d.attempt, at: Date.now() });
          if (d.attempt === 1) void d.nack();
          else if (d.attempt === 2) void d.nack({ delayMs: 700 });
          else {
            void d.ack();
            done();
          }
        },
      );
      await t.publish({ kind: "queue", name: queue }, [wire(1)]);
      await finished;
      await sub.close();
      expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3]);
      expect(seen[2]!.at - seen[1]!.at).toBeGreaterThanOrEqual(650);
    });

    it("a bad password is a typed error without the password in it", async () => {
      if (dialect === "activemq") return; // our ActiveMQ instance has no authentication
      const url = urlOf(broker, dialect);
      url.username = "guest";
      url.password = "wrong-s3cret";
      const t = createTransport(url);
      const error = await t.connect().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isSwitchyardError(error, "TRANSPORT_ERROR"), String(error)).toBe(true);
      expect(String((error as Error).message)).not.toContain("wrong-s3cret");
      await t.close();
    });

    it("connections cut mid-stream: publishes and the consumer recover, nothing is lost", async () => {
      const endpoint = brokerEndpoint(broker);
      const p = await proxy({ host: endpoint.host, port: endpoint.port });
      try {
        const t = open(p.port);
        const queue = `sy-cut-${randomUUID().slice(0, 8)}`;
        const got = new Set<string>();
        const sub = await t.subscribe(
          { kind: "queue", name: queue, subscription: queue },
          { prefetch: 20 },
          (d: Delivery) => {
            got.add(d.message.id);
            void d.ack().catch(() => {}); // an ack lost with the connection: the broker redelivers
          },
        );
        const total = 600;
        const sends: Promise<void>[] = [];
        for (let n = 0; n < total; n++) {
          sends.push(t.publish({ kind: "queue", name: queue }, [wire(n)]));
          if (n === 200 || n === 400) {
            await new Promise((r) => setTimeout(r, 20));
            p.cut();
          }
          if (n % 50 === 0) await new Promise((r) => setTimeout(r, 5));
        }
        await Promise.all(sends);
        const deadline = Date.now() + 20_000;
        while (got.size < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        expect(got.size).toBe(total);
        await sub.close();
      } finally {
        p.cut();
        await p.close();
      }
    });
  });
}
