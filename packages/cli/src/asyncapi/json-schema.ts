import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { VersionMap } from "@switchyard/core";

/** One version's validator: any Standard Schema. */
type StandardSchema = VersionMap[number];

/** A Standard Schema that can also describe itself (Standard JSON Schema: zod ≥ 4.2, arktype ≥ 2.1.2x). */
interface SelfDescribing {
  "~standard": {
    vendor: string;
    jsonSchema?: { output(options: { target: string }): Record<string, unknown> };
  };
}

export type JsonSchemaResult = { schema: Record<string, unknown> } | { reason: string };

/**
 * The JSON Schema (draft-07, the base of AsyncAPI's schema format) of what a validator lets onto
 * the wire: its output. Tries, in order: the Standard JSON Schema interface the validator itself
 * offers (zod 4, arktype), valibot's `@valibot/to-json-schema` (resolved from the app first),
 * arktype's older `toJsonSchema()` method. Never throws: a schema that cannot be expressed (a
 * transform, a date) comes back as a reason.
 */
export async function jsonSchemaOf(schema: StandardSchema): Promise<JsonSchemaResult> {
  const standard = (schema as unknown as SelfDescribing)["~standard"];
  try {
    if (standard.jsonSchema) return { schema: clean(standard.jsonSchema.output({ target: "draft-07" })) };
    if (standard.vendor === "valibot") {
      const valibot = await importFromApp<{ toJsonSchema(schema: unknown): Record<string, unknown> }>(
        "@valibot/to-json-schema",
      );
      if (!valibot) return { reason: "valibot schemas need @valibot/to-json-schema installed" };
      return { schema: clean(valibot.toJsonSchema(schema)) };
    }
    const method = (schema as { toJsonSchema?: () => Record<string, unknown> }).toJsonSchema;
    if (typeof method === "function") return { schema: clean(method.call(schema)) };
    return { reason: `${standard.vendor} offers no JSON Schema converter` };
  } catch (error) {
    return { reason: `${standard.vendor} could not express it as JSON Schema: ${(error as Error).message}` };
  }
}

/** AsyncAPI schemas take no `$schema` of their own (the document's schema format says it). */
function clean(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = schema;
  return rest;
}

/** A package from the app's directory, else from the CLI's, else undefined. */
async function importFromApp<T>(name: string): Promise<T | undefined> {
  for (const from of [join(process.cwd(), "noop.js"), import.meta.url]) {
    try {
      return (await import(pathToFileURL(createRequire(from).resolve(name)).href)) as T;
    } catch {
      // not installed there
    }
  }
  return undefined;
}
