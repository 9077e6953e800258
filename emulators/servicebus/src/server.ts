import { randomBytes } from "node:crypto";
import {
  createServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Server as NetServer } from "node:net";
import rhea from "rhea";
import {
  entityPath,
  Namespace,
  type NamespaceConfig,
  type SendTarget,
  type Subscription,
} from "./namespace.js";
import { type CorrelationFilter, type RuleConfig, ruleDescription } from "./rules.js";
import {
  type Consumer,
  EmulatorError,
  type Entry,
  type MessageStore,
  reorderGuid,
  type SessionLock,
} from "./store.js";

const BATCH_FORMAT = 0x80013700;
const SESSION_FILTER = "com.microsoft:session-filter";
/** .NET ticks (100 ns since 0001-01-01) at the Unix epoch. */
const EPOCH_TICKS = 621355968000000000n;
const { message: amqpMessage, types } = rhea as any;

export interface EmulatorOptions {
  /** AMQP port on 127.0.0.1. Default 5673; 0 picks a free one. */
  port?: number;
  /** HTTP admin port. Default `port + 1`; 0 picks a free one. */
  adminPort?: number;
  host?: string;
  /** Entities to declare at start. */
  config?: NamespaceConfig;
  /** Called with anything the emulator wants to report (bad frames, refused links). */
  log?: (line: string) => void;
}

interface LinkConsumer extends Consumer {
  link: any;
  store: MessageStore;
}

/**
 * An Azure Service Bus emulator: an AMQP 1.0 server (rhea) that the official `@azure/service-bus`
 * client talks to with `UseDevelopmentEmulator=true`, plus a small HTTP admin API to declare
 * entities. For development and CI; it is not the service.
 */
export class ServiceBusEmulator {
  readonly namespace: Namespace;
  #listener: NetServer | undefined;
  #admin: HttpServer | undefined;
  readonly #options: EmulatorOptions;
  readonly #connections = new Set<any>();
  readonly #log: (line: string) => void;
  port = 0;
  adminPort = 0;

  constructor(options: EmulatorOptions = {}) {
    this.#options = options;
    this.namespace = new Namespace(options.config);
    this.#log = options.log ?? (() => {});
  }

