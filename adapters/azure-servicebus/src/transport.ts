import {
  isServiceBusError,
  RetryMode,
  ServiceBusAdministrationClient,
  ServiceBusClient,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
  type ServiceBusSender,
} from "@azure/service-bus";
import {
  type Capabilities,
  type Delivery,
  type Destination,
  REDRIVE_TO,
  type Source,
  type SubscribeOptions,
  SwitchyardError,
  type TopologyEntity,
  type Transport,
  type TransportSubscription,
  type WireMessage,
} from "@switchyard/core";
import {
  ATTEMPT_HEADER,
  deadLetterOptions,
  deadLetterOrigin,
  deadLetterPath,
  fromDeadLetter,
  fromServiceBus,
  toServiceBus,
} from "./mapping.js";
import {
  type ResolvedOptions,
  resolveOptions,
  type ServiceBusOptions,
  type SubscriptionRule,
} from "./options.js";

/** The entity path a source reads: the queue, or `<topic>/Subscriptions/<subscription>`. */
export function entityOf(source: Source): string {
  return source.kind === "queue" ? source.name : `${source.name}/Subscriptions/${source.subscription}`;
}

export class ServiceBusTransport implements Transport {
  readonly name = "azure-servicebus";
  readonly capabilities: Partial<Capabilities>;
  readonly options: ResolvedOptions;
  #client: ServiceBusClient | undefined;
  #admin: ServiceBusAdministrationClient | undefined;
  readonly #senders = new Map<string, ServiceBusSender>();
  readonly #receivers = new Set<ServiceBusReceiver>();
  readonly #settling = new WeakMap<ServiceBusReceiver, Set<Promise<unknown>>>();
  #closed = false;

  constructor(options: ResolvedOptions) {
    this.options = options;
    this.capabilities = {
      // deadLetter() is Service Bus' own dead-lettering into the entity's `$DeadLetterQueue`, with
      // the core's reason and description and its fault headers as properties; the DLQ browser reads
      // that sub-queue (deadLetterSource), so it also lists what Service Bus dead-lettered itself.
      nativeDeadLetter: true,
      // nack({ delayMs }) schedules a copy (scheduled messages) and completes the original.
      nativeDelay: true,
      // Sessions mode: a key is a session, received by one session receiver at a time, one message
      // at a time, in order. Otherwise competing receivers of one entity do not keep per-key order.
      ordering: options.sessions ? "group" : "none",
      consumerGroups: true,
      replayFromStart: false,
      persistent: true,
      // Room for the AMQP encoding of properties and sections around body + headers.
      maxMessageBytes: options.maxMessageBytes - 8 * 1024,
      maxHeaders: 100,
      redeliveryCount: true,
      balancedConsumers: true,
      maxDelayMs: 7 * 24 * 60 * 60 * 1000,
    };
  }

  #clientOrThrow(): ServiceBusClient {
    if (this.#closed) throw new SwitchyardError("CLOSED", "the azure-servicebus transport is closed");
    if (!this.#client) {
      // The SDK's default waits a fixed 30 s between attempts, also when a receiver's link recovers
      // from a dropped connection: a consumer stayed idle ~58 s after a 2 s cut. Exponential from
      // 0.5 s, capped at 5 s, recovers in seconds; 8 attempts give a send ~27 s of patience, close
      // to the old three 30 s waits without their idle time. An attempt on a dead connection ends
      // after timeoutInMs: 10 s (not 30) brought the receiver's recovery after a cut from 29 s to 9 s.
      const retryOptions = {
        mode: RetryMode.Exponential,
        maxRetries: 8,
        retryDelayInMs: 500,
        maxRetryDelayInMs: 5_000,
        timeoutInMs: 10_000,
      };
      this.#client = this.options.connectionString
        ? new ServiceBusClient(this.options.connectionString, { retryOptions })
        : new ServiceBusClient(this.options.namespace!, this.options.credential as never, { retryOptions });
    }
    return this.#client;
  }

  async connect(): Promise<void> {
    this.#clientOrThrow();
  }

  // ---- topology ----

