import { randomBytes } from "node:crypto";
import { type Bus, type Consumer, deadLetterQueueName, parseBusUrl, SwitchyardError } from "@switchyard/core";
import type { Command } from "commander";
import { brokerAdmin } from "../broker-admin.js";
import { openBus } from "../connect.js";
import { EXIT } from "../exit-codes.js";
import { envelopeRecord, formatEnvelope, shownUrl } from "../format.js";
import { brokerUrl, type CliIo, colorsFor, type GlobalOptions } from "../io.js";
import type { Register } from "../program.js";

interface TailOptions {
  subscription?: string;
  fromBeginning?: boolean;
  type?: string[];
  count?: string;
}

export const registerTail: Register = (program, context, configure) => {
  configure(
    program
      .command("tail")
      .description("print a topic's messages as they arrive, through a throwaway subscription")
      .argument("<topic>", "the topic to watch"),
  )
    .option("--subscription <name>", "name the subscription (kept on exit); default: a throwaway tail-… one")
    .option("--from-beginning", "start with the messages already on the topic, where the broker keeps them")
    .option("--type <type>", "only messages of this type (repeatable)", (t: string, all: string[] = []) => [
      ...all,
      t,
    ])
    .option("--count <n>", "stop after printing this many messages")
    .addHelpText(
      "after",
      "\nStops on Ctrl-C or SIGTERM (exit 0). The throwaway subscription (and its dead-letter queue) is\n" +
        "removed then where the adapter can delete topology (not on STOMP); elsewhere the command says\n" +
        "what is left behind.\n" +
        "Tail acknowledges what it reads: never name a subscription a service uses.",
    )
    .action((topic: string, options: TailOptions, command: Command) =>
      context.run(command, (global) => tail(context.io, global, topic, options)),
    );
};

async function tail(io: CliIo, global: GlobalOptions, topic: string, options: TailOptions) {
  const limit = options.count === undefined ? Number.POSITIVE_INFINITY : Number(options.count);
  if (!(limit >= 1) || (options.count !== undefined && !Number.isInteger(limit))) {
    throw new SwitchyardError("CONFIG_INVALID", `--count needs a positive integer, got "${options.count}"`);
  }
  const throwaway = options.subscription === undefined;
  const subscription = options.subscription ?? `tail-${randomBytes(4).toString("hex")}`;
  const given = brokerUrl(io, global);
  const url = startingPoint(given, options.fromBeginning === true);
  const c = colorsFor(io, global);
  const types = options.type ? new Set(options.type) : undefined;

  const bus = io.bus ?? (await openBus(url));
  let printed = 0;
  let consumer: Consumer | undefined;
  /** Whether there may be a throwaway subscription to remove (once connected, start() creates it). */
  let created = false;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const onStop = () => done();
  // Nothing else may keep the process alive while it waits (the in-memory broker has no sockets).
  const keepAlive = setInterval(() => {}, 60_000);
  io.stop?.addEventListener("abort", onStop, { once: true });
  try {
    await bus.transport(); // connect first: if the broker is unreachable, nothing was created
    created = throwaway;
    if (options.fromBeginning && !(await bus.capabilities()).replayFromStart) {
      io.err(
        c.yellow(
          `note: ${(await bus.transport()).name} keeps no history for a new subscription; showing new messages only`,
        ),
      );
    }
    consumer = await bus
      .subscribe(topic, subscription)
      .onAny(
        async function print(message) {
          if (printed >= limit || (types && !types.has(message.type))) return;
          printed++;
          io.out(global.json ? JSON.stringify(envelopeRecord(message)) : `${formatEnvelope(message, c)}\n`);
          if (printed >= limit) done();
        },
        { foreign: true },
      )
      .start({ concurrency: 1 });
    io.err(
      c.dim(`tailing topic ${topic} as subscription ${subscription} on ${shownUrl(given)}; Ctrl-C to stop`),
    );
    if (io.stop?.aborted) done();
    await finished;
  } finally {
    clearInterval(keepAlive);
    io.stop?.removeEventListener("abort", onStop);
    // The consumer leaves first (a Kafka group in use cannot be deleted); the transport stays open
    // for the removal.
    await consumer?.stop();
    if (created) await removeSubscription(io, bus, url, topic, subscription);
    if (!io.bus) await bus.close();
  }
  io.err(c.dim(`${printed} message(s) shown`));
  return EXIT.ok;
}

/** Kafka starts a new consumer group at the earliest offset by default; tail wants the latest. */
function startingPoint(url: string, fromBeginning: boolean): string {
  if (!isKafka(url)) return url;
  const parsed = parseBusUrl(url);
  if (parsed.searchParams.has("startFrom")) return url;
  parsed.searchParams.set("startFrom", fromBeginning ? "earliest" : "latest");
  return parsed.toString();
}

const isKafka = (url: string) => parseBusUrl(url).protocol === "kafka:";

/**
 * Removes the throwaway subscription and its dead-letter queue with the adapter's unprovision (a
 * broker keeping dead letters itself has no such queue: already gone is fine), then what the
 * contract has no entity for through the CLI's broker admin (Kafka's consumer group).
 */
async function removeSubscription(io: CliIo, bus: Bus, url: string, topic: string, name: string) {
  const scheme = parseBusUrl(url).protocol.replace(/:$/, "");
  if (scheme === "memory") {
    io.err(`subscription ${name} lives in this process's in-memory broker and ends with it`);
    return;
  }
  const transport = await bus.transport();
  const admin = await brokerAdmin(url).catch(() => undefined);
  try {
    if (!transport.unprovision && !admin?.removeSubscription) {
      io.err(
        `subscription ${name} on topic ${topic} is left on ${scheme}; delete it with the broker's tools`,
      );
      return;
    }
    const deadLetterQueue = deadLetterQueueName({ kind: "topic", name: topic, subscription: name });
    await transport.unprovision?.([
      // maxAttempts names no broker resource: unprovision deletes by name.
      { kind: "subscription", topic, name, deadLetterQueue, maxAttempts: 1 },
      { kind: "queue", name: deadLetterQueue },
    ]);
    await admin?.removeSubscription?.(topic, name);
    io.err(`removed subscription ${name}`);
  } catch (error) {
    io.err(`could not remove subscription ${name}: ${String(error)}`);
  } finally {
    await admin?.close().catch(() => {});
  }
}
