import type { StandardSchemaV1 } from "@standard-schema/spec";
import { JSON_CONTENT_TYPE } from "./envelope.js";
import { SwitchyardError } from "./errors.js";

export type AnySchema = StandardSchemaV1<any, any>;
export type VersionMap = Record<number, AnySchema>;

/** Descending list used to find the highest declared version at the type level (up to 30). */
type Descending = [
  30,
  29,
  28,
  27,
  26,
  25,
  24,
  23,
  22,
  21,
  20,
  19,
  18,
  17,
  16,
  15,
  14,
  13,
  12,
  11,
  10,
  9,
  8,
  7,
  6,
  5,
  4,
  3,
  2,
  1,
];
type Highest<K, D extends number[] = Descending> = D extends [
  infer H extends number,
  ...infer R extends number[],
]
  ? H extends K
    ? H
    : Highest<K, R>
  : number;

export type VersionOf<V extends VersionMap> = keyof V & number;
export type LatestVersion<V extends VersionMap> = Highest<VersionOf<V>>;
export type InputOf<V extends VersionMap, N extends VersionOf<V>> = StandardSchemaV1.InferInput<V[N]>;
export type OutputOf<V extends VersionMap, N extends VersionOf<V>> = StandardSchemaV1.InferOutput<V[N]>;

/** Lifts version N to the next declared version above N. */
export type Upcasters<V extends VersionMap> = { [N in VersionOf<V>]?: (data: OutputOf<V, N>) => unknown };

export interface MessageType<V extends VersionMap = VersionMap> {
  readonly type: string;
  readonly versions: V;
  /** Declared versions, ascending. */
  readonly versionList: readonly number[];
  readonly latest: number;
  readonly dataContentType: string;
  readonly upcast: Upcasters<V>;
}

export function defineMessage<const V extends VersionMap>(definition: {
  type: string;
  versions: V;
  /** NoInfer: V comes from `versions` alone, so the upcasters' parameters are typed from it. */
  upcast?: NoInfer<Upcasters<V>>;
  /** `application/json` (default); another content type makes the payload raw bytes or text. */
  dataContentType?: string;
}): MessageType<V> {
  if (!definition.type || typeof definition.type !== "string") {
    throw new SwitchyardError("CONFIG_INVALID", "a message type needs a non-empty `type`");
  }
  const versionList = Object.keys(definition.versions)
    .map(Number)
    .sort((a, b) => a - b);
  if (versionList.length === 0 || versionList.some((v) => !Number.isInteger(v) || v < 1)) {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `message type "${definition.type}" needs versions keyed by positive integers (1, 2, …)`,
    );
  }
  for (const [version, schema] of Object.entries(definition.versions)) {
    if (!schema || (typeof schema !== "object" && typeof schema !== "function") || !("~standard" in schema)) {
      throw new SwitchyardError(
        "CONFIG_INVALID",
        `version ${version} of "${definition.type}" is not a Standard Schema (zod, valibot, arktype…)`,
      );
    }
  }
  return {
    type: definition.type,
    versions: definition.versions,
    versionList,
    latest: versionList[versionList.length - 1]!,
    dataContentType: definition.dataContentType ?? JSON_CONTENT_TYPE,
    upcast: definition.upcast ?? {},
  };
}

export type ValidationResult = { ok: true; value: unknown } | { ok: false; message: string };

/** Runs the Standard Schema validator of one version; async validators are awaited. */
export async function validateVersion(
  type: MessageType,
  version: number,
  value: unknown,
): Promise<ValidationResult> {
  return checkVersion(type, version, value);
}

/**
 * The same as `validateVersion`, without a promise when the validator is synchronous (zod,
 * valibot and arktype usually are): the consume and publish paths then pay no microtask turn.
 */
export function checkVersion(
  type: MessageType,
  version: number,
  value: unknown,
): ValidationResult | Promise<ValidationResult> {
  const schema = type.versions[version];
  if (!schema) return { ok: false, message: `version ${version} is not declared` };
  const result = schema["~standard"].validate(value);
  return result instanceof Promise ? result.then(toValidationResult) : toValidationResult(result);
}

function toValidationResult(result: StandardSchemaV1.Result<unknown>): ValidationResult {
  if (result.issues) {
    const message = result.issues
      .slice(0, 5)
      .map((issue) => {
        const path = issue.path?.map((p) => (typeof p === "object" ? String(p.key) : String(p))).join(".");
        return path ? `${path}: ${issue.message}` : issue.message;
      })
      .join("; ");
    return { ok: false, message };
  }
  return { ok: true, value: result.value };
}

export function assertDeclaredVersion(type: MessageType, version: number): void {
  if (!type.versionList.includes(version)) {
    throw new SwitchyardError(
      "UNKNOWN_VERSION",
      `"${type.type}" has no version ${version}; declared: ${type.versionList.join(", ")}`,
      { details: { type: type.type, version } },
    );
  }
}

/** The chain of versions from `from` up to `to` if every step has an upcaster, else undefined. */
function upcastPath(type: MessageType, from: number, to: number): number[] | undefined {
  const path: number[] = [];
  for (const version of type.versionList) {
    if (version < from || version >= to) continue;
    if (!(type.upcast as Record<number, unknown>)[version]) return undefined;
    path.push(version);
  }
  return path;
}

export type VersionDecision =
  | { action: "handle"; version: number; upcastFrom: number[] }
  | { action: "sibling" } // a dual-published sibling of this message suits the consumer better
  | { action: "unknown" };

/**
 * Decides how a consumer that handles `handled` versions treats a message of version `version`.
 * `dualVersions` lists the versions published side by side with this one (a migration): the
 * consumer takes exactly one of them, the best it can handle, and skips the others.
 */
export function decideVersion(
  type: MessageType,
  handled: readonly number[],
  version: number,
  dualVersions?: readonly number[],
): VersionDecision {
  const plan = (v: number): { target: number; path: number[] } | undefined => {
    if (!type.versionList.includes(v)) return undefined;
    if (handled.includes(v)) return { target: v, path: [] };
    for (const target of [...handled].sort((a, b) => a - b)) {
      if (target <= v) continue;
      const path = upcastPath(type, v, target);
      if (path) return { target, path };
    }
    return undefined;
  };
  if (dualVersions && dualVersions.length > 1 && dualVersions.includes(version)) {
    // Prefer a version handled as-is (the highest), then the highest one that can be upcast.
    const direct = dualVersions.filter((v) => plan(v)?.path.length === 0);
    const lifted = dualVersions.filter((v) => plan(v) !== undefined);
    const best =
      direct.length > 0 ? Math.max(...direct) : lifted.length > 0 ? Math.max(...lifted) : undefined;
    if (best !== undefined && best !== version) return { action: "sibling" };
  }
  const chosen = plan(version);
  return chosen
    ? { action: "handle", version: chosen.target, upcastFrom: chosen.path }
    : { action: "unknown" };
}

export function applyUpcasters(type: MessageType, data: unknown, path: readonly number[]): unknown {
  let value = data;
  for (const version of path)
    value = (type.upcast as Record<number, (d: unknown) => unknown>)[version]!(value);
  return value;
}
