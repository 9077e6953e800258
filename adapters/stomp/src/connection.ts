// The one seam around stompit (unreleased since 2019): connect, send with a receipt, subscribe,
// ack, disconnect, and reconnection with backoff. Nothing else in the adapter imports stompit, so a
// move to @stomp/stompjs replaces this file only.
import { SwitchyardError } from "@switchyard/core";
import stompit from "stompit";
import type { ResolvedOptions } from "./options.js";

type Client = stompit.Client;

/** A received MESSAGE frame, body read in full. */
export interface Frame {
  headers: Record<string, string>;
  body: Buffer;
  /** Settles it on the connection it came from (fails if that connection is gone). */
  ack(): Promise<void>;
}

interface SubscriptionSpec {
  destination: string;
  headers: Record<string, string>;
  onFrame(frame: Frame): void;
}

/**
 * stompit 1.0.0 reads an ERROR frame's text body and then calls `destroy` on the frame instead of
 * the client, so the error escapes as an uncaught exception and the client hangs until a timeout.
 * Every command-handler table the client installs gets this ERROR handler instead.
 */
function patchErrorFrames(client: Client): void {
  type Handler = (frame: ErrorFrame) => void;
  interface ErrorFrame extends NodeJS.ReadableStream {
    headers: Record<string, string>;
  }
  const socket = client as unknown as {
    setCommandHandlers(handlers: Record<string, Handler>): void;
    createApplicationError(message: string): Error & { longMessage?: string };
    destroy(error?: Error): void;
  };
  const onError: Handler = (frame) => {
    const error = socket.createApplicationError(frame.headers.message ?? "server sent ERROR frame");
    const chunks: Buffer[] = [];
    frame.on("error", () => {});
    frame.on("data", (chunk: Buffer) => {
      if (chunks.length < 16) chunks.push(chunk);
    });
    frame.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8").slice(0, 4096).trim();
      if (text) error.longMessage = text;
      socket.destroy(error);
    });
  };
  const install = socket.setCommandHandlers.bind(client);
  socket.setCommandHandlers = (handlers) => install({ ...handlers, ERROR: onError });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One STOMP connection that comes back by itself: when the socket drops it reconnects with
 * backoff and re-sends its subscriptions. Sends made while it is down wait (bounded by
 * `publishTimeoutMs`) for the next connection.
 */
export class StompConnection {
  #client: Client | undefined;
  #generation = 0;
  #connecting: Promise<Client> | undefined;
  #closed = false;
  readonly #subscriptions = new Map<string, SubscriptionSpec>();
  #nextId = 1;
  /** Last fatal error (an ERROR frame), reported to the waiters of the next operation. */
  #lastError: Error | undefined;

  constructor(
    readonly options: ResolvedOptions,
    readonly label: string,
    /** Errors it recovers from by itself: a lost connection, a reconnect attempt that failed. */
    readonly onError: (error: SwitchyardError) => void = () => {},
  ) {}

  /** Connects now (once); rejects with a typed error if the broker refuses or is unreachable. */
  async connect(): Promise<void> {
    await this.#ensure(false);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #open(): Promise<Client> {
    const { options } = this;
    return new Promise<Client>((resolve, reject) => {
      const connectHeaders: Record<string, string> = {
        host: options.vhost,
        "heart-beat": `${options.heartbeatMs},${options.heartbeatMs}`,
      };
      if (options.login !== undefined) connectHeaders.login = options.login;
      if (options.passcode !== undefined) connectHeaders.passcode = options.passcode;
      const connectOptions = {
        host: options.host,
        port: options.port,
        connectHeaders,
        timeout: options.connectTimeoutMs,
        // stompit's defaults (64 headers, 1 KiB lines) are below what the envelope and fault
        // headers need.
        maxHeaders: 1000,
        maxLineLength: 256 * 1024,
        ...(options.ssl ? { ssl: true, ...options.tls } : {}),
      };
      let settled = false;
      const client: Client = stompit.connect(connectOptions as stompit.connect.ConnectOptions, (error) => {
        if (settled) return;
        settled = true;
        if (error) reject(this.#wrap(error, "connect"));
        else resolve(client);
      });
      // Errors are reported through the callback above and #attach; none may go uncaught.
      client.on("error", () => {});
      // Every send in flight listens for the connection's error until its receipt arrives.
      client.setMaxListeners(0);
      patchErrorFrames(client);
    });
  }

  #wrap(error: unknown, what: string, destination?: string): SwitchyardError {
    if (error instanceof SwitchyardError) return error;
    const text = error instanceof Error ? error.message : String(error);
    const long = (error as { longMessage?: string } | undefined)?.longMessage;
    // Broker texts name destinations, never our credentials; the URL is shown redacted.
    const detail = long ? `${text}: ${long.trim().split("\n")[0]}` : text;
    return new SwitchyardError(
      "TRANSPORT_ERROR",
      `STOMP ${what}${destination ? ` on ${destination}` : ""} failed at ${this.options.display} (${this.label}): ${detail}`,
      { cause: error, details: destination ? { destination } : {} },
    );
  }

