import { type DeadLetter, type DeadLetterQueue, SwitchyardError } from "@switchyard/core";
import type { Command } from "commander";
import { openBus, type TransportWatch } from "../connect.js";
import { EXIT } from "../exit-codes.js";
import { brokerUrl, type CliIo, colorsFor, type GlobalOptions } from "../io.js";
import type { Register } from "../program.js";
import { progressBar, ratePerSecond } from "../progress.js";

interface DlqOptions {
  queue?: string;
  id?: string[];
  limit: string;
  idleMs: string;
}

export const registerDlq: Register = (program, context, configure) => {
  const dlq = configure(program.command("dlq").description("dead letters: list, show, redrive, purge"));
  const target = "TOPIC SUBSCRIPTION, or --queue QUEUE";
  const common = (command: Command) =>
    configure(command)
      .option("--queue <queue>", "the dead letters of a queue instead of a topic subscription")
      .option("--limit <n>", "most letters to read", "100")
      .option("--idle-ms <ms>", "stop reading after this long without a letter", "1000");
  const selectable = (command: Command) =>
    command.option("--id <id>", "only this letter (repeatable)", (id: string, ids: string[] = []) => [
      ...ids,
      id,
    ]);

  common(dlq.command("list").description("one line per dead letter: id, reason, attempts, type, error"))
    .argument("[names...]", target)
    .action((names: string[], options: DlqOptions, command: Command) =>
      context.run(command, (global) => list(context.io, global, names, options)),
    );
  common(dlq.command("show").description("the full record of one dead letter, as JSON"))
    .argument("[names...]", `${target}, then the letter's ID`)
    .action((names: string[], options: DlqOptions, command: Command) =>
      context.run(command, (global) => show(context.io, global, names, options)),
    );
  selectable(common(dlq.command("redrive").description("send letters back to where they failed")))
    .argument("[names...]", target)
    .action((names: string[], options: DlqOptions, command: Command) =>
      context.run(command, (global) => settle(context.io, global, "redrive", names, options)),
    );
  selectable(common(dlq.command("purge").description("delete letters for good")))
    .argument("[names...]", target)
    .action((names: string[], options: DlqOptions, command: Command) =>
      context.run(command, (global) => settle(context.io, global, "purge", names, options)),
    );
};

/** TOPIC SUBSCRIPTION [rest…], or --queue QUEUE [rest…]. */
function targetOf(names: string[], options: DlqOptions) {
  if (options.queue) return { queue: options.queue, rest: names };
  const [topic, subscription, ...rest] = names;
  if (!topic || !subscription) {
    throw new SwitchyardError("CONFIG_INVALID", "name a topic and a subscription, or --queue QUEUE");
  }
  return { topic, subscription, rest };
}

function browseOptions(options: DlqOptions) {
  const limit = Number(options.limit);
  const idleMs = Number(options.idleMs);
  if (!Number.isInteger(limit) || limit < 1 || !Number.isFinite(idleMs) || idleMs < 0) {
    throw new SwitchyardError("CONFIG_INVALID", "--limit needs an integer ≥ 1 and --idle-ms a number ≥ 0");
  }
  return { limit, idleMs };
}

async function withDlq<T>(
  io: CliIo,
  global: GlobalOptions,
  names: string[],
  options: DlqOptions,
  body: (dlq: DeadLetterQueue, rest: string[]) => Promise<T>,
  watch?: TransportWatch,
): Promise<T> {
  const target = targetOf(names, options);
  browseOptions(options); // bad numbers fail before connecting
  const bus = io.bus ?? (await openBus(brokerUrl(io, global), watch ? { watch } : {}));
  try {
    const dlq =
      target.queue !== undefined
        ? bus.deadLetters({ queue: target.queue })
        : bus.deadLetters(target.topic, target.subscription);
    return await body(dlq, target.rest);
  } finally {
    if (!io.bus) await bus.close();
  }
}

async function list(io: CliIo, global: GlobalOptions, names: string[], options: DlqOptions) {
  return withDlq(io, global, names, options, async (dlq) => {
    const letters = await dlq.list(browseOptions(options));
    const location = await dlq.location();
    if (global.json) {
      for (const letter of letters) io.out(JSON.stringify({ ...summary(letter), location }));
      return EXIT.ok;
    }
    const c = colorsFor(io, global);
    for (const letter of letters) io.out(line(letter, c));
    io.out(`${letters.length} dead letter(s) in ${location}`);
    return EXIT.ok;
  });
}

async function show(io: CliIo, global: GlobalOptions, names: string[], options: DlqOptions) {
  return withDlq(io, global, names, options, async (dlq, rest) => {
    const wanted = rest[0] ?? options.id?.[0];
    if (!wanted) throw new SwitchyardError("CONFIG_INVALID", "name the dead letter's ID to show");
    const letter = (await dlq.list(browseOptions(options))).find((l) => l.id === wanted);
    if (!letter) {
      const message = `no dead letter with id ${wanted} in ${await dlq.location()}`;
      io.err(global.json ? JSON.stringify({ error: { code: "NOT_FOUND", message } }) : message);
      return EXIT.failed;
    }
    io.out(global.json ? JSON.stringify(summary(letter)) : JSON.stringify(summary(letter), null, 2));
    return EXIT.ok;
  });
}

/** Redrive or purge, with a progress bar on a terminal and a summary at the end. */
async function settle(
  io: CliIo,
  global: GlobalOptions,
  action: "redrive" | "purge",
  names: string[],
  options: DlqOptions,
) {
  const ids = options.id;
  const { limit } = browseOptions(options);
  const progress = progressBar(action, global.json ? undefined : io.terminal);
  let read = 0;
  // Letters are read first (the bar's total grows), then each one removed is acked (the bar moves).
  const watch: TransportWatch = {
    delivered: () => {
      read++;
      progress.total(ids ? ids.length : read);
    },
    acked: () => progress.tick(),
  };
  return withDlq(
    io,
    global,
    names,
    options,
    async (dlq) => {
      const location = await dlq.location();
      const started = Date.now();
      let count: number;
      try {
        const settleOptions = { ...browseOptions(options), ...(ids ? { ids } : {}) };
        count = action === "redrive" ? await dlq.redrive(settleOptions) : await dlq.purge(settleOptions);
      } finally {
        progress.stop();
      }
      const durationMs = Date.now() - started;
      const rate = ratePerSecond(count, durationMs);
      if (global.json) {
        const limitReached = read >= limit;
        io.out(JSON.stringify({ action, location, count, durationMs, ratePerSecond: rate, limitReached }));
      } else {
        const verb = action === "redrive" ? "redrove" : "purged";
        io.out(
          `${verb} ${count} dead letter(s) from ${location} in ${(durationMs / 1000).toFixed(1)} s (${rate} msg/s)` +
            (read >= limit ? `; --limit ${limit} reached, run again for more` : ""),
        );
      }
      return EXIT.ok;
    },
    watch,
  );
}

/** A dead letter without its raw message; bytes data shown as its size. */
function summary(letter: DeadLetter) {
  const { message, envelope, ...record } = letter;
  return {
    ...record,
    data: envelope?.data instanceof Uint8Array ? `<${envelope.data.byteLength} bytes>` : envelope?.data,
  };
}

function line(letter: DeadLetter, c: ReturnType<typeof colorsFor>): string {
  const error = letter.error ? ` ${c.red(`${letter.error.type}: ${letter.error.message}`)}` : "";
  return `${c.dim(letter.id)}  ${c.yellow(letter.reason.padEnd(15))} attempts=${letter.attempts}  ${letter.messageType ?? "?"}${error}`;
}
