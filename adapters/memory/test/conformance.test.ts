import { defineConformanceSuite } from "@switchyard/conformance";
import { MemoryBroker, MemoryTransport } from "../src/index.js";

const broker = new MemoryBroker();
defineConformanceSuite({ name: "memory", createTransport: () => new MemoryTransport({ broker }) });

// The same contract with envelopes in the CloudEvents structured content mode (what Kafka uses by
// default): every case must hold whichever mode the transport picks.
const structured = new MemoryBroker();
defineConformanceSuite({
  name: "memory (structured content mode)",
  createTransport: () => new MemoryTransport({ broker: structured, contentMode: "structured" }),
});
