// The AsyncAPI document is checked by the AsyncAPI project's own parser: zero errors.
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Parser } from "@asyncapi/parser";
import { describe, expect, it } from "vitest";
import { toAsyncApi } from "../src/cli.js";
import { BLOG_DEFINITIONS, FIXTURES, runBin, unique } from "./helpers.js";

const parser = new Parser();

/** Parses with @asyncapi/parser; returns the error diagnostics (severity 0) and the model. */
async function parse(source: string | Record<string, unknown>) {
  const { document, diagnostics } = await parser.parse(source as never);
  return {
    document,
    errors: diagnostics.filter((d) => d.severity === 0).map((d) => `${d.code}: ${d.message}`),
  };
}

describe.concurrent("asyncapi", () => {
  it("the blog-approval demo's document (YAML, with a Kafka server) parses with zero errors", async () => {
    const out = join(tmpdir(), `${unique("blog")}.yaml`);
    const run = await runBin([
      "asyncapi",
      "--module",
      BLOG_DEFINITIONS,
      "--url",
      "kafka://reader:s3cret@127.0.0.1:9092",
      "--out",
      out,
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(`wrote ${out}: AsyncAPI 3.0.0, 2 message(s), 4 channel(s)`);
    const yaml = await readFile(out, "utf8");
    expect(yaml).not.toContain("s3cret");
    const { document, errors } = await parse(yaml);
    expect(errors).toEqual([]);
    expect(document!.version()).toBe("3.0.0");
    expect(document!.info().title()).toBe("Blog approval");

    const created = document!.components().messages().get("blog.created.v1")!;
    expect(created.name()).toBe("blog.created");
    expect(created.payload()!.required()).toEqual(["blogId", "title", "body"]);
    expect(Object.keys(created.payload()!.properties()!)).toEqual(["blogId", "title", "body"]);
    const approval = document!.components().messages().get("blog.approval.v1")!;
    expect(approval.payload()!.properties()!.status!.enum()).toEqual(["Approved", "Rejected"]);

    const server = document!.servers().get("broker")!;
    expect(server.protocol()).toBe("kafka");
    expect(server.host()).toBe("127.0.0.1:9092");
    const channels = document!.channels();
    expect(
      channels
        .all()
        .map((c) => c.address())
        .sort(),
    ).toEqual(["approval-events", "approval-events", "blog-events", "blog-events"]);
    const receive = document!.operations().get("receive.blog-events.approval-service")!;
    expect(receive.action()).toBe("receive");
    expect(receive.bindings().get("kafka")!.value().groupId.enum).toEqual(["blog-events.approval-service"]);
  });

  it("every version of every type is a message with its schema, from zod, valibot and arktype", async () => {
    const definitions = (await import(`${FIXTURES}shop-definitions.mjs`)).default;
    const document = await toAsyncApi(definitions, { url: "amqp://guest:guest@127.0.0.1:5672/shop" });
    const { document: parsed, errors } = await parse(document);
    expect(errors).toEqual([]);
    const messages = parsed!.components().messages();
    expect(
      messages
        .all()
        .map((m) => m.id())
        .sort(),
    ).toEqual(["email.send.v1", "order.placed.v1", "order.placed.v2", "order.shipped.v1"]);
    // zod, per version
    expect(Object.keys(messages.get("order.placed.v1")!.payload()!.properties()!)).toEqual([
      "orderId",
      "total",
    ]);
    expect(messages.get("order.placed.v2")!.payload()!.properties()!.currency!.enum()).toEqual([
      "EUR",
      "USD",
    ]);
    // valibot through @valibot/to-json-schema
    expect(messages.get("order.shipped.v1")!.payload()!.required()).toEqual(["orderId", "carrier"]);
    // arktype's own converter
    expect(messages.get("email.send.v1")!.payload()!.properties()!.to!.format()).toBe("email");

    // RabbitMQ: topics are exchanges, each subscription reads its own queue in the URL's vhost
    const billing = parsed!.channels().get("subscription.shop-orders.billing")!;
    expect(billing.address()).toBe("shop-orders.billing");
    expect(billing.bindings().get("amqp")!.value().queue).toMatchObject({
      name: "shop-orders.billing",
      vhost: "shop",
    });
    const orders = parsed!.channels().get("topic.shop-orders")!;
    expect(orders.bindings().get("amqp")!.value().exchange).toMatchObject({
      name: "shop-orders",
      type: "topic",
    });
    expect(
      parsed!
        .channels()
        .get("queue.shop-emails")!
        .messages()
        .all()
        .map((m) => m.id()),
    ).toEqual(["email.send.v1"]);
    expect(document.servers.broker.description).not.toContain("guest:guest");
  });

  it("--json prints the document as JSON; a schema a validator cannot express is a warning, not a failure", async () => {
    const run = await runBin(["asyncapi", "--module", `${FIXTURES}untranslatable-definitions.mjs`, "--json"]);
    expect(run.code).toBe(0);
    const document = JSON.parse(run.stdout);
    expect(document.asyncapi).toBe("3.0.0");
    expect(document.servers).toBeUndefined(); // no --url: no server
    expect(document.components.messages["clock.ticked.v1"].payload).toBeUndefined();
    expect(document.components.messages["clock.ticked.v2"].payload.properties.at.type).toBe("string");
    expect(run.stderr).toMatch(/warning: clock\.ticked v1: no payload schema \(zod could not express it/);
    expect((await parse(document)).errors).toEqual([]);
  });
});
