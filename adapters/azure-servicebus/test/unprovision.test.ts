// unprovision removes what a bus used alone (switchyard tail's throwaway subscription, its
// $DeadLetterQueue with it), and a topic when asked; the emulator's admin API is asked what exists.
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { checkSubscriptionRemoval } from "@switchyard/conformance";
import type { TopologyEntity } from "@switchyard/core";
import { it } from "vitest";
import { createTransport } from "../src/index.js";

describeWithBroker("servicebus", "azure-servicebus adapter: unprovision", () => {
  const endpoint = brokerEndpoint("servicebus");
  const adminUrl = `http://${endpoint.host}:${endpoint.port + 1}`;
  const path = (entity: TopologyEntity) =>
    entity.kind === "queue"
      ? `/queues/${encodeURIComponent(entity.name)}`
      : entity.kind === "topic"
        ? `/topics/${encodeURIComponent(entity.name)}`
        : `/topics/${encodeURIComponent(entity.topic)}/subscriptions/${encodeURIComponent(entity.name)}`;
  const exists = async (entity: TopologyEntity) => (await fetch(`${adminUrl}${path(entity)}`)).ok;

  it("a subscription, then its topic, are deleted", async () => {
    await checkSubscriptionRemoval({
      transport: () =>
        createTransport(
          new URL(`servicebus://${endpoint.host}:${endpoint.port}?emulator=true&adminUrl=${adminUrl}`),
        ),
      exists,
    });
  });
});
