export { type Dialect, type DialectName, dialects } from "./dialect.js";
export { type ResolvedOptions, resolveOptions, type StompOptions } from "./options.js";
export { ATTEMPT_HEADER, createTransport, StompTransport } from "./transport.js";

/** URL schemes this package serves (see ADAPTER_PACKAGES in @switchyard/core). */
export const schemes = ["stomp", "stomp+ssl", "stomp+activemq", "stomp+rabbitmq"] as const;
