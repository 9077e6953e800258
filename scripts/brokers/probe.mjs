// Readiness probe for brokers.sh: `node probe.mjs NAME` exits 0 only after a real protocol round trip
// (one message sent and the same message received) with the broker's raw client. Not a port check.
import { randomUUID } from "node:crypto";

process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";
process.env.METADATA_SERVER_DETECTION = "none";
process.env.PUBSUB_EMULATOR_HOST ??= "127.0.0.1:8085";

const H = "127.0.0.1";
const id = () => randomUUID().slice(0, 8);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const aws = {
  region: "us-east-1",
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
};

function check(got, want, what) {
  if (got !== want) throw new Error(`${what}: sent ${JSON.stringify(want)}, received ${JSON.stringify(got)}`);
}

async function kafka() {
  const { Kafka, logLevel } = await import("kafkajs");
  const k = new Kafka({
    clientId: "switchyard-probe",
    brokers: [`${H}:9092`],
    logLevel: logLevel.NOTHING,
    retry: { retries: 3 },
  });
  const topic = "_switchyard_probe";
  const admin = k.admin();
  await admin.connect();
  const topics = await admin.listTopics();
  if (!topics.includes(topic))
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  const value = `probe-${id()}`;
  const producer = k.producer();
  await producer.connect();
  const [meta] = await producer.send({ topic, messages: [{ value }] });
  await producer.disconnect();
  const groupId = `_switchyard_probe_${id()}`;
  const consumer = k.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = false;
  const got = new Promise((resolve) => {
    consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value?.toString() === value && !seen) {
          seen = true;
          resolve(message.value.toString());
        }
      },
    });
  });
  consumer.on(consumer.events.GROUP_JOIN, () =>
    consumer.seek({ topic, partition: 0, offset: meta.baseOffset }),
  );
  check(await got, value, "kafka");
  await consumer.disconnect();
  await admin.deleteGroups([groupId]).catch(() => {});
  await admin.disconnect();
}

function stomp(port, login) {
  return import("stompit").then(
    ({ default: stompit }) =>
      new Promise((resolve, reject) => {
        const headers = { host: "/", "heart-beat": "0,0" };
        if (login) Object.assign(headers, { login: "guest", passcode: "guest" });
        stompit.connect({ host: H, port, connectHeaders: headers }, (err, client) => {
          if (err) return reject(err);
          client.on("error", reject);
          const destination = `/queue/switchyard-probe-${id()}`;
          const body = `probe-${id()}`;
          client.subscribe({ destination, ack: "client-individual" }, (err2, message) => {
            if (err2) return reject(err2);
            message.readString("utf-8", (err3, text) => {
              if (err3) return reject(err3);
              client.ack(message);
              client.disconnect();
              try {
                check(text, body, `stomp :${port}`);
                resolve();
              } catch (e) {
                reject(e);
              }
            });
          });
          const frame = client.send({ destination, "content-type": "text/plain" });
          frame.write(body);
          frame.end();
        });
      }),
  );
}

async function rabbitmq() {
  const amqp = await import("amqplib");
  const conn = await amqp.connect(`amqp://guest:guest@${H}:5672`);
  try {
    const ch = await conn.createChannel();
    const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
    const body = `probe-${id()}`;
    ch.sendToQueue(queue, Buffer.from(body));
    let msg = false;
    for (let i = 0; i < 50 && !msg; i++) {
      msg = await ch.get(queue, { noAck: true });
      if (!msg) await sleep(50);
    }
    check(msg ? msg.content.toString() : null, body, "amqp");
  } finally {
    await conn.close();
  }
  await stomp(61613, true);
  const res = await fetch(`http://${H}:15672/api/overview`, {
    headers: { authorization: `Basic ${Buffer.from("guest:guest").toString("base64")}` },
  });
  if (res.status !== 200) throw new Error(`management API answered ${res.status}`);
}

async function sqsRoundTrip(endpoint) {
  const sqs = await import("@aws-sdk/client-sqs");
  const c = new sqs.SQSClient({ ...aws, endpoint });
  const { QueueUrl } = await c.send(new sqs.CreateQueueCommand({ QueueName: `switchyard-probe-${id()}` }));
  try {
    const body = `probe-${id()}`;
    await c.send(new sqs.SendMessageCommand({ QueueUrl, MessageBody: body }));
    const r = await c.send(
      new sqs.ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 5, MaxNumberOfMessages: 1 }),
    );
    check(r.Messages?.[0]?.Body, body, "sqs");
  } finally {
    await c.send(new sqs.DeleteQueueCommand({ QueueUrl }));
  }
}

