// The memory transport lives in the core so that `createBus()` works with nothing else installed
// (core cannot depend on an adapter package without a cycle). This package is its adapter-shaped
// home: the same entry points as every other adapter, and its conformance run.
export {
  createTransport,
  MemoryBroker,
  MemoryTransport,
  memoryCapabilities,
  schemes,
} from "@switchyard/core/memory";
