import { randomUUID } from "node:crypto";
import stompit from "stompit";
import { expect, it } from "vitest";
import { type BrokerName, brokerEndpoint, describeWithBroker } from "../src/available.ts";

function roundTrip(name: BrokerName, destination: string, payload: string): Promise<string> {
  const u = new URL(brokerEndpoint(name).url);
  const connectHeaders: Record<string, string> = { host: "/", "heart-beat": "0,0" };
  if (u.username) {
    connectHeaders.login = decodeURIComponent(u.username);
    connectHeaders.passcode = decodeURIComponent(u.password);
  }
  return new Promise((resolve, reject) => {
    stompit.connect({ host: u.hostname, port: Number(u.port), connectHeaders }, (err, client) => {
      if (err) return reject(err);
      client.on("error", reject);
      client.subscribe({ destination, ack: "client-individual" }, (err2, message) => {
        if (err2) return reject(err2);
        message.readString("utf-8", (err3, body) => {
          if (err3) return reject(err3);
          client.ack(message);
          client.disconnect(() => resolve(body ?? ""));
        });
      });
      const frame = client.send({ destination, "content-type": "application/json", persistent: "true" });
      frame.write(payload);
      frame.end();
    });
  });
}

for (const [name, title] of [
  ["rabbitmq-stomp", "RabbitMQ STOMP plugin (61613)"],
  ["activemq", "ActiveMQ Classic STOMP (61614)"],
] as const) {
  describeWithBroker(name, `stomp smoke (stompit) on ${title}`, () => {
    it("sends one message and receives it", async () => {
      const payload = JSON.stringify({ id: randomUUID(), text: `hello ${name}` });
      const received = await roundTrip(name, `/queue/smoke-${randomUUID()}`, payload);
      expect(received).toBe(payload);
    });
  });
}
