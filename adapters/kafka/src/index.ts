export type {
  Compression,
  DriverConfig,
  DriverName,
  GroupConsumer,
  GroupHandlers,
  GroupOptions,
  IncomingRecord,
  KafkaDriver,
  OutgoingRecord,
  SaslOptions,
  TopicPartition,
  TopicSpec,
} from "./driver.js";
export { KafkajsDriver } from "./drivers/kafkajs.js";
export { PlatformaticDriver } from "./drivers/platformatic.js";
export {
  ATTEMPT_HEADER,
  DUE_HEADER,
  fromRecord,
  ID_HEADER,
  ORIGIN_HEADERS,
  originHeaders,
  toRecord,
} from "./mapping.js";
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  type KafkaConfig,
  type KafkaOptions,
  parseKafkaConfig,
} from "./options.js";
export {
  createDriver,
  createTransport,
  groupName,
  KafkaTransport,
  kafkaCapabilities,
  retryTopicName,
} from "./transport.js";

export const schemes = ["kafka"] as const;