  /** The live client, connecting (with backoff when `retry`) if needed. */
  #ensure(retry: boolean, deadline = Date.now() + this.options.publishTimeoutMs): Promise<Client> {
    if (this.#closed) return Promise.reject(new SwitchyardError("CLOSED", "STOMP transport is closed"));
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= (async () => {
      let delay = this.options.reconnectInitialDelayMs;
      for (;;) {
        try {
          const client = await this.#open();
          if (this.#closed) {
            client.destroy(undefined as unknown as Error);
            throw new SwitchyardError("CLOSED", "STOMP transport is closed");
          }
          this.#attach(client);
          return client;
        } catch (error) {
          if (!retry || this.#closed || Date.now() + delay > deadline) throw this.#wrap(error, "connect");
          this.onError(this.#wrap(error, "connect"));
          await sleep(delay);
          delay = Math.min(delay * 2, this.options.reconnectMaxDelayMs);
        }
      }
    })().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  #attach(client: Client): void {
    this.#client = client;
    const generation = ++this.#generation;
    client.on("error", (error: Error) => {
      if (this.#generation !== generation || this.#client !== client) return;
      this.#client = undefined;
      this.#lastError = error;
      this.onError(this.#wrap(error, "connection"));
      if (!this.#closed && this.#subscriptions.size > 0) void this.#resubscribe();
    });
    for (const [id, spec] of this.#subscriptions) this.#sendSubscribe(client, id, spec, undefined);
  }

  async #resubscribe(): Promise<void> {
    try {
      await this.#ensure(true, Number.POSITIVE_INFINITY);
    } catch {
      // closed meanwhile
    }
  }

  #sendSubscribe(
    client: Client,
    id: string,
    spec: SubscriptionSpec,
    onReceipt: (() => void) | undefined,
  ): void {
    client.setImplicitSubscription(id as unknown as number, "client-individual", (error, message) => {
      if (error || !message) return;
      const chunks: Buffer[] = [];
      // A frame cut off by a lost connection is redelivered by the broker: drop it quietly.
      message.on("error", () => {});
      message.on("data", (chunk: Buffer) => chunks.push(chunk));
      message.on("end", () => {
        const headers = { ...(message as unknown as { headers: Record<string, string> }).headers };
        spec.onFrame({
          headers,
          body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
          ack: () => this.#ack(client, message),
        });
      });
    });
    const frame = client.sendFrame(
      "SUBSCRIBE",
      { ...spec.headers, destination: spec.destination, id, ack: "client-individual" },
      onReceipt ? ({ onReceipt } as stompit.Client.SendOptions) : undefined,
    );
    frame.end();
  }

  #ack(client: Client, message: stompit.Client.Message): Promise<void> {
    if (client !== this.#client) {
      return Promise.reject(
        new SwitchyardError(
          "TRANSPORT_ERROR",
          "ack after the connection was lost: the broker will redeliver",
        ),
      );
    }
    // The ack's write callback never fires when the socket dies under it, so the connection's
    // error settles it too: a settlement that never settles would hang the consumer's close.
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (error?: Error | null) => {
        if (done) return;
        done = true;
        client.removeListener("error", finish);
        client.removeListener("end", ended);
        if (error) reject(this.#wrap(error, "ack"));
        else resolve();
      };
      const ended = () => finish(new Error("connection ended before the ack was written"));
      client.once("error", finish);
      client.once("end", ended);
      client.ack(message, undefined, undefined, finish);
    });
  }

  /** SENDs one frame and resolves on the broker's RECEIPT; waits out a reconnection (bounded). */
  async send(headers: Record<string, string>, body: Uint8Array): Promise<void> {
    const deadline = Date.now() + this.options.publishTimeoutMs;
    for (;;) {
      const client = await this.#ensure(true, deadline);
      try {
        await this.#sendOnce(client, headers, body);
        return;
      } catch (error) {
        // The connection dropped before the receipt: send again on the next one (at least once).
        if (this.#closed || client === this.#client || Date.now() > deadline) {
          throw this.#wrap(error, "send", headers.destination);
        }
      }
    }
  }

  #sendOnce(client: Client, headers: Record<string, string>, body: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      let done = false;
      const onError = (error: Error) => {
        if (done) return;
        done = true;
        reject(error);
      };
      client.once("error", onError);
      const frame = client.send({ ...headers, "content-length": body.byteLength }, {
        onReceipt: () => {
          client.removeListener("error", onError);
          if (done) return;
          done = true;
          resolve();
        },
      } as stompit.Client.SendOptions);
      frame.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    });
  }

  /**
   * SUBSCRIBEs and resolves once the broker confirmed it (a RECEIPT), so messages published after
   * this resolves reach the subscription. The subscription is re-sent after every reconnection.
   */
  async subscribe(spec: SubscriptionSpec): Promise<{ unsubscribe(): Promise<void> }> {
    const client = await this.#ensure(false);
    const id = `sy-${this.#nextId++}`;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(this.#wrap(error, "subscribe", spec.destination));
      client.once("error", onError);
      this.#sendSubscribe(client, id, spec, () => {
        client.removeListener("error", onError);
        resolve();
      });
    });
    this.#subscriptions.set(id, spec);
    return {
      unsubscribe: async () => {
        this.#subscriptions.delete(id);
        const current = this.#client;
        if (!current) return;
        await new Promise<void>((resolve) => {
          // A plain UNSUBSCRIBE (no durable headers) only cancels the consumer; the queue stays.
          current
            .sendFrame("UNSUBSCRIBE", { id }, { onReceipt: resolve } as stompit.Client.SendOptions)
            .end();
          current.once("error", () => resolve());
        });
      },
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        client.destroy(undefined as unknown as Error);
        resolve();
      }, 2000);
      client.disconnect(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  get lastError(): Error | undefined {
    return this.#lastError;
  }
}
