import type { ContentMode, WireMessage } from "../envelope.js";
import { SwitchyardError } from "../errors.js";
import type { Capabilities, Delivery, Destination, Source, TopologyEntity, Transport } from "../transport.js";
import { MemoryBroker } from "./broker.js";

export { MemoryBroker };

export const memoryCapabilities: Partial<Capabilities> = {
  nativeDeadLetter: true,
  nativeDelay: true,
  ordering: "key",
  consumerGroups: true,
  replayFromStart: false,
  persistent: false,
  maxMessageBytes: 1024 * 1024,
  maxHeaders: 256,
  redeliveryCount: true,
  maxDelayMs: 24 * 60 * 60 * 1000,
  keyOnWire: true, // wire messages are kept as published, key included
};

/** The embedded in-process transport: full semantics, no I/O, deterministic order. */
export class MemoryTransport implements Transport {
  readonly name = "memory";
  readonly capabilities = memoryCapabilities;
  readonly broker: MemoryBroker;
  /** Binary by default, like the brokers; `structured` lets the suite run the other content mode. */
  readonly contentMode: ContentMode;
  readonly #receivers = new Set<{ close(): void }>();
  #closed = false;

  constructor(options: { broker?: MemoryBroker | string; contentMode?: ContentMode } = {}) {
    this.contentMode = options.contentMode ?? "binary";
    this.broker =
      options.broker instanceof MemoryBroker
        ? options.broker
        : MemoryBroker.named(options.broker ?? "default");
  }

  async provision(entities: TopologyEntity[]): Promise<void> {
    for (const entity of entities) {
      if (entity.kind === "queue")
        this.broker.queue({ kind: "queue", name: entity.name, subscription: entity.name });
      else if (entity.kind === "topic") this.broker.topic(entity.name);
      else this.broker.queue({ kind: "topic", name: entity.topic, subscription: entity.name });
    }
  }

  async unprovision(entities: TopologyEntity[]): Promise<void> {
    for (const entity of entities) if (entity.kind === "queue") this.broker.removeQueue(entity.name);
  }

  async publish(destination: Destination, messages: WireMessage[]): Promise<void> {
    this.#assertOpen();
    for (const message of messages) {
      // Copies, so a caller that reuses its buffers cannot change a message in flight (Buffer.from
      // copies into Node's pool: much cheaper than a fresh ArrayBuffer per message).
      const copy: WireMessage = {
        ...message,
        headers: { ...message.headers },
        body: Buffer.from(message.body),
      };
      if (destination.kind === "queue") this.broker.publishToQueue(destination.name, copy);
      else this.broker.publishToTopic(destination.name, copy);
    }
  }

  async subscribe(source: Source, options: { prefetch: number }, deliver: (delivery: Delivery) => void) {
    this.#assertOpen();
    const receiver = this.broker.subscribe(source, options.prefetch, deliver);
    this.#receivers.add(receiver);
    return {
      // Stopping ends deliveries; the ones it holds stay settleable until close() returns them.
      stop: async () => receiver.stop(),
      close: async () => {
        this.#receivers.delete(receiver);
        receiver.close();
      },
    };
  }

  async backlog(source: Source): Promise<number | undefined> {
    return this.broker.backlog(source);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const receiver of this.#receivers) receiver.close();
    this.#receivers.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error("memory transport is closed");
  }
}

/**
 * `memory://` (the shared default broker) or `memory://name` (a broker of its own);
 * `?contentMode=structured` encodes envelopes in the CloudEvents structured mode.
 */
export function createTransport(url: URL): Transport {
  const contentMode = url.searchParams.get("contentMode") ?? "binary";
  if (contentMode !== "binary" && contentMode !== "structured") {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `memory: contentMode must be "binary" or "structured", got "${contentMode}"`,
    );
  }
  return new MemoryTransport({ broker: url.hostname || "default", contentMode });
}

export const schemes = ["memory"] as const;
