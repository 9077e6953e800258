import { parseArgs } from "node:util";
import {
  type Bus,
  createBus,
  type DeadLetter,
  type DeadLetterQueue,
  isSwitchyardError,
} from "@switchyard/core";

export const USAGE = `usage: switchyard dlq <list|show|redrive|purge> (TOPIC SUBSCRIPTION | --queue QUEUE) [options]

  list      one line per dead letter: id, reason, attempts, type, error
  show ID   the full record of one dead letter, as JSON
  redrive   send letters back to where they failed (all, or --id ID …)
  purge     delete letters for good (all, or --id ID …)

options:
  --url URL        broker URL (default: SWITCHYARD_URL, else memory://)
  --queue QUEUE    the DLQ of a queue instead of a topic subscription
  --id ID          limit redrive/purge to these ids (repeatable)
  --limit N        most letters to read (default 100)
  --idle-ms N      stop reading after N ms without a letter (default 1000)
  --json           list as JSON lines`;

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** For tests: a bus instead of one made from --url. */
  bus?: Bus;
}

/** Runs the command; returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.err(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [group, action, ...rest] = positionals;
  if (values.help || group !== "dlq" || !action) {
    (values.help ? io.out : io.err)(USAGE);
    return values.help ? 0 : 2;
  }
  const target = values.queue ? { queue: values.queue } : undefined;
  const [topic, subscription, id] = target ? [undefined, undefined, rest[0]] : rest;
  if (!target && (!topic || !subscription)) {
    io.err(`name a topic and a subscription, or --queue QUEUE\n\n${USAGE}`);
    return 2;
  }
  let bus: Bus | undefined;
  try {
    bus = io.bus ?? createBus(values.url ? { url: values.url } : {});
    const dlq: DeadLetterQueue = target ? bus.deadLetters(target) : bus.deadLetters(topic!, subscription!);
    const browse = { limit: Number(values.limit ?? 100), idleMs: Number(values["idle-ms"] ?? 1000) };
    const ids = values.id;
    switch (action) {
      case "list": {
        const letters = await dlq.list(browse);
        for (const letter of letters) io.out(values.json ? JSON.stringify(summary(letter)) : line(letter));
        if (!values.json) io.out(`${letters.length} dead letter(s) in ${await dlq.location()}`);
        return 0;
      }
      case "show": {
        const wanted = id ?? ids?.[0];
        const letter = (await dlq.list(browse)).find((l) => l.id === wanted);
        if (!letter) {
          io.err(`no dead letter with id ${wanted} in ${await dlq.location()}`);
          return 1;
        }
        io.out(JSON.stringify(summary(letter), null, 2));
        return 0;
      }
      case "redrive": {
        const count = await dlq.redrive({ ...browse, ...(ids ? { ids } : {}) });
        io.out(`redrove ${count} dead letter(s) from ${await dlq.location()}`);
        return 0;
      }
      case "purge": {
        const count = await dlq.purge({ ...browse, ...(ids ? { ids } : {}) });
        io.out(`purged ${count} dead letter(s) from ${await dlq.location()}`);
        return 0;
      }
      default:
        io.err(`unknown action "${action}"\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    io.err(isSwitchyardError(error) ? `${error.code}: ${error.message}` : String(error));
    return 1;
  } finally {
    if (!io.bus) await bus?.close();
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: "string" },
      queue: { type: "string" },
      id: { type: "string", multiple: true },
      limit: { type: "string" },
      "idle-ms": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

function summary(letter: DeadLetter) {
  const { message, envelope, ...record } = letter;
  return {
    ...record,
    data: envelope?.data instanceof Uint8Array ? `<${envelope.data.byteLength} bytes>` : envelope?.data,
  };
}

function line(letter: DeadLetter): string {
  const error = letter.error ? ` ${letter.error.type}: ${letter.error.message}` : "";
  return `${letter.id}  ${letter.reason.padEnd(15)} attempts=${letter.attempts}  ${letter.messageType ?? "?"}${error}`;
}
