import type { Transport } from "@switchyard/core";
import { SqsTransport, type SqsTransportOptions } from "./transport.js";

export {
  ATTR,
  decodeMessage,
  type EncodedMessage,
  encodeMessage,
  envelopeLimit,
  type ReceivedAttributes,
} from "./codec.js";
export {
  type AwsOptions,
  awsError,
  clientConfig,
  type ResolvedAwsOptions,
  resolveAwsOptions,
} from "./config.js";
export { SqsConsumer, type SqsConsumerOptions } from "./consumer.js";
export { escapeName, isFifoName, sqsQueueName, subscriptionPrefix, subscriptionQueueName } from "./names.js";
export {
  BATCH,
  type BatchFailure,
  fifoIds,
  MAX_VISIBILITY_SECONDS,
  SqsQueues,
  sendInBatches,
} from "./queues.js";
export { SqsBase, SqsTransport, type SqsTransportOptions, sqsCapabilities } from "./transport.js";

/** `sqs://us-east-1?endpoint=http://127.0.0.1:9324`, `sqs://127.0.0.1:9324?region=…` or `sqs://`. */
export function createTransport(url: URL, options: Record<string, unknown> = {}): Transport {
  return new SqsTransport(options as SqsTransportOptions, url);
}

export const schemes = ["sqs"] as const;
