#!/usr/bin/env node
import { runCli } from "./cli.js";

// Ctrl-C or SIGTERM asks a long-running command (tail) to stop and clean up; a second one quits.
const stop = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stop.signal.aborted) process.exit(130);
    stop.abort();
  });
}

const terminal = process.stderr.isTTY ? process.stderr : undefined;
process.exitCode = await runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  ...(terminal ? { terminal } : {}),
  color: process.stdout.isTTY === true,
  ...(process.stdin.isTTY ? {} : { stdin: process.stdin }),
  stop: stop.signal,
  env: process.env,
});
// Brokers' clients may keep sockets or timers alive after close; the command is done once its
// output is flushed.
await new Promise((resolve) => process.stdout.write("", resolve));
process.exit();
