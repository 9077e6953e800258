import type { Transport } from "@switchyard/core";
import { parseOptions } from "./options.js";
import { PubsubTransport } from "./transport.js";

export { decode, encode, LIMITS } from "./codec.js";
export { encodeName, Names } from "./names.js";
export { type PubsubOptions, parseOptions } from "./options.js";
export { PubsubTransport, pubsubCapabilities } from "./transport.js";

/** `pubsub://PROJECT_ID[?emulator=host:port&…]` (see README); `options` override the URL. */
export function createTransport(url: URL, options: Record<string, unknown> = {}): Transport {
  return new PubsubTransport(parseOptions(url, options));
}

export const schemes = ["pubsub"] as const;
