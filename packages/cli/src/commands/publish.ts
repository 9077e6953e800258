import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import {
  type Bus,
  createEnvelope,
  type Destination,
  type Envelope,
  type MessageType,
  SwitchyardError,
} from "@switchyard/core";
import type { Command } from "commander";
import { openBus } from "../connect.js";
import { allMessageTypes, loadDefinitions } from "../definitions.js";
import { EXIT } from "../exit-codes.js";
import { brokerUrl, type CliIo, colorsFor, type GlobalOptions } from "../io.js";
import type { Register } from "../program.js";

interface PublishOptions {
  queue?: string;
  type: string;
  version?: string;
  key?: string;
  subject?: string;
  header?: string[];
  data: string;
  module?: string;
}

export const registerPublish: Register = (program, context, configure) => {
  configure(
    program
      .command("publish")
      .description("publish messages to a topic (or send them to --queue)")
      .argument("[topic]", "the topic to publish to (or use --queue)"),
  )
    .option("--queue <queue>", "send to this queue instead of a topic")
    .requiredOption("--type <type>", "the message type, e.g. blog.created")
    .option("--version <n>", "the schema version (default: the latest declared with --module, else 1)")
    .option("--key <key>", "ordering / partitioning key")
    .option("--subject <subject>", "the entity the message is about")
    .option("--header <name=value>", "a user header (repeatable)", (h: string, all: string[] = []) => [
      ...all,
      h,
    ])
    .requiredOption(
      "--data <json>",
      "the data: JSON text, @file with one JSON document, or - for stdin (one per line)",
    )
    .option("--module <path>", "validate against the message types this module declares (see `topology`)")
    .action((topic: string | undefined, options: PublishOptions, command: Command) =>
      context.run(command, (global) => publish(context.io, global, topic, options)),
    );
};

async function publish(io: CliIo, global: GlobalOptions, topic: string | undefined, options: PublishOptions) {
  const destination = destinationOf(topic, options);
  const headers = parseHeaders(options.header ?? []);
  const version = options.version === undefined ? undefined : parseVersion(options.version);
  const type = options.module ? await findType(options.module, options.type) : undefined;
  // Bad --data or @file is refused before connecting; stdin is read as it comes.
  const payloads = options.data === "-" ? stdinPayloads(io) : [await onePayload(options.data)];
  const bus = io.bus ?? (await openBus(brokerUrl(io, global)));
  const c = colorsFor(io, global);
  let count = 0;
  try {
    for await (const data of payloads) {
      const envelope = await send(bus, destination, type, options, version, headers, data);
      count++;
      if (global.json) {
        io.out(
          JSON.stringify({
            id: envelope.id,
            type: envelope.type,
            version: envelope.schemaVersion,
            key: envelope.key ?? null,
            time: envelope.time,
            destination,
          }),
        );
      } else {
        io.out(
          `published ${c.bold(envelope.type)} v${envelope.schemaVersion} ${c.dim(envelope.id)} to ${destination.kind} ${destination.name}`,
        );
      }
    }
  } finally {
    if (!io.bus) await bus.close();
  }
  if (count === 0) throw new SwitchyardError("CONFIG_INVALID", "no data to publish (stdin was empty)");
  return EXIT.ok;
}

/** With a module, the type's schema validates the data (VALIDATION_FAILED); without, it goes as given. */
async function send(
  bus: Bus,
  destination: Destination,
  type: MessageType | undefined,
  options: PublishOptions,
  version: number | undefined,
  headers: Record<string, string>,
  data: unknown,
): Promise<Envelope> {
  const fields = {
    ...(options.key ? { key: options.key } : {}),
    ...(options.subject ? { subject: options.subject } : {}),
    headers,
  };
  if (type) {
    const typed = { ...fields, ...(version ? { version } : {}) };
    return destination.kind === "queue"
      ? bus.send(destination.name, type, data as never, typed)
      : bus.publish(destination.name, type, data as never, typed);
  }
  // Built first so a bad header is refused before anything connects.
  const input = { ...fields, type: options.type, schemaVersion: version ?? 1, data };
  createEnvelope(input, { source: "switchyard-cli" });
  return bus.publishRaw(destination, input);
}

function destinationOf(topic: string | undefined, options: PublishOptions): Destination {
  if (options.queue && topic)
    throw new SwitchyardError("CONFIG_INVALID", "name a topic or --queue, not both");
  if (options.queue) return { kind: "queue", name: options.queue };
  if (topic) return { kind: "topic", name: topic };
  throw new SwitchyardError("CONFIG_INVALID", "name a topic to publish to, or --queue QUEUE");
}

function parseVersion(text: string): number {
  const version = Number(text);
  if (!Number.isInteger(version) || version < 1) {
    throw new SwitchyardError("CONFIG_INVALID", `--version needs a positive integer, got "${text}"`);
  }
  return version;
}

function parseHeaders(pairs: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    if (at < 1) throw new SwitchyardError("CONFIG_INVALID", `--header needs name=value, got "${pair}"`);
    headers[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return headers;
}

async function findType(modulePath: string, name: string): Promise<MessageType> {
  const types = allMessageTypes(await loadDefinitions(modulePath));
  const type = types.find((t) => t.type === name);
  if (!type) {
    throw new SwitchyardError(
      "UNKNOWN_MESSAGE_TYPE",
      `${modulePath} declares no type "${name}"; it declares: ${types.map((t) => t.type).join(", ") || "none"}`,
    );
  }
  return type;
}

/** One payload per non-empty stdin line. */
async function* stdinPayloads(io: CliIo): AsyncGenerator<unknown> {
  if (!io.stdin) throw new SwitchyardError("CONFIG_INVALID", "--data - reads stdin, but there is none");
  const lines = createInterface({ input: Readable.from(io.stdin), crlfDelay: Number.POSITIVE_INFINITY });
  let number = 0;
  for await (const line of lines) {
    number++;
    if (line.trim() !== "") yield parseJson(line, `stdin line ${number}`);
  }
}

/** The payload of --data JSON, or of --data @file (one JSON document). */
async function onePayload(data: string): Promise<unknown> {
  if (!data.startsWith("@")) return parseJson(data, "--data");
  const path = data.slice(1);
  const text = await readFile(path, "utf8").catch((cause: Error) => {
    throw new SwitchyardError("CONFIG_INVALID", `cannot read ${path}: ${cause.message}`, { cause });
  });
  return parseJson(text, path);
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new SwitchyardError("INVALID_PAYLOAD", `${where} is not JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
}
