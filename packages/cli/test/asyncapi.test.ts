// The AsyncAPI document is checked by the AsyncAPI project's own parser: zero errors.
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Parser } from "@asyncapi/parser";
import { createBus } from "@switchyard/core";
import { describe, expect, it } from "vitest";
import { buildAsyncApi, toAsyncApi } from "../src/cli.js";
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

describe.concurrent("asyncapi from a bus", () => {
  const memory = () => `memory://${unique("asyncapi")}`;

  it("the blog-approval demo's two buses, after its flow ran, give its definitions' document (less the topic descriptions)", async () => {
    const { switchyard: definitions } = await import(BLOG_DEFINITIONS);
    const { runFlow } = await import(BLOG_DEFINITIONS.replace(/switchyard\.js$/, "flow.js"));
    const url = memory();
    const blogBus = createBus({ url, source: "blog-service" });
    const approvalBus = createBus({ url, source: "approval-service" });
    try {
      const posts = await runFlow(blogBus, approvalBus, () => {});
      expect(posts.map((post: { published: boolean }) => post.published)).toEqual([true, false]);
      const kafka = "kafka://reader:s3cret@127.0.0.1:9092";
      const fromBuses = await toAsyncApi([approvalBus, blogBus], {
        url: kafka,
        title: definitions.title,
        version: definitions.version,
        description: definitions.description,
      });
      const expected = await toAsyncApi(definitions, { url: kafka });
      // Descriptions of topics are prose in the definitions module: a bus has none to give.
      for (const topic of ["topic.blog-events", "topic.approval-events"]) {
        expect(expected.channels[topic].description).toBeTruthy();
        delete expected.channels[topic].description;
      }
      expect(fromBuses).toEqual(expected);
      // The same order too: the YAML a user diffs is the same text.
      expect(JSON.stringify(fromBuses)).toBe(JSON.stringify(expected));
      expect((await parse(fromBuses)).errors).toEqual([]);
    } finally {
      await Promise.all([blogBus.close(), approvalBus.close()]);
    }
  });

  it("a bus whose consumers read the shop's topic and queue gives the shop definitions' document, server from its own URL", async () => {
    const shop = await import(`${FIXTURES}shop-definitions.mjs`);
    const definitions = shop.default;
    const [orders, emails] = [definitions.topics[0].name, definitions.queues[0].name];
    const secret = "amqp://guest:guest@127.0.0.1:5672/shop";
    // Never connected: only the URL is read (describe() needs no broker).
    const amqpBus = createBus({ url: secret });
    const bus = createBus({ url: memory(), messages: [shop.OrderPlaced, shop.OrderShipped, shop.SendEmail] });
    try {
      await bus
        .subscribe(orders, "billing")
        .on(shop.OrderPlaced, () => {})
        .on(shop.OrderShipped, () => {})
        .start();
      await bus
        .subscribe(orders, "shipping")
        .on(shop.OrderPlaced, { versions: [1, 2] }, () => {})
        .on(shop.OrderShipped, () => {})
        .start({ retry: { maxAttempts: 3 } });
      await bus
        .consume(emails)
        .on(shop.SendEmail, () => {})
        .start();
      const { document, warnings } = await buildAsyncApi(bus, {
        url: secret,
        title: "Shop",
        version: "2.1.0",
      });
      expect(warnings).toEqual([]);
      const expected = await toAsyncApi(definitions, { url: secret });
      expect(document).toEqual(expected);
      expect(JSON.stringify(document)).toBe(JSON.stringify(expected));
      // Without options.url the server is the bus's own, its credentials left out.
      const fromItsUrl = await toAsyncApi(amqpBus);
      expect(fromItsUrl.servers.broker).toEqual(expected.servers.broker);
      expect(JSON.stringify(fromItsUrl)).not.toContain("guest:guest");
    } finally {
      await Promise.all([bus.close(), amqpBus.close()]);
    }
  });

  it("what a bus cannot know: where it will publish before it has, and the types an onAny handler takes", async () => {
    const shop = await import(`${FIXTURES}shop-definitions.mjs`);
    const bus = createBus({ url: memory(), messages: [shop.OrderPlaced, shop.SendEmail] });
    try {
      await bus
        .subscribe("audit-log", "archiver")
        .onAny(() => {})
        .start();
      const before = await buildAsyncApi(bus);
      expect(before.warnings).toEqual([
        "archiver on audit-log takes any type (onAny): only the types of its typed handlers are listed",
        "order.placed: registered on the bus but not published or consumed yet, so on no channel (a bus learns where it publishes only when it does)",
        "email.send: registered on the bus but not published or consumed yet, so on no channel (a bus learns where it publishes only when it does)",
      ]);
      // The registered types are still messages, each version with its schema, on no channel.
      expect(Object.keys(before.document.components.messages)).toEqual([
        "order.placed.v1",
        "order.placed.v2",
        "email.send.v1",
      ]);
      expect(before.document.info).toEqual({ title: "Switchyard application", version: "1.0.0" });
      expect(before.document.servers).toBeUndefined(); // memory:// is no server anyone else reaches
      expect(Object.keys(before.document.channels)).toEqual([
        "topic.audit-log",
        "subscription.audit-log.archiver",
      ]);
      expect(before.document.channels["topic.audit-log"].messages).toEqual({});
      expect((await parse(before.document)).errors).toEqual([]);

      // Once it has published, it knows: the channel, its send operation, no more warning for it.
      await bus.publish("shop-orders", "order.placed", { orderId: "o-1", total: 3, currency: "EUR" });
      const after = await buildAsyncApi(bus);
      expect(after.warnings).toEqual(before.warnings.filter((w) => !w.startsWith("order.placed")));
      expect(after.document.operations["send.shop-orders"].messages).toEqual([
        { $ref: "#/channels/topic.shop-orders/messages/order.placed.v1" },
        { $ref: "#/channels/topic.shop-orders/messages/order.placed.v2" },
      ]);
      expect((await parse(after.document)).errors).toEqual([]);
      const elsewhere = createBus({ url: "amqp://guest:guest@127.0.0.1:5672/" });
      const { warnings } = await buildAsyncApi([bus, elsewhere]);
      expect(warnings).toContainEqual(
        expect.stringMatching(
          /^the buses use memory:\/\/asyncapi-\w+, amqp:\/\/.*127\.0\.0\.1:5672\/: the server is the first's$/,
        ),
      );
      expect(warnings.join("\n")).not.toContain("guest:guest");
      for (const wrong of [[], [bus, {}]]) {
        await expect(toAsyncApi(wrong as never)).rejects.toMatchObject({ code: "CONFIG_INVALID" });
      }
    } finally {
      await bus.close();
    }
  });
});