  /** `Endpoint=sb://127.0.0.1:PORT;…;UseDevelopmentEmulator=true`, for the official client. */
  get connectionString(): string {
    return `Endpoint=sb://127.0.0.1:${this.port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;`;
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.adminPort}`;
  }

  async start(): Promise<this> {
    const host = this.#options.host ?? "127.0.0.1";
    const container = (rhea as any).create_container({
      id: "switchyard-servicebus-emulator",
      autoaccept: false,
      treat_modified_as_released: false,
    });
    this.#wire(container);
    const listener: NetServer = container.listen({ port: this.#options.port ?? 5673, host });
    await new Promise<void>((resolve, reject) => {
      listener.once("listening", () => resolve());
      listener.once("error", reject);
    });
    listener.on("error", (error) => this.#log(`listener error: ${error.message}`));
    this.#listener = listener;
    this.port = (listener.address() as AddressInfo).port;
    const admin = createServer((req, res) => void this.#adminRequest(req, res));
    await new Promise<void>((resolve, reject) => {
      admin.once("error", reject);
      admin.listen(this.#options.adminPort ?? this.port + 1, host, () => resolve());
    });
    this.#admin = admin;
    this.adminPort = (admin.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const connection of this.#connections) {
      try {
        connection.close();
        connection.socket?.destroy();
      } catch {}
    }
    this.#connections.clear();
    await new Promise<void>((resolve) =>
      this.#listener ? this.#listener.close(() => resolve()) : resolve(),
    );
    await new Promise<void>((resolve) => (this.#admin ? this.#admin.close(() => resolve()) : resolve()));
    this.#admin?.closeAllConnections();
    this.namespace.close();
  }

  // ---- AMQP ----

  #wire(container: any): void {
    container.on("connection_open", (context: any) => {
      const connection = context.connection;
      this.#connections.add(connection);
      connection.__replyLinks = new Map<string, any>();
    });
    const gone = (context: any) => {
      const connection = context.connection;
      this.#connections.delete(connection);
      for (const consumer of connection.__consumers ?? []) consumer.store.removeConsumer(consumer);
      connection.__consumers = [];
      for (const link of connection.__waitingLinks ?? []) this.#dropConsumer(link);
      connection.__waitingLinks = new Set();
    };
    container.on("disconnected", gone);
    container.on("connection_close", gone);
    container.on("error", (error: any) => this.#log(`amqp error: ${error?.message ?? error}`));
    container.on("connection_error", (context: any) =>
      this.#log(`connection error: ${context.connection?.error?.description ?? "?"}`),
    );
    // The client's receivers: our senders.
    container.on("sender_open", (context: any) =>
      this.#guard(context.sender, () => this.#senderOpen(context)),
    );
    // The client's senders: our receivers.
    container.on("receiver_open", (context: any) =>
      this.#guard(context.receiver, () => this.#receiverOpen(context)),
    );
    container.on("sender_close", (context: any) => this.#dropConsumer(context.sender));
    container.on("sender_error", (context: any) => this.#dropConsumer(context.sender));
    container.on("message", (context: any) => {
      try {
        this.#onMessage(context);
      } catch (error) {
        this.#reject(context.delivery, error);
      }
    });
    for (const outcome of ["accepted", "rejected", "released", "modified"]) {
      container.on(outcome, (context: any) => {
        try {
          this.#onOutcome(context, outcome);
        } catch (error) {
          this.#log(`settlement failed: ${(error as Error).message}`);
        }
      });
    }
    container.on("sendable", (context: any) => context.sender.__consumer?.store.pump());
    container.on("sender_draining", (context: any) => {
      const consumer = context.sender.__consumer as LinkConsumer | undefined;
      consumer?.store.pump();
      context.sender.set_drained(true);
    });
  }

  /** Runs a link-open handler; an error closes that link with the AMQP error, nothing else. */
  #guard(link: any, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      const e = asEmulatorError(error);
      this.#log(`link ${link.name} refused: ${e.message}`);
      link.close({ condition: e.condition, description: e.message });
    }
  }

  #senderOpen(context: any): void {
    const link = context.sender;
    const address: string = link.source?.address ?? "";
    const connection = context.connection;
    const target: string | undefined = link.remote.attach?.target?.address;
    link.set_source({ address });
    if (link.remote.attach?.target) link.set_target(link.remote.attach.target);
    link.local.attach.snd_settle_mode = link.remote.attach?.snd_settle_mode ?? 0;
    link.local.attach.rcv_settle_mode = link.remote.attach?.rcv_settle_mode ?? 0;
    const path = entityPath(address);
    if (path === "$cbs" || path.toLowerCase().endsWith("$management")) {
      connection.__replyLinks.set(target ?? link.name, link);
      connection.__replyLinks.set(link.name, link);
      return;
    }
    const filter = link.remote.attach?.source?.filter;
    const sessionful = !!filter && Object.hasOwn(filter, SESSION_FILTER);
    const resolved = this.namespace.resolve(address);
    if (resolved.kind === "topic") {
      throw new EmulatorError("amqp:not-allowed", `cannot receive from topic '${path}'; use a subscription`);
    }
    const store = resolved.store;
    if (sessionful !== store.options.requiresSession) {
      throw new EmulatorError(
        "amqp:not-allowed",
        sessionful
          ? `'${path}' does not require sessions: a session receiver cannot be created on it`
          : `'${path}' requires sessions: receive with a session receiver (acceptSession / acceptNextSession)`,
      );
    }
    const peekLock = link.local.attach.snd_settle_mode !== 1;
    // rhea takes a delivery off `link.credit` only when it writes the transfer, later in its I/O
    // cycle, so `link.credit` alone lets one pump send (and lock) far more than the client granted:
    // those wait unsent in rhea's buffer, locked to this link, until the client's next credit.
    // The credit limit is `link.credit + link.delivery_count` (constant between flows; transfers and
    // drains move one into the other), so what is left is that minus every delivery handed to rhea.
    let handed = 0;
    const consumer: LinkConsumer = {
      link,
      store,
      peekLock,
      credit: () =>
        link.is_open() && link.sendable() ? Math.max(0, link.credit + link.delivery_count - handed) : 0,
      take: (entry, tag) => {
        handed++;
        const delivery = link.send(this.#outgoing(entry, peekLock), tag);
        if (peekLock) {
          delivery.__entry = entry;
          delivery.__token = entry.lock?.token;
          delivery.__store = store;
        } else {
          delivery.settled = true;
        }
      },
    };
    const register = () => {
      link.__consumer = consumer;
      connection.__consumers ??= [];
      connection.__consumers.push(consumer);
      store.addConsumer(consumer);
    };
    if (!sessionful) {
      register();
      return;
    }
    const requested = unwrap(filter[SESSION_FILTER]);
    const lost = () =>
      link.close({
        condition: "com.microsoft:session-lock-lost",
        description: `the lock of session '${consumer.sessionId}' on '${path}' expired`,
      });
    const attachWith = (session: SessionLock) => {
      link.set_source({ address, filter: { [SESSION_FILTER]: session.id } });
      link.local.attach.properties = {
        ...(link.local.attach.properties ?? {}),
        "com.microsoft:locked-until-utc": types.wrap_long(ticks(session.until)),
      };
    };
    const session = store.lockSession(
      requested === undefined || requested === null ? undefined : String(requested),
      consumer,
      lost,
    );
    if (session) {
      attachWith(session);
      register();
      return;
    }
    // No session available now: hold the attach (rhea already queued our answer; take it back) until
    // one is, or until the client's server-side timeout, then answer with a timeout error.
    link.state.local_open = false;
    link.state.open_requests = Math.max(0, link.state.open_requests - 1);
    const timeoutMs = Number(unwrap(link.remote.attach?.properties?.["com.microsoft:timeout"]) ?? 60_000);
    const timer = setTimeout(
      () => {
        store.cancelWait(consumer);
        link.__waiting = undefined;
        link.open();
        link.close({
          condition: "com.microsoft:timeout",
          description: `no unlocked session with messages became available on '${path}' within ${timeoutMs} ms`,
        });
      },
      Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 60_000,
    );
    timer.unref();
    link.__waiting = { store, consumer, timer };
    connection.__waitingLinks ??= new Set();
    connection.__waitingLinks.add(link);
    store.waitForSession(
      consumer,
      (granted) => {
        clearTimeout(timer);
        link.__waiting = undefined;
        attachWith(granted);
        link.open();
        register();
      },
      lost,
    );
  }

  #dropConsumer(link: any): void {
    const waiting = link.__waiting;
    if (waiting) {
      link.__waiting = undefined;
      link.connection?.__waitingLinks?.delete(link);
      clearTimeout(waiting.timer);
      waiting.store.cancelWait(waiting.consumer);
      // The client gave up waiting (e.g. aborted): answer its detach, attaching first as AMQP needs.
      try {
        if (link.connection?.is_open?.()) {
          link.open();
          link.close();
        }
      } catch {}
    }
    const consumer = link.__consumer as LinkConsumer | undefined;
    if (!consumer) return;
    link.__consumer = undefined;
    consumer.store.removeConsumer(consumer);
    const list: LinkConsumer[] = link.connection.__consumers ?? [];
    const index = list.indexOf(consumer);
    if (index !== -1) list.splice(index, 1);
  }

  #receiverOpen(context: any): void {
    const link = context.receiver;
    const address: string = link.remote.attach?.target?.address ?? "";
    link.set_target({ address });
    if (link.remote.attach?.source) link.set_source(link.remote.attach.source);
    const path = entityPath(address);
    if (path === "$cbs" || path.toLowerCase().endsWith("$management")) {
      link.__control = path;
      link.flow(100);
      return;
    }
    const resolved = this.namespace.resolve(address);
    if (!("target" in resolved) || !resolved.target) {
      throw new EmulatorError("amqp:not-allowed", `cannot send to '${path}'`);
    }
    link.__target = resolved.target;
    link.local.attach.max_message_size = resolved.target.maxMessageSizeBytes;
    link.flow(100);
  }

  #onMessage(context: any): void {
    const link = context.receiver;
    const delivery = context.delivery;
    if (link.credit < 50) link.flow(100 - link.credit);
    if (link.__control) {
      this.#control(context, link.__control);
      delivery.accept();
      return;
    }
    const target: SendTarget | undefined = link.__target;
    if (!target) throw new EmulatorError("amqp:not-found", "link has no entity");
    const raw: Buffer = context.format === BATCH_FORMAT ? context.message : undefined;
    const messages: Record<string, any>[] = [];
    if (context.format === BATCH_FORMAT) {
      if (raw.length > target.maxMessageSizeBytes) throw tooLarge(raw.length, target);
      const batch = amqpMessage.decode(raw);
      const body = batch.body;
      const parts: Buffer[] = body?.multiple ? body.content : body?.content ? [body.content] : [];
      for (const part of parts) messages.push(amqpMessage.decode(part));
    } else if (context.format !== undefined && context.format !== 0) {
      throw new EmulatorError("amqp:not-implemented", `message format ${context.format} is not supported`);
    } else {
      const size = amqpMessage.encode(context.message).length;
      if (size > target.maxMessageSizeBytes) throw tooLarge(size, target);
      messages.push(context.message);
    }
    for (const message of messages) this.#accept(target, message);
    delivery.accept();
  }

  /** Stores a sent message, honouring `x-opt-scheduled-enqueue-time`. */
  #accept(target: SendTarget, message: Record<string, any>): number {
    // Service Bus gives every message an id; the client's lock renewer keys on it.
    if (message.message_id === undefined || message.message_id === null)
      message.message_id = randomBytes(16).toString("hex");
    target.validate(message);
    const scheduledAt = message.message_annotations?.["x-opt-scheduled-enqueue-time"];
    const at = scheduledAt instanceof Date ? scheduledAt.getTime() : Number(scheduledAt ?? 0);
    if (at > Date.now()) return this.#schedule(target, message, at);
    target.accept(message);
    return target.sequence.next;
  }

  #schedule(target: SendTarget, message: Record<string, any>, at: number): number {
    const seq = ++target.sequence.next;
    const timer = setTimeout(
      () => {
        target.scheduled.delete(seq);
        if ("store" in target) (target as any).accept(message, seq);
        else target.accept(message);
      },
      Math.max(0, at - Date.now()),
    );
    timer.unref();
    target.scheduled.set(seq, timer);
    return seq;
  }

  #reject(delivery: any, error: unknown): void {
    const e = asEmulatorError(error);
    this.#log(`message refused: ${e.message}`);
    try {
      delivery.reject({ condition: e.condition, description: e.message });
    } catch {}
  }

  /** A settlement from a peek-lock receiver: apply it, then answer with a settled disposition. */
  #onOutcome(context: any, outcome: string): void {
    const delivery = context.delivery;
    if (delivery.__handled) return;
    const store: MessageStore | undefined = delivery.__store;
    if (!store) return;
    delivery.__handled = true;
    const token: string = delivery.__token;
    const state = delivery.remote_state ?? {};
    try {
      if (outcome === "accepted") store.complete(token);
      else if (outcome === "released") store.abandon(token);
      else if (outcome === "modified") {
        const properties = plain(state.message_annotations);
        if (state.undeliverable_here) store.defer(token, properties);
        else store.abandon(token, properties);
      } else if (outcome === "rejected") {
        const error = state.error ?? {};
        const info = plain(error.info) ?? {};
        const { DeadLetterReason, DeadLetterErrorDescription, ...properties } = info as Record<
          string,
          unknown
        >;
        store.deadLetter(
          token,
          DeadLetterReason === undefined ? undefined : String(DeadLetterReason),
          DeadLetterErrorDescription === undefined ? undefined : String(DeadLetterErrorDescription),
          properties,
        );
      }
      // A settled disposition without an error is what the client waits for. It echoes the
      // outcome, as the service does: a disposition without a state makes rhea log
      // "unrecognised outcome" on the client.
      const echo =
        outcome === "accepted"
          ? amqpMessage.accepted()
          : outcome === "released"
            ? amqpMessage.released()
            : outcome === "modified"
              ? amqpMessage.modified()
              : amqpMessage.rejected();
      delivery.update(true, echo.described());
    } catch (error) {
      const e = asEmulatorError(error);
      delivery.update(
        true,
        amqpMessage.rejected({ error: { condition: e.condition, description: e.message } }).described(),
      );
    }
    // The client (rcv-settle-mode second) settles on seeing our settlement and sends nothing more:
    // the delivery is done, so rhea may free its slot.
    delivery.remote_settled = true;
  }

  /** The message as the client sees it: with delivery count and the broker's annotations. */
  #outgoing(entry: Entry, peekLock: boolean): Record<string, any> {
    const annotations: Record<string, unknown> = {
      ...(entry.message.message_annotations ?? {}),
      "x-opt-sequence-number": types.wrap_long(entry.seq),
      "x-opt-enqueued-time": new Date(entry.enqueuedAt),
    };
    delete annotations["x-opt-scheduled-enqueue-time"];
    if (peekLock && entry.lock)
      annotations["x-opt-locked-until"] = new Date(entry.lock.shownUntil ?? entry.lock.until);
    if (entry.state === "deferred") annotations["x-opt-message-state"] = types.wrap_int(1);
    return { ...entry.message, delivery_count: entry.deliveryCount, message_annotations: annotations };
  }

  // ---- $cbs and $management ----

  #control(context: any, path: string): void {
    const request = context.message;
    const connection = context.connection;
    const replyTo: string | undefined = request.reply_to;
    const reply = (status: number, body: unknown, extra: Record<string, unknown> = {}) => {
      const link = (replyTo && connection.__replyLinks.get(replyTo)) ?? undefined;
      if (!link) {
        this.#log(`no reply link for ${replyTo ?? "(no reply_to)"} on ${path}`);
        return;
      }
      link.send({
        correlation_id: request.message_id,
        to: replyTo,
        application_properties: { "status-code": status, statusCode: status, ...extra },
        body,
      });
    };
    const operation = String(request.application_properties?.operation ?? "");
    try {
      if (path === "$cbs") {
        if (operation !== "put-token") {
          throw new EmulatorError(
            "amqp:not-implemented",
            `$cbs operation '${operation}' is not supported`,
            501,
          );
        }
        reply(202, undefined, { "status-description": "Accepted" });
        return;
      }
      const entity = path.replace(/\/\$management$/i, "");
      const [status, body] = this.#management(entity, operation, request.body ?? {});
      reply(status, body);
    } catch (error) {
      const e = asEmulatorError(error);
      reply(e.status, undefined, { "status-description": e.message, "error-condition": e.condition });
    }
  }

  #management(entity: string, operation: string, body: Record<string, any>): [number, unknown] {
    const resolved = this.namespace.resolve(entity);
    const store = resolved.kind === "topic" ? undefined : resolved.store;
    const needStore = (): MessageStore => {
      if (!store)
        throw new EmulatorError("amqp:not-allowed", `'${operation}' needs a queue or subscription`, 400);
      return store;
    };
    const needSubscription = (): Subscription => {
      if (resolved.kind !== "subscription")
        throw new EmulatorError("amqp:not-allowed", `'${operation}' needs a topic subscription`, 400);
      return resolved.subscription;
    };
    const tokens = (): string[] =>
      arrayOf(body["lock-tokens"]).map((t: unknown) => Buffer.from(t as Buffer).toString("hex"));
    switch (operation) {
      case "com.microsoft:peek-message": {
        const from = toNumber(body["from-sequence-number"]);
        const count = toNumber(body["message-count"]) || 1;
        const entries = needStore().peek(from, count);
        if (entries.length === 0) return [204, undefined];
        return [
          200,
          {
            messages: entries.map((entry) =>
              types.wrap_map({ message: amqpMessage.encode(this.#outgoing(entry, false)) }),
            ),
          },
        ];
      }
      case "com.microsoft:renew-lock": {
        const s = needStore();
        return [
          200,
          {
            expirations: types.wrap_array(
              tokens().map((t) => new Date(s.renewLock(t))),
              0x83,
            ),
          },
        ];
      }
      case "com.microsoft:schedule-message": {
        const target = "target" in resolved ? resolved.target : undefined;
        if (!target) throw new EmulatorError("amqp:not-allowed", `cannot schedule to '${entity}'`, 400);
        const seqs: unknown[] = [];
        for (const item of arrayOf(body.messages)) {
          const message = amqpMessage.decode(Buffer.from(item.message));
          if (item.message.length > target.maxMessageSizeBytes) throw tooLarge(item.message.length, target);
          const annotation = message.message_annotations?.["x-opt-scheduled-enqueue-time"];
          const at = annotation instanceof Date ? annotation.getTime() : Number(annotation ?? 0);
          if (message.message_id === undefined || message.message_id === null)
            message.message_id = randomBytes(16).toString("hex");
          target.validate(message);
          const seq = at > Date.now() ? this.#schedule(target, message, at) : this.#accept(target, message);
          seqs.push(seq);
        }
        return [200, { "sequence-numbers": types.wrap_array(seqs, 0x81) }];
      }
      case "com.microsoft:cancel-scheduled-message": {
        const target = "target" in resolved ? resolved.target : undefined;
        for (const raw of arrayOf(body["sequence-numbers"])) {
          const seq = toNumber(raw);
          const timer = target?.scheduled.get(seq);
          if (timer) {
            clearTimeout(timer);
            target!.scheduled.delete(seq);
          }
        }
        return [200, undefined];
      }
      case "com.microsoft:update-disposition": {
        const s = needStore();
        const status = String(body["disposition-status"]);
        const properties = plain(body["properties-to-modify"]);
        for (const token of tokens()) {
          if (status === "completed") s.complete(token);
          else if (status === "abandoned") s.abandon(token, properties);
          else if (status === "defered") s.defer(token, properties);
          else if (status === "suspended")
            s.deadLetter(token, body["deadletter-reason"], body["deadletter-description"], properties);
          else throw new EmulatorError("amqp:invalid-field", `unknown disposition-status '${status}'`, 400);
        }
        return [200, undefined];
      }
      case "com.microsoft:receive-by-sequence-number": {
        const s = needStore();
        const peekLock = toNumber(body["receiver-settle-mode"]) !== 0;
        const out: unknown[] = [];
        for (const raw of arrayOf(body["sequence-numbers"])) {
          const seq = toNumber(raw);
          const entry = s.entries.get(seq);
          if (entry?.state !== "deferred") {
            throw new EmulatorError(
              "com.microsoft:message-not-found",
              `no deferred message with sequence number ${seq} in '${s.path}'`,
              404,
            );
          }
          const token = randomBytes(16);
          if (peekLock) s.lock(entry, token.toString("hex"), undefined);
          else s.entries.delete(seq);
          out.push(
            types.wrap_map({
              message: amqpMessage.encode(this.#outgoing(entry, peekLock)),
              "lock-token": types.wrap_uuid(token),
            }),
          );
        }
        return [200, { messages: out }];
      }
      case "com.microsoft:renew-session-lock": {
        const until = needStore().renewSessionLock(String(body["session-id"]));
        return [200, { expiration: new Date(until) }];
      }
      case "com.microsoft:get-session-state": {
        const s = needStore();
        const id = String(body["session-id"]);
        s.session(id);
        return [200, { "session-state": s.sessionStates.get(id) ?? null }];
      }
      case "com.microsoft:set-session-state": {
        const s = needStore();
        const id = String(body["session-id"]);
        s.session(id);
        const state = body["session-state"];
        if (state === undefined || state === null) s.sessionStates.delete(id);
        else s.sessionStates.set(id, Buffer.from(state));
        return [200, undefined];
      }
      case "com.microsoft:get-message-sessions": {
        const skip = toNumber(body.skip);
        const top = toNumber(body.top) || 100;
        const ids = needStore()
          .sessionIds()
          .slice(skip, skip + top);
        if (ids.length === 0) return [204, undefined];
        return [200, { skip: types.wrap_int(skip), "sessions-ids": types.wrap_array(ids, 0xa1) }];
      }
      case "com.microsoft:add-rule": {
        needSubscription().addRule(ruleFromRequest(body));
        return [200, undefined];
      }
      case "com.microsoft:remove-rule": {
        needSubscription().removeRule(String(body["rule-name"] ?? ""));
        return [200, undefined];
      }
      case "com.microsoft:enumerate-rules": {
        const skip = toNumber(body.skip);
        const top = toNumber(body.top) || Number.MAX_SAFE_INTEGER;
        const rules = [...needSubscription().rules.values()].slice(skip, skip + top);
        if (rules.length === 0) return [204, undefined];
        return [
          200,
          {
            rules: types.wrap_list(
              rules.map((rule) => types.wrap_map({ "rule-description": ruleDescription(rule) })),
            ),
          },
        ];
      }
      default:
        throw new EmulatorError(
          "amqp:not-implemented",
          `the $management operation '${operation}' is not supported by the Switchyard Service Bus emulator`,
          501,
        );
    }
  }

  // ---- HTTP admin ----

  /**
   * `PUT|GET|DELETE /queues/{name}`, `/topics/{name}`, `/topics/{topic}/subscriptions/{name}`; PUT
   * takes the entity options as JSON. GET answers with counts: `{ name, activeMessageCount,
   * deadLetterMessageCount, scheduledMessageCount }`.
   */
  async #adminRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const text = Buffer.concat(chunks).toString("utf8");
      const options = text ? JSON.parse(text) : {};
      const parts = (req.url ?? "/")
        .split("?")[0]!
        .split("/")
        .filter(Boolean)
        .map((p) => decodeURIComponent(p));
      const method = req.method ?? "GET";
      const ns = this.namespace;
      if (parts[0] === "queues" && parts.length === 2) {
        const name = parts[1]!;
        if (method === "PUT") {
          const { created } = ns.createQueue(name, options);
          return send(created ? 201 : 200, { name, created });
        }
        if (method === "DELETE") return send(ns.deleteQueue(name) ? 200 : 404, { name });
        const queue = ns.queues.get(name.toLowerCase());
        if (!queue) return send(404, { error: `queue '${name}' not found` });
        return send(200, {
          name: queue.path,
          activeMessageCount: queue.store.activeCount,
          deadLetterMessageCount: queue.deadLetter.entries.size,
          scheduledMessageCount: queue.scheduled.size,
          ...queue.options,
        });
      }
      if (parts[0] === "topics" && parts.length === 2) {
        const name = parts[1]!;
        if (method === "PUT") {
          const { created } = ns.createTopic(name, options);
          return send(created ? 201 : 200, { name, created });
        }
        if (method === "DELETE") return send(ns.deleteTopic(name) ? 200 : 404, { name });
        const topic = ns.topics.get(name.toLowerCase());
        if (!topic) return send(404, { error: `topic '${name}' not found` });
        return send(200, {
          name: topic.path,
          subscriptions: [...topic.subscriptions.values()].map((s) => s.name),
          scheduledMessageCount: topic.scheduled.size,
        });
      }
      if (parts[0] === "topics" && parts[2] === "subscriptions" && parts.length === 4) {
        const [, topicName, , name] = parts as [string, string, string, string];
        if (method === "PUT") {
          const { created } = ns.createSubscription(topicName, name, options);
          return send(created ? 201 : 200, { name, created });
        }
        if (method === "DELETE") return send(ns.deleteSubscription(topicName, name) ? 200 : 404, { name });
        const subscription = ns.topics.get(topicName.toLowerCase())?.subscriptions.get(name.toLowerCase());
        if (!subscription) return send(404, { error: `subscription '${topicName}/${name}' not found` });
        return send(200, {
          name: subscription.name,
          activeMessageCount: subscription.store.activeCount,
          deadLetterMessageCount: subscription.deadLetter.entries.size,
          ...subscription.options,
          rules: [...subscription.rules.values()].map(({ name, filter }) => ({ name, filter })),
        });
      }
      return send(404, { error: `no admin route ${method} ${req.url}` });
    } catch (error) {
      const e = asEmulatorError(error);
      send(e.status >= 400 && e.status < 600 ? e.status : 400, { error: e.message, condition: e.condition });
    }
  }
}

/** The rule of an `add-rule` request: `rule-name` and a `rule-description` with one filter. */
function ruleFromRequest(body: Record<string, any>): RuleConfig {
  const name = String(body["rule-name"] ?? "");
  const description: Record<string, any> = body["rule-description"] ?? {};
  if (description["sql-rule-action"] !== undefined && description["sql-rule-action"] !== null) {
    throw new EmulatorError(
      "amqp:not-implemented",
      `rule actions (sql-rule-action of rule '${name}') are not supported by the Switchyard Service Bus emulator`,
      501,
    );
  }
  const sql = description["sql-filter"];
  if (sql) return { name, filter: { sql: String(sql.expression ?? "") } };
  const c = description["correlation-filter"];
  if (c) {
    const filter: CorrelationFilter = {};
    const fields: Array<[keyof CorrelationFilter, string]> = [
      ["correlationId", "correlation-id"],
      ["messageId", "message-id"],
      ["to", "to"],
      ["replyTo", "reply-to"],
      ["subject", "label"],
      ["sessionId", "session-id"],
      ["replyToSessionId", "reply-to-session-id"],
      ["contentType", "content-type"],
    ];
    for (const [field, wire] of fields)
      if (c[wire] !== undefined && c[wire] !== null)
        (filter as Record<string, unknown>)[field] = String(c[wire]);
    if (c.properties && typeof c.properties === "object") filter.applicationProperties = c.properties;
    return { name, filter: { correlation: filter } };
  }
  throw new EmulatorError(
    "amqp:invalid-field",
    `rule '${name}' has no sql-filter or correlation-filter`,
    400,
  );
}

function asEmulatorError(error: unknown): EmulatorError {
  if (error instanceof EmulatorError) return error;
  return new EmulatorError("amqp:internal-error", (error as Error)?.message ?? String(error), 500);
}

function tooLarge(size: number, target: SendTarget): EmulatorError {
  return new EmulatorError(
    "amqp:link:message-size-exceeded",
    `The received message (${size} bytes) exceeds the limit (${target.maxMessageSizeBytes} bytes) of '${target.path}'.`,
    413,
  );
}

function arrayOf(value: unknown): any[] {
  if (Array.isArray(value)) return value;
  if (value === undefined || value === null) return [];
  return [value];
}

function toNumber(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (Buffer.isBuffer(value)) return Number(value.readBigInt64BE(0));
  if (value && typeof value === "object" && "value" in value) return toNumber((value as any).value);
  return Number(value ?? 0);
}

/** A described or wrapped AMQP value → its plain value. */
function unwrap(value: unknown): unknown {
  if (value && typeof value === "object" && !Buffer.isBuffer(value) && "value" in value)
    return unwrap((value as { value: unknown }).value);
  return value;
}

/** Milliseconds since the Unix epoch → .NET ticks, as the 8 big-endian bytes the client reads. */
function ticks(ms: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigInt64BE(BigInt(Math.round(ms)) * 10000n + EPOCH_TICKS);
  return out;
}

function plain(value: unknown): Record<string, unknown> | undefined {
  if (!value || typeof value !== "object") return undefined;
  return { ...(value as Record<string, unknown>) };
}

export { reorderGuid };
