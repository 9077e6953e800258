import type { Transport } from "@switchyard/core";
import type { ServiceBusOptions } from "./options.js";
import { createServiceBusTransport } from "./transport.js";

export { AMQP_PREFIX, ATTEMPT_HEADER, fromServiceBus, KEY_HEADER, toServiceBus } from "./mapping.js";
export {
  type CorrelationRuleFilter,
  type ResolvedOptions,
  resolveOptions,
  type ServiceBusOptions,
  type SubscriptionRule,
} from "./options.js";
export { createServiceBusTransport, entityOf, redactSecrets, ServiceBusTransport } from "./transport.js";

/**
 * `azure-servicebus://127.0.0.1:5673?emulator=true&adminUrl=http://127.0.0.1:5674`,
 * `azure-servicebus://KEYNAME:KEY@NS.servicebus.windows.net`, or options.connectionString; see README.md.
 */
export function createTransport(url: URL, options: Record<string, unknown> = {}): Transport {
  return createServiceBusTransport(url, options as ServiceBusOptions);
}

export const schemes = ["azure-servicebus", "servicebus"] as const;
