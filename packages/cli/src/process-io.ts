import type { CliIo } from "./io.js";

/**
 * The io of a real process: stdout and stderr, a progress bar when stderr is a terminal, colours
 * when stdout is one, stdin when it is piped, and a stop signal on Ctrl-C / SIGTERM (a second one
 * exits at once with 130).
 */
export function processIo(): CliIo {
  const stop = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (stop.signal.aborted) process.exit(130);
      stop.abort();
    });
  }
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    ...(process.stderr.isTTY ? { terminal: process.stderr } : {}),
    color: process.stdout.isTTY === true,
    ...(process.stdin.isTTY ? {} : { stdin: process.stdin }),
    stop: stop.signal,
    env: process.env,
  };
}
