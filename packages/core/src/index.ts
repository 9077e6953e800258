export {
  Bus,
  type BusDescription,
  type BusOptions,
  ConsumerBuilder,
  createBus,
  type HandlerOptions,
  type PublishOptions,
} from "./bus.js";
export { ADAPTER_PACKAGES, DEFAULT_URL, parseBusUrl, registerAdapter } from "./config.js";
export type {
  BatchContext,
  BatchHandler,
  BatchOptions,
  BusHooks,
  Consumer,
  ConsumerOptions,
  Handler,
  HandlerContext,
  Message,
  SkipReason,
  UnknownPolicy,
} from "./consumer.js";
export { FOREIGN_TYPE } from "./consumer.js";
export {
  type DeadLetter,
  type DeadLetterReason,
  DUAL_VERSIONS,
  FAULT,
  faultHeaders,
  REDRIVE_TO,
  readDeadLetter,
} from "./dead-letter.js";
export {
  type DeadLetterMonitor,
  type DeadLetterSample,
  type DeadLetterTarget,
  type MonitorDeadLettersOptions,
  monitorDeadLetters,
} from "./dead-letter-monitor.js";
export { type BrowseOptions, DeadLetterQueue } from "./dead-letter-queue.js";
export {
  BYTES_CONTENT_TYPE,
  CONTENT_TYPE_HEADER,
  type ContentMode,
  createEnvelope,
  decodeData,
  type Envelope,
  type EnvelopeInput,
  encodeData,
  fromWire,
  isJsonContentType,
  isStructured,
  JSON_CONTENT_TYPE,
  newId,
  packHeaders,
  RESERVED_PREFIX,
  renamePrefix,
  STRUCTURED_CONTENT_TYPE,
  toWire,
  unpackHeaders,
  type WireMessage,
  wireSize,
} from "./envelope.js";
export {
  type ErrorCode,
  isSwitchyardError,
  PermanentError,
  redactText,
  redactUrl,
  SwitchyardError,
} from "./errors.js";
export { type IdempotencyStore, MemoryIdempotencyStore } from "./idempotency.js";
export type { Instrumentation, InstrumentationScope, Logger, Settlement } from "./instrumentation.js";
export { prepareEnvelope } from "./prepare.js";
export { DEFAULT_REQUEST_TIMEOUT_MS, type ReplyOptions, type RequestOptions } from "./request-reply.js";
export { backoffDelay, defaultRetry, type RetryOptions } from "./retry.js";
export {
  defineMessage,
  type InputOf,
  type LatestVersion,
  type MessageType,
  type OutputOf,
  type VersionMap,
} from "./schema.js";
export {
  type AdapterModule,
  type Capabilities,
  type Delivery,
  type Destination,
  deadLetterQueueName,
  defaultCapabilities,
  type FaultHeaders,
  resolveCapabilities,
  type Source,
  type SubscribeOptions,
  type TopologyEntity,
  type Transport,
  type TransportSubscription,
} from "./transport.js";
