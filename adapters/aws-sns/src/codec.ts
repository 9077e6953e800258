import { createHash } from "node:crypto";
import type { Message } from "@aws-sdk/client-sqs";
import { decodeMessage, escapeName, isFifoName, type ReceivedAttributes } from "@switchyard/aws-sqs";
import type { WireMessage } from "@switchyard/core";

const MAX_TOPIC_NAME = 256;

/** SNS topic names: [A-Za-z0-9_-], up to 256 characters with `.fifo`; escaped like SQS queue names. */
export function snsTopicName(name: string, options: { fifo?: boolean } = {}): string {
  const fifo = options.fifo === true || isFifoName(name);
  const base = isFifoName(name) ? name.slice(0, -5) : name;
  let mapped = escapeName(base);
  const max = fifo ? MAX_TOPIC_NAME - 5 : MAX_TOPIC_NAME;
  if (mapped.length > max) {
    mapped = `${mapped.slice(0, max - 12)}-h${createHash("sha256").update(name).digest("hex").slice(0, 10)}`;
  }
  return fifo ? `${mapped}.fifo` : mapped;
}

interface Notification {
  Type?: unknown;
  Message?: unknown;
  MessageId?: unknown;
  TopicArn?: unknown;
  MessageAttributes?: Record<string, { Type?: string; Value?: string }>;
}

/**
 * A message on a subscription queue. Normally raw-delivered (the Switchyard SQS mapping as is);
 * a subscription without raw delivery wraps it in an SNS notification JSON, which is unwrapped
 * here, its attributes included. Anything else is delivered as a foreign message.
 */
export function decodeSnsMessage(message: Message): WireMessage {
  const fallbackId = message.MessageId ?? "unknown";
  const body = message.Body ?? "";
  const direct = () => {
    try {
      return decodeMessage(body, message.MessageAttributes, fallbackId);
    } catch {
      return decodeMessage(body, {}, fallbackId);
    }
  };
  if (message.MessageAttributes && Object.keys(message.MessageAttributes).length > 0) return direct();
  let parsed: Notification;
  try {
    parsed = JSON.parse(body) as Notification;
  } catch {
    return direct();
  }
  if (
    parsed?.Type !== "Notification" ||
    typeof parsed.Message !== "string" ||
    typeof parsed.TopicArn !== "string"
  ) {
    return direct();
  }
  const attributes: ReceivedAttributes = {};
  for (const [name, value] of Object.entries(parsed.MessageAttributes ?? {})) {
    if (value?.Type === "String" || value?.Type === "Number")
      attributes[name] = { DataType: value.Type, StringValue: value.Value };
  }
  const id = typeof parsed.MessageId === "string" ? parsed.MessageId : fallbackId;
  try {
    return decodeMessage(parsed.Message, attributes, id);
  } catch {
    return decodeMessage(parsed.Message, {}, id);
  }
}
