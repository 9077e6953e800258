import type { Bus } from "@switchyard/core";
import { createColors } from "picocolors";

/** Where a command reads and writes; `main.ts` wires it to the process, tests to arrays. */
export interface CliIo {
  /** One line of the command's result (stdout). */
  out(line: string): void;
  /** One line of diagnostics (stderr). */
  err(line: string): void;
  /** For tests: a bus instead of one made from --url. */
  bus?: Bus;
  /**
   * The interactive terminal for progress bars, when stderr is one. Absent (pipes, CI logs,
   * tests): no bar, only the summary line.
   */
  terminal?: NodeJS.WriteStream;
  /** stdout is a terminal: colours are on unless NO_COLOR, --no-color or --json say otherwise. */
  color?: boolean;
  /** Standard input, for `publish --data -`. Default: none (reading it is an error). */
  stdin?: AsyncIterable<string | Buffer>;
  /** Aborted when the user asks to stop (Ctrl-C, SIGTERM): long-running commands end cleanly. */
  stop?: AbortSignal;
  /** Environment variables (NO_COLOR, SWITCHYARD_URL). Default: none. */
  env?: Record<string, string | undefined>;
}

/** The options every command takes, from commander. */
export interface GlobalOptions {
  url?: string;
  json?: boolean;
  color?: boolean;
}

export type Colors = ReturnType<typeof createColors>;

/**
 * Colours only on a terminal, never with --json or --no-color, and never when NO_COLOR is set to
 * anything (https://no-color.org).
 */
export function colorsFor(io: CliIo, options: GlobalOptions): Colors {
  const noColor = io.env?.NO_COLOR !== undefined && io.env.NO_COLOR !== "";
  return createColors(io.color === true && !noColor && !options.json && options.color !== false);
}

/** The broker URL: --url, else SWITCHYARD_URL, else the in-memory broker. */
export function brokerUrl(io: CliIo, options: GlobalOptions): string {
  return options.url ?? io.env?.SWITCHYARD_URL ?? "memory://";
}
