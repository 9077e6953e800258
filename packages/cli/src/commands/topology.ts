import type { TopologyEntity } from "@switchyard/core";
import type { Command } from "commander";
import { brokerAdmin } from "../broker-admin.js";
import { openBus } from "../connect.js";
import { loadDefinitions, requiredTopology } from "../definitions.js";
import { EXIT } from "../exit-codes.js";
import { shownUrl } from "../format.js";
import { brokerUrl, type CliIo, colorsFor, type GlobalOptions } from "../io.js";
import type { Register } from "../program.js";

interface TopologyOptions {
  module: string;
}

/** One entity the app needs and whether the broker has it (`undefined`: this broker cannot be asked). */
interface Row {
  kind: TopologyEntity["kind"];
  name: string;
  topic?: string;
  exists: boolean | undefined;
}

export const registerTopology: Register = (program, context, configure) => {
  const topology = configure(
    program
      .command("topology")
      .description("the queues, topics and subscriptions an app needs, against what the broker has")
      .addHelpText(
        "after",
        "\nThe module (--module ./messages.js) exports its definitions as default or as `switchyard`:\n" +
          "  export const switchyard = {\n" +
          '    topics: [{ name: "blog-events", messages: [BlogCreated], subscriptions: ["approval-service"] }],\n' +
          '    queues: [{ name: "emails", messages: [SendEmail] }],\n' +
          "  };\n" +
          "Each subscription and queue also needs its dead-letter queue (NAME.dlq, TOPIC.SUBSCRIPTION.dlq).",
      ),
  );
  for (const [name, description] of [
    ["diff", "list what is missing (exit 3 when something is)"],
    ["apply", "create what is missing (creating what exists is harmless)"],
  ] as const) {
    configure(topology.command(name).description(description))
      .requiredOption("--module <path>", "the module exporting the app's definitions")
      .action((options: TopologyOptions, command: Command) =>
        context.run(command, (global) => run(context.io, global, name, options)),
      );
  }
};

async function run(io: CliIo, global: GlobalOptions, action: "diff" | "apply", options: TopologyOptions) {
  const needed = requiredTopology(await loadDefinitions(options.module));
  const url = brokerUrl(io, global);
  const before = await inspect(url, needed);
  if (action === "apply") {
    const bus = io.bus ?? (await openBus(url));
    try {
      await bus.ensure(needed);
    } finally {
      if (!io.bus) await bus.close();
    }
  }
  const missing = before.filter((row) => row.exists === false).length;
  const unknown = before.filter((row) => row.exists === undefined).length;
  if (global.json) {
    for (const row of before)
      io.out(JSON.stringify({ ...row, exists: row.exists ?? null, action: verdict(action, row) }));
  } else {
    const c = colorsFor(io, global);
    for (const row of before) {
      const what =
        row.kind === "subscription" ? `subscription ${row.name} on ${row.topic}` : `${row.kind} ${row.name}`;
      const mark = row.exists === true ? c.green("=") : row.exists === false ? c.red("+") : c.yellow("?");
      io.out(`${mark} ${what.padEnd(60)} ${verdict(action, row)}`);
    }
    const summary =
      action === "apply"
        ? `applied on ${shownUrl(url)}: ${missing} created, ${before.length - missing - unknown} existed`
        : `${shownUrl(url)}: ${missing} missing, ${before.length - missing - unknown} present`;
    io.out(unknown > 0 ? `${summary}, ${unknown} not inspectable on this broker` : summary);
  }
  return action === "diff" && missing > 0 ? EXIT.drift : EXIT.ok;
}

function verdict(action: "diff" | "apply", row: Row): string {
  if (row.exists === true) return "exists";
  if (row.exists === false) return action === "apply" ? "created" : "missing";
  return action === "apply" ? "ensured" : "unknown";
}

async function inspect(url: string, needed: TopologyEntity[]): Promise<Row[]> {
  const admin = await brokerAdmin(url);
  let exists: Array<boolean | undefined> = needed.map(() => undefined);
  if (admin) {
    try {
      exists = await admin.exists(needed);
    } finally {
      await admin.close().catch(() => {});
    }
  }
  return needed.map((entity, i) => ({
    kind: entity.kind,
    name: entity.name,
    ...(entity.kind === "subscription" ? { topic: entity.topic } : {}),
    exists: exists[i],
  }));
}
