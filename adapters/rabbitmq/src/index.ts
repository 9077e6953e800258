import type { Transport } from "@switchyard/core";
import type { RabbitOptions } from "./options.js";
import { createRabbitTransport } from "./transport.js";

export { AMQP_PREFIX, fromAmqp, toAmqp } from "./mapping.js";
export { type RabbitOptions, type ResolvedOptions, resolveOptions } from "./options.js";
export { delayBucket, queueOf, RabbitTransport } from "./transport.js";

/** `amqp://user:pass@host:5672/vhost?queueType=classic` or `amqps://…`; see README.md for options. */
export function createTransport(url: URL, options: Record<string, unknown> = {}): Transport {
  return createRabbitTransport(url, options as RabbitOptions);
}

export const schemes = ["amqp", "amqps"] as const;
