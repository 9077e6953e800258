import { createRequire } from "node:module";
import { Command, CommanderError } from "commander";
import { registerAsyncApi } from "./commands/asyncapi.js";
import { registerConformance } from "./commands/conformance.js";
import { registerDlq } from "./commands/dlq.js";
import { registerPublish } from "./commands/publish.js";
import { registerTail } from "./commands/tail.js";
import { registerTopology } from "./commands/topology.js";
import { describeError, EXIT, exitCodeOf } from "./exit-codes.js";
import type { CliIo, GlobalOptions } from "./io.js";

/** What a command's action gets: the io, the global options, and where to put its exit code. */
export interface CommandContext {
  io: CliIo;
  exitCode: number;
  /** Runs a command body: its return value is the exit code; errors are reported, never thrown. */
  run(command: Command, body: (options: GlobalOptions) => Promise<number | undefined>): Promise<void>;
}

/** Runs the `switchyard` command line; returns the exit code (it never throws, never exits). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const context: CommandContext = {
    io,
    exitCode: EXIT.ok,
    async run(command, body) {
      const options = command.optsWithGlobals<GlobalOptions>();
      try {
        context.exitCode = (await body(options)) ?? EXIT.ok;
      } catch (error) {
        const { code, message } = describeError(error);
        io.err(options.json ? JSON.stringify({ error: { code, message } }) : `error ${code}: ${message}`);
        context.exitCode = exitCodeOf(error);
      }
    },
  };
  // Only on its own: `publish --version N` is the schema version, so commander must not own it.
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    io.out(packageVersion());
    return EXIT.ok;
  }
  const program = buildProgram(context);
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // --help ends with exit code 0; a usage mistake (already printed) with 2.
    return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  return context.exitCode;
}

function buildProgram(context: CommandContext): Command {
  const { io } = context;
  const program = new Command("switchyard")
    .description("Look at, feed and check the messaging of a Switchyard app, on any broker.")
    .option("--url <url>", "broker URL (default: SWITCHYARD_URL, else memory://)")
    .option("--json", "machine-readable output: one JSON document or JSON line per result")
    .option("--no-color", "no colours (also off when NO_COLOR is set or output is not a terminal)")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText(
      "after",
      "\nExit codes: 0 done, 1 failed, 2 bad usage or input, 3 topology drift, 130 interrupted.\n" +
        "switchyard --version prints the version.",
    );
  // Every subcommand reports through io and throws instead of exiting, so runCli keeps control.
  const configure = (command: Command) =>
    command.exitOverride().configureOutput({
      writeOut: (text) => io.out(text.replace(/\n$/, "")),
      writeErr: (text) => io.err(text.replace(/\n$/, "")),
    });
  configure(program);
  for (const register of [
    registerTail,
    registerPublish,
    registerDlq,
    registerTopology,
    registerAsyncApi,
    registerConformance,
  ]) {
    register(program, context, configure);
  }
  return program;
}

/** How a command file adds itself to the program. */
export type Register = (
  program: Command,
  context: CommandContext,
  configure: (command: Command) => Command,
) => void;

function packageVersion(): string {
  return (createRequire(import.meta.url)("../package.json") as { version: string }).version;
}
