import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { redactUrl, SwitchyardError } from "./errors.js";
import type { AdapterModule, Transport } from "./transport.js";

/** URL scheme → the package that serves it. Each package exports `createTransport(url, options)`. */
const adapterPackages: Record<string, string> = {
  memory: "@switchyard/core/memory",
  kafka: "@switchyard/kafka",
  amqp: "@switchyard/rabbitmq",
  amqps: "@switchyard/rabbitmq",
  sqs: "@switchyard/aws-sqs",
  sns: "@switchyard/aws-sns",
  pubsub: "@switchyard/gcp-pubsub",
  "gcp-pubsub": "@switchyard/gcp-pubsub",
  "stomp+activemq": "@switchyard/stomp",
  "stomp+rabbitmq": "@switchyard/stomp",
  stomp: "@switchyard/stomp",
  "http-feed": "@switchyard/http-feed",
  servicebus: "@switchyard/azure-servicebus",
  "azure-servicebus": "@switchyard/azure-servicebus",
};
export const ADAPTER_PACKAGES: Readonly<Record<string, string>> = adapterPackages;

/**
 * Lets `createBus({ url: "acme://…" })` find a third-party adapter package by its scheme. The
 * package exports `createTransport(url, options)`, as every adapter here does.
 */
export function registerAdapter(scheme: string, packageName: string): void {
  if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) {
    throw new SwitchyardError("CONFIG_INVALID", `"${scheme}" is not a valid URL scheme`);
  }
  adapterPackages[scheme] = packageName;
}

export const DEFAULT_URL = "memory://";

/** Query parameter that carries every host of a multi-host URL (`kafka://h1:9092,h2:9092`). */
export const HOSTS_PARAM = "hosts";

/**
 * `scheme://[userinfo@]h1:p1,h2:p2[/path][?query]`, as Kafka and MongoDB write several bootstrap
 * hosts. WHATWG URLs refuse it, so it is read as a URL on the first host with the whole list in
 * the `hosts` query parameter; adapters that take several hosts read that parameter.
 */
function parseMultiHost(raw: string): URL | undefined {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)(?:([^@/?#]*)@)?([^/?#@]*,[^/?#@]*)([/?#].*)?$/i.exec(raw);
  if (!match) return undefined;
  const [, scheme, userinfo, hostList, rest = ""] = match;
  const hosts = hostList!.split(",").map((h) => h.trim());
  if (hosts.some((h) => h === "")) return undefined;
  try {
    const url = new URL(`${scheme}${userinfo === undefined ? "" : `${userinfo}@`}${hosts[0]}${rest}`);
    if (url.searchParams.has(HOSTS_PARAM)) return undefined;
    for (const host of hosts.slice(1)) new URL(`${scheme}${host}`); // each must be a valid host[:port]
    url.searchParams.set(HOSTS_PARAM, hosts.join(","));
    return url;
  } catch {
    return undefined;
  }
}

export function parseBusUrl(raw: string): URL {
  let url: URL;
  try {
    url = parseMultiHost(raw) ?? new URL(raw);
  } catch {
    // No cause: Node's URL error carries the raw input, credentials included.
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `"${redactUrl(raw)}" is not a valid URL; expected e.g. kafka://127.0.0.1:9092 or memory://`,
    );
  }
  const scheme = url.protocol.replace(/:$/, "");
  if (!(scheme in ADAPTER_PACKAGES)) {
    throw new SwitchyardError(
      "UNKNOWN_SCHEME",
      `unknown scheme "${scheme}" in ${redactUrl(raw)}; accepted schemes: ${Object.keys(ADAPTER_PACKAGES).join(", ")}`,
      { details: { scheme } },
    );
  }
  return url;
}

/**
 * Loads the adapter package for a URL. Packages are resolved from the application's directory
 * first (the core does not depend on adapters), then from the core's own location.
 */
export async function loadTransport(
  url: URL,
  options: Record<string, unknown>,
  adapter?: AdapterModule,
): Promise<Transport> {
  const scheme = url.protocol.replace(/:$/, "");
  const module = adapter ?? (await importAdapter(scheme));
  return module.createTransport(url, options);
}

async function importAdapter(scheme: string): Promise<AdapterModule> {
  if (scheme === "memory") return (await import("./memory/index.js")) as AdapterModule;
  const pkg = ADAPTER_PACKAGES[scheme]!;
  let specifier: string = pkg;
  try {
    specifier = pathToFileURL(createRequire(join(process.cwd(), "noop.js")).resolve(pkg)).href;
  } catch {
    // Not resolvable from the working directory; try a plain import below.
  }
  try {
    return (await import(specifier)) as AdapterModule;
  } catch (cause) {
    throw new SwitchyardError(
      "ADAPTER_NOT_INSTALLED",
      `the "${scheme}" scheme needs the package ${pkg}; install it (e.g. npm install ${pkg})`,
      { cause },
    );
  }
}
