// The binary against real brokers, in a real terminal (tmux) where a person would watch it.
import { spawn } from "node:child_process";
import { brokerEndpoint, describeWithBroker } from "@switchyard/broker-stack/available";
import { PermanentError, REDRIVE_TO } from "@switchyard/core";
import { afterAll, describe, it } from "vitest";
import { brokerAdmin } from "../src/broker-admin.js";
import { openBus } from "../src/connect.js";
import { BIN, closeTerminals, FIXTURES, jsonLines, runBin, Terminal, unique } from "./helpers.js";

afterAll(closeTerminals);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `replays`: a new subscription can read what was published before it (Kafka). */
function cliOn(url: string, replays: boolean, secret?: string) {
  return () =>
    describe.concurrent(url.replace(/\/\/.*@/, "//"), () => {
      it("tail shows what publish sends (filtered by --type) and Ctrl-C removes its subscription", async ({
        expect,
      }) => {
        const topic = unique("cli-tail");
        const terminal = Terminal.start([BIN, "tail", topic, "--url", url, "--type", "order.placed"]);
        try {
          const banner = await terminal.waitFor(/as subscription (tail-[0-9a-f]{8}) on /);
          const subscription = /as subscription (tail-[0-9a-f]{8})/.exec(banner)![1]!;
          if (secret) expect(banner).not.toContain(secret);
          const publish = (type: string, n: number) =>
            runBin([
              "publish",
              topic,
              "--url",
              url,
              "--type",
              type,
              "--key",
              "o-1",
              "--header",
              "tenant=acme",
              "--data",
              JSON.stringify({ n }),
              "--json",
            ]);
          const first = await publish("order.placed", 1);
          expect(first.code).toBe(0);
          const sent = jsonLines(first.stdout)[0]!;
          expect(sent.id).toMatch(UUID);
          expect(sent).toMatchObject({
            type: "order.placed",
            version: 1,
            key: "o-1",
            destination: { kind: "topic", name: topic },
          });
          expect((await publish("order.ignored", 2)).code).toBe(0);
          expect((await publish("order.placed", 3)).code).toBe(0);

          // Same key: one partition on Kafka, so n=2 was read before n=3 appears.
          const screen = await terminal.waitFor('"n": 3');
          expect(screen).toContain(`id       ${sent.id}`);
          expect(screen).toMatch(/order\.placed {2}v1 {2}key=o-1 {2}\S+Z {2}from switchyard-cli/);
          expect(screen).toContain("headers  tenant=acme");
          expect(screen).not.toContain("order.ignored");

          const admin = (await brokerAdmin(url))!;
          const entities = [
            { kind: "subscription" as const, topic, name: subscription, deadLetterQueue: "", maxAttempts: 1 },
            { kind: "queue" as const, name: `${topic}.${subscription}.dlq` },
          ];
          try {
            expect(await admin.exists(entities)).toEqual([true, true]);
            terminal.keys("C-c");
            const after = await terminal.waitFor("[exit ");
            expect(after).toContain(`removed subscription ${subscription}`);
            expect(after).toContain("2 message(s) shown");
            expect(after).toContain("[exit 0]");
            expect(await admin.exists(entities)).toEqual([false, false]);
          } finally {
            await admin.close();
          }
        } finally {
          terminal.kill();
        }
      });

      it("tail --from-beginning --count --json: field by field, replayed where the broker keeps history", async ({
        expect,
      }) => {
        const topic = unique("cli-replay");
        const publish = () =>
          runBin(
            ["publish", topic, "--url", url, "--type", "order.placed", "--version", "2", "--key", "k"].concat(
              ["--subject", "o-7", "--header", "tenant=acme", "--data", '{"orderId":"o-7"}', "--json"],
            ),
          );
        // Where the broker replays, the message is there before the tail starts; elsewhere it is
        // published once the tail listens.
        const early = replays ? jsonLines((await publish()).stdout)[0] : undefined;
        const child = spawn(
          process.execPath,
          [BIN, "tail", topic, "--url", url, "--from-beginning", "--count", "1", "--json"],
          {
            stdio: ["ignore", "pipe", "pipe"],
          },
        );
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk) => {
          stdout += chunk;
        });
        const listening = new Promise<void>((resolve) =>
          child.stderr.on("data", (chunk) => {
            stderr += chunk;
            if (stderr.includes("Ctrl-C to stop")) resolve();
          }),
        );
        const closed = new Promise((resolve) => child.once("close", resolve));
        await listening;
        const sent = early ?? jsonLines((await publish()).stdout)[0]!;
        expect(await closed).toBe(0);
        if (replays) expect(stderr).not.toContain("keeps no history");
        else expect(stderr).toContain("keeps no history for a new subscription; showing new messages only");
        const [record] = jsonLines(stdout);
        expect(Object.keys(record!)).toEqual([
          "id",
          "type",
          "version",
          "key",
          "time",
          "source",
          "subject",
          "headers",
          "data",
        ]);
        expect(record).toEqual({
          id: sent!.id,
          type: "order.placed",
          version: 2,
          key: "k",
          time: sent!.time,
          source: "switchyard-cli",
          subject: "o-7",
          headers: { tenant: "acme" },
          data: { orderId: "o-7" },
        });
        expect(stderr).toMatch(/removed subscription tail-[0-9a-f]{8}/);
      });

      it("dlq list --json, then a redrive with a progress bar, then the subscription gets them back", async ({
        expect,
      }) => {
        const topic = unique("cli-dlq");
        const subscription = "billing";
        const count = 30;
        const feeder = await openBus(url);
        let failed = 0;
        await feeder
          .subscribe(topic, subscription)
          .onAny(async function bill() {
            failed++;
            throw new PermanentError("card declined");
          })
          .start();
        await Promise.all(
          Array.from({ length: count }, (_, n) =>
            feeder.publishRaw(
              { kind: "topic", name: topic },
              { type: "order.placed", schemaVersion: 1, data: { n } },
            ),
          ),
        );
        await expect.poll(() => failed, { timeout: 30_000 }).toBe(count);
        await feeder.close();

        const browse = ["--url", url, "--idle-ms", "2000", "--limit", "1000"];
        const list = await runBin(["dlq", "list", topic, subscription, ...browse, "--json"]);
        expect(list.code).toBe(0);
        const letters = jsonLines(list.stdout);
        expect(letters).toHaveLength(count);
        expect(letters.map((l) => l.data.n).sort((a, b) => a - b)).toEqual([...Array(count).keys()]);
        for (const letter of letters) {
          expect(letter.id).toMatch(UUID);
          expect(letter.reason).toBe("handler-error");
          expect(letter.attempts).toBe(1);
          expect(letter.messageType).toBe("order.placed");
          expect(letter.schemaVersion).toBe(1);
          expect(letter.handler).toBe("bill");
          expect(letter.subscription).toBe(subscription);
          expect(letter.destination).toEqual({ kind: "topic", name: topic });
          expect(letter.error).toMatchObject({ type: "PermanentError", message: "card declined" });
          expect(letter.location).toBe(`${topic}.${subscription}.dlq`);
          expect(letter).not.toHaveProperty("message");
        }

        const terminal = Terminal.start([BIN, "dlq", "redrive", topic, subscription, ...browse]);
        try {
          const screen = await terminal.waitFor("[exit ");
          expect(screen).toMatch(new RegExp(`redrive \\[█+\\] ${count}/${count} \\| [\\d.]+ msg/s \\| `));
          expect(screen).toMatch(
            new RegExp(
              `redrove ${count} dead letter\\(s\\) from ${topic}\\.${subscription}\\.dlq in [\\d.]+ s`,
            ),
          );
          expect(screen).toContain("[exit 0]");
          if (secret) expect(screen).not.toContain(secret);
        } finally {
          terminal.kill();
        }

        const after = await runBin(["dlq", "list", topic, subscription, ...browse, "--json"]);
        expect(after.stdout).toBe("");
        const consumer = await openBus(url);
        const redriven: unknown[] = [];
        await consumer
          .subscribe(topic, subscription)
          .onAny(async (message, ctx) => {
            if (ctx.wire.headers[REDRIVE_TO] === subscription) redriven.push(message.data);
          })
          .start();
        await expect.poll(() => redriven.length, { timeout: 30_000 }).toBe(count);
        await consumer.close();
      });

      it("topology diff finds what is missing (exit 3), apply creates it, diff is then clean", async ({
        expect,
      }) => {
        const prefix = unique("cli-shop");
        const env = { SHOP_PREFIX: prefix };
        const args = ["--module", `${FIXTURES}shop-definitions.mjs`, "--url", url, "--json"];
        const before = await runBin(["topology", "diff", ...args], { env });
        expect(before.code).toBe(3);
        const rows = jsonLines(before.stdout);
        expect(rows.map((r) => [r.kind, r.name, r.exists, r.action])).toEqual([
          ["topic", `${prefix}-orders`, false, "missing"],
          ["subscription", "billing", false, "missing"],
          ["queue", `${prefix}-orders.billing.dlq`, false, "missing"],
          ["subscription", "shipping", false, "missing"],
          ["queue", `${prefix}-orders.shipping.dlq`, false, "missing"],
          ["queue", `${prefix}-emails`, false, "missing"],
          ["queue", `${prefix}-emails.dlq`, false, "missing"],
        ]);
        expect(rows[1]!.topic).toBe(`${prefix}-orders`);

        const apply = await runBin(["topology", "apply", ...args], { env });
        expect(apply.code).toBe(0);
        expect(jsonLines(apply.stdout).map((r) => r.action)).toEqual(Array(7).fill("created"));

        const again = await runBin(["topology", "diff", ...args.slice(0, -1)], { env });
        expect(again.code).toBe(0);
        expect(again.stdout).toMatch(/^= topic /m);
        expect(again.stdout).toMatch(/0 missing, 7 present$/m);
      });
    });
}

const kafka = `kafka://${brokerEndpoint("kafka").url}`;
describeWithBroker("kafka", "switchyard CLI on Kafka", cliOn(kafka, true));
const rabbit = brokerEndpoint("rabbitmq").url;
describeWithBroker(
  "rabbitmq",
  "switchyard CLI on RabbitMQ",
  cliOn(rabbit, false, new URL(rabbit).password || undefined),
);
