#!/usr/bin/env node
import { runCli } from "./cli.js";
import { processIo } from "./process-io.js";

process.exitCode = await runCli(process.argv.slice(2), processIo());
// Brokers' clients may keep sockets or timers alive after close; the command is done once its
// output is flushed.
await new Promise((resolve) => process.stdout.write("", resolve));
process.exit();