async function moto() {
  const endpoint = `http://${H}:4566`;
  const sns = await import("@aws-sdk/client-sns");
  const sqs = await import("@aws-sdk/client-sqs");
  const n = new sns.SNSClient({ ...aws, endpoint });
  const q = new sqs.SQSClient({ ...aws, endpoint });
  const name = `switchyard-probe-${id()}`;
  const { TopicArn } = await n.send(new sns.CreateTopicCommand({ Name: name }));
  const { QueueUrl } = await q.send(new sqs.CreateQueueCommand({ QueueName: name }));
  try {
    const { Attributes } = await q.send(
      new sqs.GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] }),
    );
    await n.send(
      new sns.SubscribeCommand({
        TopicArn,
        Protocol: "sqs",
        Endpoint: Attributes.QueueArn,
        Attributes: { RawMessageDelivery: "true" },
      }),
    );
    const body = `probe-${id()}`;
    await n.send(new sns.PublishCommand({ TopicArn, Message: body }));
    const r = await q.send(new sqs.ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 5 }));
    check(r.Messages?.[0]?.Body, body, "sns→sqs");
  } finally {
    await q.send(new sqs.DeleteQueueCommand({ QueueUrl })).catch(() => {});
    await n.send(new sns.DeleteTopicCommand({ TopicArn })).catch(() => {});
  }
}

async function pubsub() {
  const { PubSub } = await import("@google-cloud/pubsub");
  const ps = new PubSub({ projectId: "switchyard-local" });
  const name = `switchyard-probe-${id()}`;
  const [topic] = await ps.createTopic(name);
  const [sub] = await topic.createSubscription(name);
  try {
    const body = `probe-${id()}`;
    const got = new Promise((resolve, reject) => {
      sub.on("error", reject);
      sub.on("message", (m) => {
        m.ack();
        resolve(m.data.toString());
      });
    });
    await topic.publishMessage({ data: Buffer.from(body) });
    check(await got, body, "pubsub");
  } finally {
    await sub.close();
    await sub.delete().catch(() => {});
    await topic.delete().catch(() => {});
    await ps.close();
  }
}

async function postgres() {
  const { default: pg } = await import("pg");
  const c = new pg.Client({ connectionString: `postgres://postgres:postgres@${H}:5433/postgres` });
  await c.connect();
  try {
    await c.query("CREATE TEMP TABLE probe (body text)");
    const body = `probe-${id()}`;
    await c.query("INSERT INTO probe VALUES ($1)", [body]);
    const r = await c.query("SELECT body FROM probe");
    check(r.rows[0]?.body, body, "postgres");
  } finally {
    await c.end();
  }
}

async function servicebus() {
  const queue = `probe-${id()}`;
  const admin = await fetch(`http://${H}:5674/queues/${queue}`, { method: "PUT", body: "{}" });
  check(admin.ok, true, "servicebus admin PUT");
  const { ServiceBusClient } = await import("@azure/service-bus");
  const client = new ServiceBusClient(
    `Endpoint=sb://${H}:5673;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;`,
  );
  try {
    const body = `probe-${id()}`;
    await client.createSender(queue).sendMessages({ body });
    const receiver = client.createReceiver(queue);
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 10_000 });
    check(message?.body, body, "servicebus");
    await receiver.completeMessage(message);
  } finally {
    await client.close();
    await fetch(`http://${H}:5674/queues/${queue}`, { method: "DELETE" });
  }
}

const probes = {
  kafka,
  rabbitmq,
  activemq: () => stomp(61614, false),
  elasticmq: () => sqsRoundTrip(`http://${H}:9324`),
  moto,
  pubsub,
  postgres,
  servicebus,
};

const name = process.argv[2];
if (!probes[name]) {
  console.error(`usage: node probe.mjs ${Object.keys(probes).join("|")}`);
  process.exit(2);
}
const timer = setTimeout(() => {
  console.error(`${name}: probe timed out`);
  process.exit(1);
}, 30_000);
try {
  await probes[name]();
  clearTimeout(timer);
  process.exit(0);
} catch (e) {
  console.error(`${name}: ${e?.message ?? e}`);
  process.exit(1);
}
