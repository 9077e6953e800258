import { madeFrom } from "@switchyard/broker-stack/cleanup";
import type { ServiceBusEmulator } from "@switchyard/servicebus-emulator";

/**
 * The conformance suites' teardown on the emulator: deletes the queues and topics (with their
 * subscriptions) of the names the cases made, through its HTTP admin API. The emulator has no
 * listing route, so the names come from its namespace (it runs in this process).
 */
export async function deleteEntitiesNamed(emulator: ServiceBusEmulator, names: string[]): Promise<void> {
  const ours = madeFrom(names);
  const paths = [
    ...[...emulator.namespace.queues.values()].map(({ path }) => `/queues/${encodeURIComponent(path)}`),
    ...[...emulator.namespace.topics.values()].map(({ path }) => `/topics/${encodeURIComponent(path)}`),
  ].filter((path) => ours(decodeURIComponent(path)));
  for (const path of paths) {
    const response = await fetch(new URL(path, emulator.adminUrl), { method: "DELETE" });
    if (!response.ok && response.status !== 404)
      throw new Error(`emulator admin: DELETE ${path} answered ${response.status}`);
  }
}

/** The queues and topics still in the emulator's namespace: none once a suite has cleaned up. */
export function entitiesLeft(emulator: ServiceBusEmulator): string[] {
  return [
    ...[...emulator.namespace.queues.values()].map(({ path }) => `queue ${path}`),
    ...[...emulator.namespace.topics.values()].map(({ path }) => `topic ${path}`),
  ];
}
