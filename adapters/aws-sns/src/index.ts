import type { Transport } from "@switchyard/core";
import { SnsTransport, type SnsTransportOptions } from "./transport.js";

export { decodeSnsMessage, snsTopicName } from "./codec.js";
export { SnsTransport, type SnsTransportOptions, snsCapabilities } from "./transport.js";

/** `sns://us-east-1?endpoint=http://127.0.0.1:4566`, `sns://127.0.0.1:4566?region=…` or `sns://`. */
export function createTransport(url: URL, options: Record<string, unknown> = {}): Transport {
  return new SnsTransport(options as SnsTransportOptions, url);
}

export const schemes = ["sns"] as const;
