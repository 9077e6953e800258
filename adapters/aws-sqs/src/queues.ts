import { createHash, randomUUID } from "node:crypto";
import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueuesCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  SetQueueAttributesCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { SwitchyardError, type WireMessage } from "@switchyard/core";
import { type EncodedMessage, encodeMessage } from "./codec.js";
import { awsError, type ResolvedAwsOptions } from "./config.js";
import { isFifoName } from "./names.js";

/** Most entries in one SQS batch call. */
export const BATCH = 10;
/** Longest visibility timeout SQS accepts (12 h). */
export const MAX_VISIBILITY_SECONDS = 43_200;

const BACKLOG_ATTRIBUTES = [
  "ApproximateNumberOfMessages",
  "ApproximateNumberOfMessagesNotVisible",
  "ApproximateNumberOfMessagesDelayed",
] as const;

const FIFO_ID = /^[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]{1,128}$/;

/** A FIFO id must be 1–128 ASCII letters, digits or punctuation: other values are hashed. */
function fifoId(value: string): string {
  return FIFO_ID.test(value) ? value : createHash("sha256").update(value).digest("hex");
}

/**
 * FIFO mapping (SQS and SNS): the key is the message group (`default` without a key), the envelope
 * id the deduplication id; either is replaced by its SHA-256 hex when SQS would refuse it.
 */
export function fifoIds(
  message: WireMessage,
  deduplicateById = true,
): { MessageGroupId: string; MessageDeduplicationId: string } {
  return {
    MessageGroupId: fifoId(message.key ?? "default"),
    MessageDeduplicationId: deduplicateById ? fifoId(message.id) : randomUUID(),
  };
}

/** What a batch call (SendMessageBatch, PublishBatch) answers about the entries it refused. */
export interface BatchFailure {
  Id?: string | undefined;
  SenderFault?: boolean | undefined;
  Code?: string | undefined;
  Message?: string | undefined;
}

/**
 * Sends `messages` in batches of at most 10 entries and `maxBytes`, through `call` (one AWS batch
 * request). Entries refused for a server-side reason are retried once; the rest are reported by id
 * in one TRANSPORT_ERROR. Ordered (FIFO) batches go one after another so per-group order holds.
 * Shared by SQS (SendMessageBatch) and SNS (PublishBatch).
 */
