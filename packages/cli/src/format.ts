import { type Envelope, redactUrl } from "@switchyard/core";
import type { Colors } from "./io.js";

/** The fields `tail --json` prints for one envelope, in a stable order. */
export function envelopeRecord(envelope: Envelope) {
  return {
    id: envelope.id,
    type: envelope.type,
    version: envelope.schemaVersion ?? null,
    key: envelope.key ?? null,
    time: envelope.time,
    source: envelope.source,
    subject: envelope.subject ?? null,
    headers: envelope.headers,
    data: envelope.data instanceof Uint8Array ? `<${envelope.data.byteLength} bytes>` : envelope.data,
  };
}

/**
 * One envelope for people:
 *   blog.created v1  key=b1  2026-12-06T21:30:00.000Z  from blog-service
 *     id       0193a…
 *     headers  tenant=acme
 *     data     { "blogId": "b1", … } (indented JSON)
 */
export function formatEnvelope(envelope: Envelope, c: Colors): string {
  const record = envelopeRecord(envelope);
  const head = [
    c.bold(c.cyan(record.type)),
    record.version === null ? "" : `v${record.version}`,
    record.key === null ? "" : `key=${record.key}`,
    c.dim(record.time),
    c.dim(`from ${record.source}`),
  ].filter(Boolean);
  const headers = Object.entries(record.headers).map(([name, value]) => `${name}=${value}`);
  const data = JSON.stringify(record.data, null, 2) ?? String(record.data);
  const lines = [head.join("  "), `  ${c.dim("id")}       ${record.id}`];
  if (record.subject !== null) lines.push(`  ${c.dim("subject")}  ${record.subject}`);
  if (headers.length > 0) lines.push(`  ${c.dim("headers")}  ${headers.join("  ")}`);
  lines.push(`  ${c.dim("data")}     ${data.split("\n").join("\n           ")}`);
  return lines.join("\n");
}

/** A URL safe to print. */
export const shownUrl = (url: string) => redactUrl(url);