  async provision(entities: TopologyEntity[]): Promise<void> {
    if (this.options.provisioning === "none") return;
    const settings = {
      maxDeliveryCount: this.options.maxDeliveryCount,
      lockDurationMs: this.options.lockDurationMs,
    };
    for (const entity of entities) {
      const sessionful =
        entity.kind === "queue"
          ? this.#sessionful(entity.name)
          : entity.kind === "subscription" && this.options.sessions;
      try {
        if (this.options.provisioning === "emulator") {
          const path = emulatorPath(entity);
          const rule = entity.kind === "subscription" ? this.#rule(entity.topic, entity.name) : undefined;
          const response = await fetch(new URL(path, this.options.adminUrl), {
            method: "PUT",
            body: JSON.stringify(
              entity.kind === "topic"
                ? {}
                : {
                    ...settings,
                    ...(sessionful ? { requiresSession: true } : {}),
                    ...(rule ? { rules: [{ name: "$Default", filter: rule }] } : {}),
                  },
            ),
          });
          if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
        } else {
          await this.#azureProvision(entity, sessionful);
        }
      } catch (cause) {
        const name =
          entity.kind === "subscription" ? `${entity.topic}/Subscriptions/${entity.name}` : entity.name;
        throw new SwitchyardError(
          "TRANSPORT_ERROR",
          `cannot create ${entity.kind} "${name}" on ${this.options.display}: ${(cause as Error).message}`,
          { cause, details: { reason: "provision-failed", entity: name } },
        );
      }
    }
  }

  /**
   * Deletes topology a bus used alone: a queue (the reply queue of `bus.request()`), a subscription
   * (the throwaway one of `switchyard tail`, its `$DeadLetterQueue` with it), a topic. Already gone
   * is fine; with `provisioning=none` nothing is deleted.
   */
  async unprovision(entities: TopologyEntity[]): Promise<void> {
    if (this.options.provisioning === "none") return;
    for (const entity of entities) {
      const name =
        entity.kind === "subscription" ? `${entity.topic}/Subscriptions/${entity.name}` : entity.name;
      try {
        if (this.options.provisioning === "emulator") {
          const path = emulatorPath(entity);
          const response = await fetch(new URL(path, this.options.adminUrl), { method: "DELETE" });
          if (!response.ok && response.status !== 404)
            throw new Error(`${response.status} ${await response.text()}`);
        } else {
          await this.#azureUnprovision(entity);
        }
      } catch (cause) {
        throw new SwitchyardError(
          "TRANSPORT_ERROR",
          `cannot delete ${entity.kind} "${name}" on ${this.options.display}: ${(cause as Error).message}`,
          { cause, details: { entity: name } },
        );
      }
    }
  }

