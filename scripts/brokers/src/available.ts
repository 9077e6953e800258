// Where each real broker is, and a `describe` that refuses to silently skip in CI.
//
//   import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
//   describeWithBroker("kafka", "kafka adapter", () => { it("…", async () => { … }) });
//
// Defaults are the loopback ports of `pnpm brokers up`; each can be pointed elsewhere with the env
// vars below (see docs/brokers.md). When the broker's port does not answer:
//   - CI=true (or SWITCHYARD_REQUIRE_BROKERS=1): the block becomes one failing test naming the broker
//     and how to start it;
//   - otherwise: a loud warning on stderr and the block's tests are reported as skipped.
import { spawnSync } from "node:child_process";
import { describe, it } from "vitest";

export type BrokerName =
  | "kafka"
  | "rabbitmq"
  | "rabbitmq-stomp"
  | "rabbitmq-management"
  | "activemq"
  | "elasticmq"
  | "moto"
  | "pubsub"
  | "postgres"
  | "servicebus";

export interface BrokerEndpoint {
  name: BrokerName;
  /** the `pnpm brokers up NAME` that starts it */
  stack: string;
  host: string;
  port: number;
  /** client-ready address: a URL, or host:port for Kafka and Pub/Sub */
  url: string;
  /** the env var that overrides `url` */
  envVar: string;
}

const env = (k: string) => {
  const v = process.env[k];
  return v && v.trim() !== "" ? v.trim() : undefined;
};

function fromUrl(name: BrokerName, stack: string, envVar: string, fallback: string, defPort: number) {
  const url = env(envVar) ?? fallback;
  const u = new URL(url);
  return { name, stack, envVar, url, host: u.hostname, port: u.port ? Number(u.port) : defPort };
}

function fromHostPort(name: BrokerName, stack: string, envVar: string, fallback: string) {
  const url = env(envVar) ?? fallback;
  const first = url.split(",")[0]!.trim();
  const i = first.lastIndexOf(":");
  return { name, stack, envVar, url, host: first.slice(0, i), port: Number(first.slice(i + 1)) };
}

/** Address of a broker: loopback defaults of `pnpm brokers up`, overridable by env vars. */
export function brokerEndpoint(name: BrokerName): BrokerEndpoint {
  switch (name) {
    case "kafka":
      return fromHostPort(name, "kafka", "KAFKA_BROKERS", "127.0.0.1:9092");
    case "rabbitmq":
      return fromUrl(name, "rabbitmq", "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672", 5672);
    case "rabbitmq-stomp":
      return fromUrl(name, "rabbitmq", "STOMP_RABBITMQ_URL", "stomp://guest:guest@127.0.0.1:61613", 61613);
    case "rabbitmq-management":
      return fromUrl(
        name,
        "rabbitmq",
        "RABBITMQ_MANAGEMENT_URL",
        "http://guest:guest@127.0.0.1:15672",
        15672,
      );
    case "activemq":
      return fromUrl(name, "activemq", "STOMP_ACTIVEMQ_URL", "stomp://127.0.0.1:61614", 61614);
    case "elasticmq":
      return fromUrl(name, "elasticmq", "SQS_ENDPOINT", "http://127.0.0.1:9324", 80);
    case "moto":
      return fromUrl(name, "moto", "SNS_ENDPOINT", "http://127.0.0.1:4566", 80);
    case "pubsub":
      return fromHostPort(name, "pubsub", "PUBSUB_EMULATOR_HOST", "127.0.0.1:8085");
    case "postgres":
      return fromUrl(
        name,
        "postgres",
        "PG_URL",
        "postgres://postgres:postgres@127.0.0.1:5433/postgres",
        5432,
      );
    case "servicebus":
      return fromUrl(name, "servicebus", "SERVICEBUS_EMULATOR_URL", "amqp://127.0.0.1:5673", 5673);
    default:
      throw new Error(`unknown broker ${String(name)}`);
  }
}

/** Region and dummy credentials the local AWS emulators accept (real ones from env win). */
export const localAws = {
  region: env("AWS_REGION") ?? "us-east-1",
  credentials: {
    accessKeyId: env("AWS_ACCESS_KEY_ID") ?? "test",
    secretAccessKey: env("AWS_SECRET_ACCESS_KEY") ?? "test",
  },
};

const answered = new Map<string, boolean>();

/** Synchronous TCP check (a child Node process), so it can decide at collection time. Cached. */
export function brokerReachable(name: BrokerName, timeoutMs = 1500): boolean {
  const { host, port } = brokerEndpoint(name);
  const key = `${host}:${port}`;
  const known = answered.get(key);
  if (known !== undefined) return known;
  const script = `const s=require("node:net").connect({host:${JSON.stringify(host)},port:${port}});s.setTimeout(${timeoutMs},()=>process.exit(1));s.on("connect",()=>process.exit(0));s.on("error",()=>process.exit(1));`;
  const r = spawnSync(process.execPath, ["-e", script], { timeout: timeoutMs + 2000, stdio: "ignore" });
  const ok = r.status === 0;
  answered.set(key, ok);
  return ok;
}

export function brokersRequired(): boolean {
  const ci = env("CI");
  return ci === "true" || ci === "1" || env("SWITCHYARD_REQUIRE_BROKERS") === "1";
}

/** Why a broker is missing and how to start it. */
export function missingBrokerMessage(name: BrokerName): string {
  const e = brokerEndpoint(name);
  return `broker "${name}" does not answer at ${e.host}:${e.port} (${e.envVar}=${e.url}). Start it with: pnpm brokers up ${e.stack}   (or point ${e.envVar} at your own)`;
}

/**
 * `describe(title, fn)` when the broker answers. When it does not: in CI a failing test, elsewhere a
 * loud warning and a skipped placeholder test (never a silent skip).
 */
export function describeWithBroker(name: BrokerName | BrokerName[], title: string, fn: () => void): void {
  const names = Array.isArray(name) ? name : [name];
  const missing = names.filter((n) => !brokerReachable(n));
  if (missing.length === 0) {
    describe(title, fn);
    return;
  }
  const why = missing.map(missingBrokerMessage).join("\n");
  if (brokersRequired()) {
    describe(title, () => {
      it(`requires ${missing.join(", ")}`, () => {
        throw new Error(`${why}\n(CI=true: a missing broker fails the run instead of skipping)`);
      });
    });
    return;
  }
  const bar = "!".repeat(100);
  console.warn(`\n${bar}\nSKIPPED "${title}": ${why}\n${bar}\n`);
  describe(title, () => {
    const stacks = [...new Set(missing.map((n) => brokerEndpoint(n).stack))].join(" ");
    it.skip(`SKIPPED, broker missing: ${missing.join(", ")} (pnpm brokers up ${stacks})`, () => {});
  });
}
