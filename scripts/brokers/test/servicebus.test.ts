import { randomUUID } from "node:crypto";
import { ServiceBusClient } from "@azure/service-bus";
import { expect, it } from "vitest";
import { brokerEndpoint, describeWithBroker } from "../src/available.ts";

describeWithBroker("servicebus", "servicebus smoke (@azure/service-bus on our emulator, 5673)", () => {
  it("sends one message to a queue and receives it with peek-lock", async () => {
    const { host, port } = brokerEndpoint("servicebus");
    const queue = `smoke-${randomUUID()}`;
    const admin = await fetch(`http://${host}:${port + 1}/queues/${queue}`, { method: "PUT", body: "{}" });
    expect(admin.status).toBe(201);
    const client = new ServiceBusClient(
      `Endpoint=sb://${host}:${port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;`,
    );
    try {
      await client
        .createSender(queue)
        .sendMessages({ body: { text: "hello service bus" }, messageId: "m-1" });
      const receiver = client.createReceiver(queue);
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 10_000 });
      expect(message?.body).toEqual({ text: "hello service bus" });
      expect(message?.messageId).toBe("m-1");
      expect(message?.deliveryCount).toBe(0);
      await receiver.completeMessage(message!);
    } finally {
      await client.close();
      await fetch(`http://${host}:${port + 1}/queues/${queue}`, { method: "DELETE" });
    }
  });
});