  async #azureUnprovision(entity: TopologyEntity): Promise<void> {
    const admin = this.#administration();
    if (!admin) return;
    if (entity.kind === "queue") {
      if (await admin.queueExists(entity.name)) await admin.deleteQueue(entity.name);
    } else if (entity.kind === "topic") {
      if (await admin.topicExists(entity.name)) await admin.deleteTopic(entity.name);
    } else if (await admin.subscriptionExists(entity.topic, entity.name)) {
      await admin.deleteSubscription(entity.topic, entity.name);
    }
  }

  /** The management client for `provisioning=azure`, when credentials allow one. */
  #administration(): ServiceBusAdministrationClient | undefined {
    if (!this.options.connectionString && !this.options.credential) return undefined;
    this.#admin ??= this.options.connectionString
      ? new ServiceBusAdministrationClient(this.options.connectionString)
      : new ServiceBusAdministrationClient(this.options.namespace!, this.options.credential as never);
    return this.#admin;
  }

  /**
   * Sessions mode covers every entity but the core's dead-letter queues (`….dlq`): dead letters owe
   * no order, and the DLQ browser must hold many letters at once.
   */
  #sessionful(queueName: string): boolean {
    return this.options.sessions && !queueName.endsWith(".dlq") && !deadLetterOrigin(queueName);
  }

  /** The dead letters of a source are in its entity's `$DeadLetterQueue` sub-queue, read as a queue. */
  deadLetterSource(source: Source): Source {
    const path = deadLetterPath(source);
    return { kind: "queue", name: path, subscription: path };
  }

  async #azureProvision(entity: TopologyEntity, sessionful: boolean): Promise<void> {
    const admin = this.#administration();
    if (!admin) return;
    const lockDuration = `PT${Math.round(this.options.lockDurationMs / 1000)}S`;
    const ignoreExists = (error: unknown) => {
      if ((error as { code?: string }).code === "MessageEntityAlreadyExistsError") return;
      throw error;
    };
    if (entity.kind === "queue") {
      if (!(await admin.queueExists(entity.name)))
        await admin
          .createQueue(entity.name, {
            maxDeliveryCount: this.options.maxDeliveryCount,
            lockDuration,
            requiresSession: sessionful,
          })
          .catch(ignoreExists);
    } else if (entity.kind === "topic") {
      if (!(await admin.topicExists(entity.name))) await admin.createTopic(entity.name).catch(ignoreExists);
    } else if (!(await admin.subscriptionExists(entity.topic, entity.name))) {
      const rule = this.#rule(entity.topic, entity.name);
      await admin
        .createSubscription(entity.topic, entity.name, {
          maxDeliveryCount: this.options.maxDeliveryCount,
          lockDuration,
          requiresSession: sessionful,
          ...(rule
            ? {
                defaultRuleOptions: {
                  name: "$Default",
                  filter: "sql" in rule ? { sqlExpression: rule.sql } : rule.correlation,
                },
              }
            : {}),
        })
        .catch(ignoreExists);
    }
  }

  /** The configured filter of a subscription (`options.rules["topic/subscription"]`), if any. */
  #rule(topic: string, subscription: string): SubscriptionRule | undefined {
    return this.options.rules.get(`${topic}/${subscription}`);
  }

  // ---- publish ----

  #sender(entity: string): ServiceBusSender {
    let sender = this.#senders.get(entity);
    if (!sender) {
      sender = this.#clientOrThrow().createSender(entity);
      this.#senders.set(entity, sender);
    }
    return sender;
  }

  async publish(destination: Destination, messages: WireMessage[]): Promise<void> {
    await this.#send(
      destination.name,
      messages.map((m) => toServiceBus(m, {}, this.#sessionful(destination.name))),
    );
  }

  async #send(entity: string, messages: ReturnType<typeof toServiceBus>[]): Promise<void> {
    const sender = this.#sender(entity);
    try {
      let batch = await sender.createMessageBatch();
      for (const message of messages) {
        if (batch.tryAddMessage(message)) continue;
        if (batch.count === 0) throw tooLarge(message.messageId, this.options.maxMessageBytes);
        await sender.sendMessages(batch);
        batch = await sender.createMessageBatch();
        if (!batch.tryAddMessage(message)) throw tooLarge(message.messageId, this.options.maxMessageBytes);
      }
      if (batch.count > 0) await sender.sendMessages(batch);
    } catch (error) {
      throw this.#translate(error, entity, "send to");
    }
  }

  // ---- consume ----

  async subscribe(
    source: Source,
    options: SubscribeOptions,
    deliver: (delivery: Delivery) => void,
  ): Promise<TransportSubscription> {
    if (source.kind === "queue" ? this.#sessionful(source.name) : this.options.sessions)
      return this.#subscribeSessions(source, options, deliver);
    const entity = entityOf(source);
    const receiver = this.#clientOrThrow().createReceiver(entity, {
      receiveMode: "peekLock",
      skipParsingBodyAsJson: true,
      maxAutoLockRenewalDurationInMs: this.options.maxLockRenewalMs,
    });
    this.#receivers.add(receiver);
    const settling = new Set<Promise<unknown>>();
    this.#settling.set(receiver, settling);
    let opened!: () => void;
    let failed!: (error: unknown) => void;
    const ready = new Promise<void>((resolve, reject) => {
      opened = resolve;
      failed = reject;
    });
    let isOpen = false;
    const handlers = {
      processMessage: (received: ServiceBusReceivedMessage) =>
        // The promise resolves once the delivery is settled: the client gives credit back only then,
        // so at most `prefetch` deliveries are unsettled.
        new Promise<void>((settled) => deliver(this.#delivery(source, receiver, received, settled))),
      // Before the link is open an error fails subscribe(); after, the SDK's subscribe() goes on by
      // itself (a lost connection or link is re-opened, a failed lock renewal leaves the message to
      // come back): reported as recovered.
      processError: async (args: { error: Error }) => {
        if (!isOpen) failed(this.#translate(args.error, entity, "receive from"));
        else options.onError?.(this.#translate(args.error, entity, "receive from"));
      },
      // Not in the public typings: called once the receiver link is attached, before credit is given.
      postInitialize: async () => {
        isOpen = true;
        opened();
      },
    };
    const handle = receiver.subscribe(handlers as never, {
      autoCompleteMessages: false,
      maxConcurrentCalls: options.prefetch,
    });
    try {
      await ready;
    } catch (error) {
      await handle.close().catch(() => {});
      await receiver.close().catch(() => {});
      this.#receivers.delete(receiver);
      throw error;
    }
    let stopped: Promise<void> | undefined;
    const stop = () => {
      stopped ??= handle.close().catch(() => {});
      return stopped;
    };
    return {
      stop,
      close: async () => {
        await stop();
        // Settlements already sent finish on the open link before it detaches.
        await Promise.allSettled([...settling]);
        await receiver.close().catch(() => {});
        this.#settling.delete(receiver);
        this.#receivers.delete(receiver);
      },
    };
  }

  /**
   * Sessions mode: a pool of up to `prefetch` workers, each accepting the next available session,
   * streaming its messages one at a time (so in order, and at most one unsettled per session), and
   * releasing it after `sessionIdleMs` without a message.
   */
  async #subscribeSessions(
    source: Source,
    options: SubscribeOptions,
    deliver: (delivery: Delivery) => void,
  ): Promise<TransportSubscription> {
    const entity = entityOf(source);
    const client = this.#clientOrThrow();
    // The entity must exist: peeking needs no session and fails with not-found otherwise.
    const probe = client.createReceiver(entity, { receiveMode: "peekLock" });
    try {
      await probe.peekMessages(1);
    } catch (error) {
      throw this.#translate(error, entity, "receive from");
    } finally {
      await probe.close().catch(() => {});
    }
    const abort = new AbortController();
    let stopped = false;
    const wake = new Promise<void>((resolve) => abort.signal.addEventListener("abort", () => resolve()));
    const sleep = (ms: number) =>
      Promise.race([wake, new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
    const held = new Set<ServiceBusReceiver>();
    const settling = new Map<ServiceBusReceiver, Set<Promise<unknown>>>();
    /** Workers while they hold a session (close waits for these, not for pending accepts). */
    const holding = new Set<Promise<void>>();
    const worker = async () => {
      while (!stopped) {
        let receiver: ServiceBusReceiver;
        try {
          receiver = await client.acceptNextSession(entity, {
            receiveMode: "peekLock",
            skipParsingBodyAsJson: true,
            maxAutoLockRenewalDurationInMs: this.options.maxLockRenewalMs,
            abortSignal: abort.signal,
          });
        } catch (error) {
          // No session available before the timeout, or aborted: again at once. Anything else
          // (connection trouble, a deleted entity): again after a pause, without spinning.
          const code = isServiceBusError(error) ? error.code : undefined;
          const expected = code === "ServiceTimeout" || code === "SessionCannotBeLocked";
          if (!expected && !stopped) options.onError?.(this.#translate(error, entity, "accept a session of"));
          if (!stopped) await sleep(expected ? 10 : 1000);
          continue;
        }
        if (stopped) {
          await receiver.close().catch(() => {});
          break;
        }
        held.add(receiver);
        this.#receivers.add(receiver);
        const mine = new Set<Promise<unknown>>();
        this.#settling.set(receiver, mine);
        settling.set(receiver, mine);
        let release!: () => void;
        const holdingDone = new Promise<void>((resolve) => {
          release = resolve;
        });
        holding.add(holdingDone);
        try {
          await this.#holdSession(source, receiver, deliver, mine, () => stopped, sleep, options.onError);
        } finally {
          holding.delete(holdingDone);
          release();
        }
        if (stopped) break; // close() settles what is held, then closes the receiver
        held.delete(receiver);
        settling.delete(receiver);
        this.#receivers.delete(receiver);
      }
    };
    const workers = Array.from({ length: Math.max(1, options.prefetch) }, () => worker());
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      abort.abort();
    };
    return {
      stop,
      close: async () => {
        await stop();
        // A worker still waiting in acceptNextSession closes what it gets once it returns.
        void Promise.allSettled(workers);
        await Promise.allSettled([...holding]);
        await Promise.allSettled([...settling.values()].flatMap((set) => [...set]));
        await Promise.allSettled([...held].map((r) => r.close()));
        for (const receiver of held) this.#receivers.delete(receiver);
        held.clear();
      },
    };
  }

  /** Streams one session's messages one at a time until it is idle, lost, or the consumer stops. */
  async #holdSession(
    source: Source,
    receiver: ServiceBusReceiver,
    deliver: (delivery: Delivery) => void,
    settling: Set<Promise<unknown>>,
    stopped: () => boolean,
    sleep: (ms: number) => Promise<void>,
    onError: SubscribeOptions["onError"],
  ): Promise<void> {
    let active = 0;
    let last = Date.now();
    let lost = false;
    const handle = receiver.subscribe(
      {
        processMessage: (received) => {
          active++;
          return new Promise<void>((settled) =>
            deliver(
              this.#delivery(source, receiver, received, () => {
                active--;
                last = Date.now();
                settled();
              }),
            ),
          );
        },
        // The session is released and a worker accepts the next one: reported as recovered.
        processError: async (args) => {
          if (!lost && !stopped()) onError?.(this.#translate(args.error, entityOf(source), "receive from"));
          lost = true;
        },
      },
      { autoCompleteMessages: false, maxConcurrentCalls: 1 },
    );
    const idleMs = this.options.sessionIdleMs;
    while (!stopped() && !lost && (active > 0 || Date.now() - last < idleMs)) {
      await sleep(Math.min(100, idleMs));
    }
    await handle.close().catch(() => {});
    if (stopped()) return;
    await Promise.allSettled([...settling]);
    await receiver.close().catch(() => {});
  }

  #delivery(
    source: Source,
    receiver: ServiceBusReceiver,
    received: ServiceBusReceivedMessage,
    settled: () => void,
  ): Delivery {
    const entity = entityOf(source);
    const origin = source.kind === "queue" ? deadLetterOrigin(source.name) : undefined;
    const { message, before } = origin ? fromDeadLetter(received, origin) : fromServiceBus(received);
    const attempt = before + received.deliveryCount! + 1;
    let done = false;
    const settle = async (what: string, action: () => Promise<void>) => {
      if (done) {
        throw new SwitchyardError(
          "ALREADY_SETTLED",
          `message ${message.id} already settled; ${what} refused`,
        );
      }
      done = true;
      const work = action();
      const pending = this.#settling.get(receiver);
      pending?.add(work);
      try {
        await work;
      } catch (error) {
        throw this.#translate(error, entity, `${what} on`);
      } finally {
        pending?.delete(work);
        settled();
      }
    };
    return {
      message,
      attempt,
      ack: () => settle("ack", () => receiver.completeMessage(received)),
      deadLetter: (fault) =>
        settle("deadLetter", () => receiver.deadLetterMessage(received, deadLetterOptions(fault))),
      nack: (nackOptions) =>
        settle("nack", async () => {
          const delayMs = nackOptions?.delayMs ?? 0;
          if (delayMs <= 0) return receiver.abandonMessage(received);
          // A scheduled copy carries the attempts used so far (its deliveryCount starts again at 0);
          // for a topic it is addressed to the failing subscription only (the others skip it). The
          // copy is scheduled before the original is completed: a failure in between means a
          // duplicate (at-least-once), never a loss.
          const extra: Record<string, string> = { [ATTEMPT_HEADER]: String(attempt) };
          if (source.kind === "topic") extra[REDRIVE_TO] = source.subscription;
          // In sessions mode the copy keeps the message's session (its key).
          const copy = toServiceBus(message, extra, this.#sessionful(source.name));
          try {
            await this.#sender(source.name).scheduleMessages(copy, new Date(Date.now() + delayMs));
          } catch (error) {
            // Not scheduled: return the original instead, so it is not held until its lock lapses.
            await receiver.abandonMessage(received).catch(() => {});
            throw error;
          }
          await receiver.completeMessage(received);
        }),
    };
  }

  #translate(error: unknown, entity: string, what: string): unknown {
    if (error instanceof SwitchyardError) return error;
    const code = isServiceBusError(error) ? error.code : (error as { code?: string })?.code;
    const text = redactSecrets((error as Error)?.message ?? String(error));
    if (code === "MessagingEntityNotFound") {
      return new SwitchyardError(
        "TRANSPORT_ERROR",
        `Service Bus entity "${entity}" does not exist on ${this.options.display}; create it or let the adapter provision it`,
        { cause: error, details: { reason: "entity-not-found", entity } },
      );
    }
    if (code === "MessageLockLost" || code === "SessionLockLost") {
      return new SwitchyardError(
        "TRANSPORT_ERROR",
        `the lock of a message from "${entity}" was lost (it will be redelivered): ${text}`,
        { cause: error, details: { reason: "lock-lost", entity } },
      );
    }
    if (code === "MessageSizeExceeded") {
      return new SwitchyardError("MESSAGE_TOO_LARGE", `a message to "${entity}" is too large: ${text}`, {
        cause: error,
      });
    }
    return new SwitchyardError(
      "TRANSPORT_ERROR",
      `cannot ${what} "${entity}" on ${this.options.display}: ${text}`,
      {
        cause: error,
      },
    );
  }

  /**
   * The entity's `activeMessageCount` (waiting and locked by a receiver), plus a queue's
   * `scheduledMessageCount` (retries waiting out a nack's delay; a subscription's delayed retries are
   * scheduled on its topic, so they are not counted until due). From the emulator's admin API or
   * the Azure administration client; `undefined` when the entity does not exist or the adapter has
   * no management access (`provisioning=none`).
   */
  async backlog(source: Source): Promise<number | undefined> {
    if (this.#closed) throw new SwitchyardError("CLOSED", "the azure-servicebus transport is closed");
    const entity = entityOf(source);
    try {
      if (this.options.provisioning === "emulator") {
        const path =
          source.kind === "queue"
            ? `/queues/${encodeURIComponent(source.name)}`
            : `/topics/${encodeURIComponent(source.name)}/subscriptions/${encodeURIComponent(source.subscription)}`;
        const response = await fetch(new URL(path, this.options.adminUrl));
        if (response.status === 404) return undefined;
        if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
        const counts = (await response.json()) as {
          activeMessageCount: number;
          scheduledMessageCount?: number;
        };
        return counts.activeMessageCount + (counts.scheduledMessageCount ?? 0);
      }
      if (this.options.provisioning !== "azure") return undefined;
      if (!this.options.connectionString && !this.options.credential) return undefined;
      this.#admin ??= this.options.connectionString
        ? new ServiceBusAdministrationClient(this.options.connectionString)
        : new ServiceBusAdministrationClient(this.options.namespace!, this.options.credential as never);
      if (source.kind === "queue") {
        const counts = await this.#admin.getQueueRuntimeProperties(source.name);
        return counts.activeMessageCount + counts.scheduledMessageCount;
      }
      const counts = await this.#admin.getSubscriptionRuntimeProperties(source.name, source.subscription);
      return counts.activeMessageCount;
    } catch (error) {
      if ((error as { code?: string }).code === "MessageEntityNotFoundError") return undefined;
      throw this.#translate(error, entity, "read the message counts of");
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#receivers].map((r) => r.close()));
    await Promise.allSettled([...this.#senders.values()].map((s) => s.close()));
    this.#receivers.clear();
    this.#senders.clear();
    await this.#client?.close().catch(() => {});
  }
}

function tooLarge(id: unknown, limit: number): SwitchyardError {
  return new SwitchyardError(
    "MESSAGE_TOO_LARGE",
    `message ${String(id)} does not fit in one Service Bus message (limit ${limit} bytes encoded)`,
    { details: { limit } },
  );
}

/** Strips SAS keys and signatures from a message. */
export function redactSecrets(text: string): string {
  return text
    .replace(/(SharedAccessKey=)[^;\s]+/gi, "$1***")
    .replace(/(SharedAccessSignature\s+)\S+/gi, "$1***")
    .replace(/(sig=)[^&\s]+/gi, "$1***");
}

export function createServiceBusTransport(url: URL, options: ServiceBusOptions = {}): ServiceBusTransport {
  return new ServiceBusTransport(resolveOptions(url, options));
}

/** Where the emulator's admin API keeps an entity. */
function emulatorPath(entity: TopologyEntity): string {
  if (entity.kind === "queue") return `/queues/${encodeURIComponent(entity.name)}`;
  if (entity.kind === "topic") return `/topics/${encodeURIComponent(entity.name)}`;
  return `/topics/${encodeURIComponent(entity.topic)}/subscriptions/${encodeURIComponent(entity.name)}`;
}
