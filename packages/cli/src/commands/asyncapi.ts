import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { stringify } from "yaml";
import { buildAsyncApi } from "../asyncapi/to-asyncapi.js";
import { loadDefinitions } from "../definitions.js";
import { EXIT } from "../exit-codes.js";
import type { CliIo, GlobalOptions } from "../io.js";
import type { Register } from "../program.js";

interface AsyncApiOptions {
  module: string;
  out?: string;
}

export const registerAsyncApi: Register = (program, context, configure) => {
  configure(
    program
      .command("asyncapi")
      .description("write an AsyncAPI 3.0 document from the app's message types and channels"),
  )
    .requiredOption("--module <path>", "the module exporting the app's definitions (see `topology --help`)")
    .option("--out <file>", "write it here (.json for JSON, else YAML); default: stdout")
    .action((options: AsyncApiOptions, command: Command) =>
      context.run(command, (global) => asyncapi(context.io, global, options)),
    );
};

async function asyncapi(io: CliIo, global: GlobalOptions, options: AsyncApiOptions) {
  const definitions = await loadDefinitions(options.module);
  // Only an explicit URL names a server: SWITCHYARD_URL of the shell is not the app's broker.
  const { document, warnings } = await buildAsyncApi(definitions, global.url ? { url: global.url } : {});
  for (const warning of warnings) io.err(`warning: ${warning}`);
  const asJson = global.json || options.out?.endsWith(".json");
  const text = asJson
    ? JSON.stringify(document, null, 2)
    : stringify(document, { aliasDuplicateObjects: false, lineWidth: 0 });
  if (!options.out) {
    io.out(text.replace(/\n$/, ""));
    return EXIT.ok;
  }
  await writeFile(options.out, `${text.replace(/\n$/, "")}\n`);
  const count = Object.keys(document.components.messages).length;
  const channels = Object.keys(document.channels).length;
  io.out(
    global.json
      ? JSON.stringify({ out: options.out, messages: count, channels, warnings })
      : `wrote ${options.out}: AsyncAPI 3.0.0, ${count} message(s), ${channels} channel(s)`,
  );
  return EXIT.ok;
}
