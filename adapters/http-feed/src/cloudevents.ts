// Wire message ⇄ CloudEvents JSON (structured mode), the item format of an HTTP feed.
//
//   ce_<attr> headers      → top-level attributes (`ce_schemaversion` → `schemaversion`, …)
//   user headers           → one string extension `headers`, a JSON object (CloudEvents extension
//                            values must be primitives, and user header names are rarely valid
//                            extension names); the user header `method` is the http-feeds.org
//                            deletion marker and travels top-level as `method`.
//   body                   → `data` when that reproduces the bytes exactly (JSON that re-serialises
//                            identically, or UTF-8 text for text/*), else `data_base64`.
import { isJsonContentType, JSON_CONTENT_TYPE, RESERVED_PREFIX, type WireMessage } from "@switchyard/core";

export type CloudEvent = Record<string, unknown>;

/** The media type of a feed page. */
export const BATCH_CONTENT_TYPE = "application/cloudevents-batch+json";

/** The extension that carries user headers (a JSON object, as a string). */
export const HEADERS_ATTRIBUTE = "headers";
/** The http-feeds.org deletion marker: `method: "DELETE"` removes the subject on compaction. */
export const METHOD_ATTRIBUTE = "method";

const EXTENSION_NAME = /^[a-z0-9]{1,20}$/;
const NOT_ATTRIBUTES = new Set(["data", "data_base64", HEADERS_ATTRIBUTE, METHOD_ATTRIBUTE]);
const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

function exactData(body: Uint8Array, contentType: string): { data: unknown } | undefined {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return undefined;
  }
  if (isJsonContentType(contentType)) {
    try {
      const data: unknown = JSON.parse(text);
      return JSON.stringify(data) === text ? { data } : undefined;
    } catch {
      return undefined;
    }
  }
  if (contentType.toLowerCase().startsWith("text/")) return { data: text };
  return undefined;
}

export function toCloudEvent(wire: WireMessage): CloudEvent {
  const event: CloudEvent = { specversion: "1.0", id: wire.id };
  const user: Record<string, string> = {};
  for (const [name, value] of Object.entries(wire.headers)) {
    if (name.startsWith(RESERVED_PREFIX)) {
      const attribute = name.slice(RESERVED_PREFIX.length);
      if (EXTENSION_NAME.test(attribute) && !NOT_ATTRIBUTES.has(attribute)) event[attribute] = value;
      else user[name] = value; // not expressible as an attribute: kept verbatim with the user headers
    } else if (name === METHOD_ATTRIBUTE) {
      event[METHOD_ATTRIBUTE] = value;
    } else {
      user[name] = value;
    }
  }
  if (wire.key !== undefined) event.partitionkey = wire.key;
  if (Object.keys(user).length > 0) event[HEADERS_ATTRIBUTE] = JSON.stringify(user);
  const contentType = wire.headers[`${RESERVED_PREFIX}datacontenttype`] ?? JSON_CONTENT_TYPE;
  const exact = wire.body.byteLength === 0 ? undefined : exactData(wire.body, contentType);
  if (exact) event.data = exact.data;
  else event.data_base64 = Buffer.from(wire.body).toString("base64");
  return event;
}

/** Why a feed item cannot become a message at all (it has no usable id: the cursor cannot pass it). */
export class UnidentifiableEvent extends Error {}

/**
 * Rebuilds the wire message. Attributes become `ce_` headers whatever they are, so an event that is
 * not a valid CloudEvent still arrives and the core dead-letters it as `decode`; only an item
 * without a string `id` is refused (nothing could name it, and the position could not move past it).
 */
export function fromCloudEvent(item: unknown): WireMessage {
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    throw new UnidentifiableEvent("feed item is not a JSON object");
  }
  const event = item as CloudEvent;
  if (typeof event.id !== "string" || event.id === "") {
    throw new UnidentifiableEvent("feed item has no string id");
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event)) {
    if (name === "data" || name === "data_base64" || name === HEADERS_ATTRIBUTE || value === undefined)
      continue;
    if (name === METHOD_ATTRIBUTE) {
      headers[METHOD_ATTRIBUTE] = String(value);
      continue;
    }
    headers[RESERVED_PREFIX + name] = typeof value === "string" ? value : JSON.stringify(value);
  }
  if (typeof event[HEADERS_ATTRIBUTE] === "string") {
    try {
      const user: unknown = JSON.parse(event[HEADERS_ATTRIBUTE] as string);
      if (user && typeof user === "object" && !Array.isArray(user)) {
        for (const [name, value] of Object.entries(user))
          if (typeof value === "string") headers[name] = value;
      }
    } catch {
      headers[RESERVED_PREFIX + HEADERS_ATTRIBUTE] = event[HEADERS_ATTRIBUTE] as string;
    }
  }
  const contentType = headers[`${RESERVED_PREFIX}datacontenttype`] ?? JSON_CONTENT_TYPE;
  let body: Uint8Array;
  if (typeof event.data_base64 === "string") {
    body = new Uint8Array(Buffer.from(event.data_base64, "base64"));
  } else if (event.data === undefined) {
    // No data (an http-feeds.org DELETE, say): JSON `null`, so a JSON consumer still decodes it.
    // (Our own empty bodies always travel as `data_base64: ""`, so they come back empty.)
    body = isJsonContentType(contentType) ? encoder.encode("null") : new Uint8Array(0);
  } else {
    body =
      typeof event.data === "string" && !isJsonContentType(contentType)
        ? encoder.encode(event.data)
        : encoder.encode(JSON.stringify(event.data));
  }
  const wire: WireMessage = { id: event.id, headers, body };
  if (typeof event.partitionkey === "string") wire.key = event.partitionkey;
  return wire;
}
