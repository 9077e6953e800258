import { type BusHooks, createBus, isSwitchyardError, type Transport } from "@switchyard/core";
import { expect } from "vitest";
import { Ping } from "./messages.js";

type ErrorEvent = Parameters<NonNullable<BusHooks["onError"]>>[0];

/**
 * An adapter's own check that a consumer reports the transport errors it recovers from to the bus's
 * `onError` hook (attempt 0, `willRetry`, TRANSPORT_ERROR, no secret in the text) and goes on
 * consuming. The consumer's transport reaches the broker through something the test can cut and
 * restore (a loopback proxy: the suite cannot break a connection by itself). Between the cut and the
 * restore it waits for a report saying each of `reports` in turn (none given: any first report).
 */
export async function checkRecoveredErrors(options: {
  /** The consumer's transport, through the connection `cut()` breaks. */
  consumerTransport: Transport;
  producerTransport: Transport;
  queue: string;
  cut(): void;
  restore(): void;
  reports?: string[];
  /** Which reports to check; default every one (a cut ack is reported with its own attempt). */
  isTransportReport?: (error: unknown) => boolean;
  /** A credential of the connection, which no report may show. */
  secret?: string;
}): Promise<void> {
  const { queue } = options;
  const events: ErrorEvent[] = [];
  let wake = () => {};
  const reported = async (what: string | undefined) => {
    const seen = () =>
      what === undefined ? events.length > 0 : events.some((event) => String(event.error).includes(what));
    while (!seen()) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  const handled = new Map<number, () => void>();
  const handledOnce = (n: number) => new Promise<void>((resolve) => handled.set(n, resolve));
  const consumer = createBus({
    transport: options.consumerTransport,
    source: "recovered-consumer",
    hooks: {
      onError: (event) => {
        events.push(event);
        wake();
      },
    },
  });
  const producer = createBus({ transport: options.producerTransport, source: "recovered-producer" });
  try {
    await consumer
      .consume(queue)
      .on(Ping, async (msg) => handled.get(msg.data.n)?.())
      .start();
    const first = handledOnce(1);
    await producer.send(queue, Ping, { n: 1 });
    await first;

    options.cut();
    for (const what of options.reports ?? [undefined]) await reported(what);
    options.restore();
    const checked = events.filter((event) => options.isTransportReport?.(event.error) ?? true);
    expect(checked.length).toBeGreaterThan(0);
    for (const event of checked) {
      expect(event).toMatchObject({ attempt: 0, willRetry: true, source: { name: queue } });
      expect(isSwitchyardError(event.error, "TRANSPORT_ERROR")).toBe(true);
      if (options.secret) expect(String(event.error)).not.toContain(options.secret);
    }

    const second = handledOnce(2);
    await producer.send(queue, Ping, { n: 2 });
    await second;
  } finally {
    await Promise.allSettled([consumer.close(), producer.close()]);
  }
}
