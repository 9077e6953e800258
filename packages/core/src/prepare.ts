import type { PublishOptions } from "./bus.js";
import { createEnvelope, type Envelope, type EnvelopeInput } from "./envelope.js";
import { SwitchyardError } from "./errors.js";
import { assertDeclaredVersion, checkVersion, type MessageType, type ValidationResult } from "./schema.js";

/**
 * Validates `data` against a version of `type` and builds the envelope a publish of it would send
 * (the same checks and fields as `bus.publish`), without sending it: for producers that store the
 * envelope first and send it later (a transactional outbox). Invalid data raises
 * `VALIDATION_FAILED`, an undeclared version `UNKNOWN_VERSION`. Synchronous when the validator is.
 */
export function prepareEnvelope(
  type: MessageType,
  data: unknown,
  options: PublishOptions,
  defaults: { source: string },
): Envelope | Promise<Envelope> {
  const version = options.version ?? type.latest;
  assertDeclaredVersion(type, version);
  const result = checkVersion(type, version, data);
  return result instanceof Promise
    ? result.then((valid) => envelopeOf(type, version, valid, options, defaults))
    : envelopeOf(type, version, result, options, defaults);
}

function envelopeOf(
  type: MessageType,
  version: number,
  result: ValidationResult,
  options: PublishOptions,
  defaults: { source: string },
): Envelope {
  if (!result.ok) {
    throw new SwitchyardError(
      "VALIDATION_FAILED",
      `"${type.type}" v${version} is invalid: ${result.message}`,
      {
        details: { type: type.type, version },
      },
    );
  }
  const input: EnvelopeInput = Object.assign({}, options as Omit<PublishOptions, "version">, {
    type: type.type,
    schemaVersion: version,
    dataContentType: type.dataContentType,
    data: result.value,
  });
  return createEnvelope(input, defaults);
}
