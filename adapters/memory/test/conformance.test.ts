import { defineConformanceSuite } from "@switchyard/conformance";
import { MemoryBroker, MemoryTransport } from "../src/index.js";

const broker = new MemoryBroker();
defineConformanceSuite({ name: "memory", createTransport: () => new MemoryTransport({ broker }) });