export async function sendInBatches<Entry extends { Id?: string | undefined }>(options: {
  messages: WireMessage[];
  encoded: EncodedMessage[];
  entry: (message: WireMessage, encoded: EncodedMessage, id: string) => Entry;
  call: (batch: Entry[]) => Promise<{ Failed?: BatchFailure[] | undefined }>;
  maxBytes: number;
  ordered: boolean;
  describe: string;
}): Promise<void> {
  const { messages, encoded } = options;
  const batches: Entry[][] = [];
  let current: Entry[] = [];
  let bytes = 0;
  messages.forEach((message, i) => {
    const size = encoded[i]!.size;
    if (current.length === BATCH || (current.length > 0 && bytes + size > options.maxBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(options.entry(message, encoded[i]!, String(i)));
    bytes += size;
  });
  if (current.length > 0) batches.push(current);
  const failed: string[] = [];
  const run = async (batch: Entry[]) => {
    let pending = batch;
    for (let attempt = 1; pending.length > 0; attempt++) {
      const out = await options.call(pending);
      const retry = new Set<string>();
      for (const f of out.Failed ?? []) {
        if (!f.SenderFault && attempt < 2) retry.add(f.Id!);
        else failed.push(`${messages[Number(f.Id)]?.id} (${f.Code}: ${f.Message ?? ""})`);
      }
      pending = pending.filter((e) => retry.has(e.Id!));
    }
  };
  if (options.ordered) for (const batch of batches) await run(batch);
  else await Promise.all(batches.map(run));
  if (failed.length > 0) {
    throw new SwitchyardError(
      "TRANSPORT_ERROR",
      `${options.describe}: ${failed.length} message(s) refused: ${failed.join("; ")}`,
      { details: { failed } },
    );
  }
}

/**
 * Whether SQS itself refused a call or a batch entry (an invalid receipt handle, a missing queue,
 * denied access): trying again cannot help. A lost connection, a timeout, a 5xx or throttling can.
 */
export function isRefusal(error: unknown): boolean {
  const details = error instanceof SwitchyardError ? error.details : undefined;
  if (details?.refused === true) return true;
  const status = details?.httpStatusCode;
  if (typeof status !== "number") return false;
  return status < 500 && status !== 429 && !/Throttl/i.test(String(details?.awsError));
}

/**
 * Whether SQS refused a settlement (a delete, a visibility change) because an earlier try of it got
 * through, its answer lost: the call had been tried before (by the consumer, `triedBefore`, or by the
 * SDK within the call) and SQS no longer knows the receipt handle (ElasticMQ refuses a second delete
 * of a deleted message; AWS and moto accept it) or the message is no longer in flight.
 */
export function settledBefore(error: unknown, triedBefore: boolean): boolean {
  const details = error instanceof SwitchyardError ? error.details : undefined;
  if (!details || !(triedBefore || Number(details.attempts) > 1)) return false;
  return details.awsError === "ReceiptHandleIsInvalid" || details.awsError === "MessageNotInflight";
}

/**
 * The SQS operations both AWS adapters share: queue URLs (created on first use, idempotently),
 * batched sends with per-message errors, batched deletes and visibility changes.
 */
export class SqsQueues {
  readonly #urls = new Map<string, Promise<string>>();
  readonly #arns = new Map<string, Promise<string>>();

  constructor(
    readonly client: SQSClient,
    readonly options: ResolvedAwsOptions,
  ) {}

  /** Creates the queue if it does not exist (an existing one with other attributes is kept). */
  url(sqsName: string): Promise<string> {
    let url = this.#urls.get(sqsName);
    if (!url) {
      url = this.#create(sqsName);
      this.#urls.set(sqsName, url);
      url.catch(() => this.#urls.delete(sqsName));
    }
    return url;
  }

  async #create(sqsName: string): Promise<string> {
    const attributes: Record<string, string> = {};
    if (isFifoName(sqsName)) attributes.FifoQueue = "true";
    try {
      const out = await this.client.send(
        new CreateQueueCommand({ QueueName: sqsName, Attributes: attributes }),
      );
      if (!out.QueueUrl) throw new Error("CreateQueue returned no QueueUrl");
      return out.QueueUrl;
    } catch (error) {
      const name = (error as { name?: string }).name ?? "";
      if (/QueueAlreadyExists|QueueNameExists/.test(name)) {
        try {
          const out = await this.client.send(new GetQueueUrlCommand({ QueueName: sqsName }));
          return out.QueueUrl!;
        } catch (inner) {
          throw awsError("GetQueueUrl", inner);
        }
      }
      throw awsError(`CreateQueue ${sqsName}`, error);
    }
  }

  arn(sqsName: string): Promise<string> {
    let arn = this.#arns.get(sqsName);
    if (!arn) {
      arn = (async () => {
        const url = await this.url(sqsName);
        try {
          const out = await this.client.send(
            new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }),
          );
          const value = out.Attributes?.QueueArn;
          if (!value) throw new Error("no QueueArn");
          return value;
        } catch (error) {
          throw awsError("GetQueueAttributes", error);
        }
      })();
      this.#arns.set(sqsName, arn);
      arn.catch(() => this.#arns.delete(sqsName));
    }
    return arn;
  }

  /**
   * Messages in the queue and not deleted yet: `ApproximateNumberOfMessages` (waiting),
   * `…NotVisible` (received and not settled, or waiting out a nack's delay) and `…Delayed`.
   * `undefined` when the queue does not exist (it is not created). Approximate on AWS.
   */
  async backlog(sqsName: string): Promise<number | undefined> {
    try {
      let url = this.#urls.get(sqsName);
      if (!url) {
        const out = await this.client.send(new GetQueueUrlCommand({ QueueName: sqsName }));
        url = Promise.resolve(out.QueueUrl!);
        this.#urls.set(sqsName, url);
      }
      const out = await this.client.send(
        new GetQueueAttributesCommand({ QueueUrl: await url, AttributeNames: [...BACKLOG_ATTRIBUTES] }),
      );
      return BACKLOG_ATTRIBUTES.reduce((sum, name) => sum + Number(out.Attributes?.[name] ?? 0), 0);
    } catch (error) {
      if ((error as { name?: string }).name === "QueueDoesNotExist") return undefined;
      throw awsError("GetQueueAttributes", error);
    }
  }

  async setAttributes(sqsName: string, attributes: Record<string, string>): Promise<void> {
    const url = await this.url(sqsName);
    try {
      await this.client.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: attributes }));
    } catch (error) {
      throw awsError("SetQueueAttributes", error);
    }
  }

  /** Deletes a queue and forgets its URL; a queue that does not exist is not an error. */
  async delete(sqsName: string): Promise<void> {
    let url: string;
    try {
      url =
        (await this.#urls.get(sqsName)) ??
        (await this.client.send(new GetQueueUrlCommand({ QueueName: sqsName }))).QueueUrl!;
    } catch (error) {
      if (/NonExistentQueue|QueueDoesNotExist/.test((error as { name?: string }).name ?? "")) return;
      throw awsError("GetQueueUrl", error);
    }
    this.#urls.delete(sqsName);
    this.#arns.delete(sqsName);
    try {
      await this.client.send(new DeleteQueueCommand({ QueueUrl: url }));
    } catch (error) {
      if (/NonExistentQueue|QueueDoesNotExist/.test((error as { name?: string }).name ?? "")) return;
      throw awsError(`DeleteQueue ${sqsName}`, error);
    }
  }

  /** SQS queue names starting with `prefix` (all pages). */
  async list(prefix: string): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    try {
      do {
        const out = await this.client.send(
          new ListQueuesCommand({ QueueNamePrefix: prefix, MaxResults: 1000, NextToken: token }),
        );
        for (const url of out.QueueUrls ?? []) {
          const name = decodeURIComponent(url.slice(url.lastIndexOf("/") + 1));
          if (name.startsWith(prefix)) {
            names.push(name);
            this.#urls.set(name, Promise.resolve(url));
          }
        }
        token = out.NextToken;
      } while (token);
    } catch (error) {
      throw awsError("ListQueues", error);
    }
    return names;
  }

  /** Encodes every message first (so an oversize one refuses the whole call before anything is sent). */
  encode(messages: WireMessage[], destination: string): EncodedMessage[] {
    return messages.map((m) => encodeMessage(m, this.options.maxMessageBytes, destination));
  }

  /**
   * Sends in batches of at most 10 entries and the size limit; resolves once SQS accepted every
   * message. Entries a batch refused are retried once, then reported by id in a TRANSPORT_ERROR.
   */
  async send(
    sqsName: string,
    messages: WireMessage[],
    encoded = this.encode(messages, sqsName),
  ): Promise<void> {
    if (messages.length === 0) return;
    const url = await this.url(sqsName);
    const fifo = isFifoName(sqsName);
    await sendInBatches<SendMessageBatchRequestEntry>({
      messages,
      encoded,
      entry: (message, { body, attributes }, id) => ({
        Id: id,
        MessageBody: body,
        MessageAttributes: attributes,
        ...(fifo ? fifoIds(message, this.options.fifoDeduplicateById) : {}),
      }),
      call: async (batch) => {
        try {
          return await this.client.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: batch }));
        } catch (error) {
          throw awsError(`SendMessageBatch to ${sqsName}`, error);
        }
      },
      maxBytes: this.options.maxMessageBytes,
      ordered: fifo,
      describe: `SQS SendMessageBatch to ${sqsName}`,
    });
  }

  async changeVisibility(url: string, receiptHandle: string, seconds: number): Promise<void> {
    try {
      await this.client.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: url,
          ReceiptHandle: receiptHandle,
          VisibilityTimeout: Math.min(MAX_VISIBILITY_SECONDS, Math.max(0, Math.ceil(seconds))),
        }),
      );
    } catch (error) {
      throw awsError("ChangeMessageVisibility", error);
    }
  }

  /** Per-handle outcome: undefined when it worked, else the error (`refused` when SQS refused the entry). */
  async changeVisibilityBatch(
    url: string,
    handles: string[],
    seconds: number,
  ): Promise<(Error | undefined)[]> {
    return this.#batch(
      handles,
      async (entries) => {
        const out = await this.client.send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: url,
            Entries: entries.map(({ id, handle }) => ({
              Id: id,
              ReceiptHandle: handle,
              VisibilityTimeout: seconds,
            })),
          }),
        );
        return out;
      },
      "ChangeMessageVisibilityBatch",
    );
  }

  async deleteBatch(url: string, handles: string[]): Promise<(Error | undefined)[]> {
    return this.#batch(
      handles,
      async (entries) => {
        const out = await this.client.send(
          new DeleteMessageBatchCommand({
            QueueUrl: url,
            Entries: entries.map(({ id, handle }) => ({ Id: id, ReceiptHandle: handle })),
          }),
        );
        return out;
      },
      "DeleteMessageBatch",
    );
  }

  async #batch(
    handles: string[],
    call: (entries: { id: string; handle: string }[]) => Promise<{
      Failed?: { Id?: string | undefined; Code?: string | undefined; Message?: string | undefined }[];
      $metadata: { attempts?: number | undefined };
    }>,
    operation: string,
  ): Promise<(Error | undefined)[]> {
    const results: (Error | undefined)[] = handles.map(() => undefined);
    const chunks: number[][] = [];
    for (let i = 0; i < handles.length; i += BATCH)
      chunks.push([...Array(Math.min(BATCH, handles.length - i)).keys()].map((k) => i + k));
    await Promise.all(
      chunks.map(async (chunk) => {
        try {
          const out = await call(chunk.map((i) => ({ id: String(i), handle: handles[i]! })));
          const attempts = out.$metadata.attempts;
          for (const f of out.Failed ?? []) {
            results[Number(f.Id)] = new SwitchyardError(
              "TRANSPORT_ERROR",
              `${operation}: ${f.Code ?? "failed"} ${f.Message ?? ""}`.trim(),
              { details: { operation, awsError: f.Code, refused: true, ...(attempts ? { attempts } : {}) } },
            );
          }
        } catch (error) {
          const wrapped = awsError(operation, error);
          for (const i of chunk) results[i] = wrapped;
        }
      }),
    );
    return results;
  }
}
