export {
  entityPath,
  Namespace,
  type NamespaceConfig,
  Queue,
  type QueueConfig,
  Subscription,
  type SubscriptionConfig,
  Topic,
  type TopicConfig,
} from "./namespace.js";
export { type EmulatorOptions, ServiceBusEmulator } from "./server.js";
export {
  EmulatorError,
  type EntityOptions,
  MessageStore,
  reorderGuid,
  STANDARD_MAX_MESSAGE_BYTES,
} from "./store.js";

import { type EmulatorOptions, ServiceBusEmulator } from "./server.js";

/** Starts an emulator (port 0 = a free port) and resolves once it listens. */
export function startEmulator(options: EmulatorOptions = {}): Promise<ServiceBusEmulator> {
  return new ServiceBusEmulator(options).start();
}
