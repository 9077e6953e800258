// @switchyard/cli: the `switchyard` command, and the pieces of it worth calling from code.

export { type BusInfo, definitionsOfBuses } from "./asyncapi/from-bus.js";
export {
  type AsyncApiOptions,
  type AsyncApiResult,
  type BusAsyncApiOptions,
  buildAsyncApi,
  messageId,
  toAsyncApi,
} from "./asyncapi/to-asyncapi.js";
export {
  checkDefinitions,
  loadDefinitions,
  type QueueDefinition,
  requiredTopology,
  type SubscriptionDefinition,
  type SwitchyardDefinitions,
  type TopicDefinition,
} from "./definitions.js";
export { EXIT } from "./exit-codes.js";
export type { CliIo } from "./io.js";
export { processIo } from "./process-io.js";
export { runCli } from "./program.js";
