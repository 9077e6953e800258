import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { checkReplyQueueLifecycle } from "@switchyard/conformance";
import { it } from "vitest";
import { createTransport } from "../src/index.js";

describeWithBroker("servicebus", "azure-servicebus adapter: request-reply", () => {
  const endpoint = brokerEndpoint("servicebus");
  const adminUrl = `http://${endpoint.host}:${endpoint.port + 1}`;
  const make = () =>
    createTransport(
      new URL(`servicebus://${endpoint.host}:${endpoint.port}?emulator=true&adminUrl=${adminUrl}`),
    );
  const exists = async (queue: string) => (await fetch(`${adminUrl}/queues/${queue}`)).ok;

  it("the first request creates the bus's reply queue and close() deletes it", async () => {
    await checkReplyQueueLifecycle({ transport: make, exists });
  });
});
