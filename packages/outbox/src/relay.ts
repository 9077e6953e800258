import { type Bus, fromWire, isSwitchyardError, SwitchyardError } from "@switchyard/core";

export interface RelayOptions {
  /** Rows read and sent per round. Default 100. */
  batchSize?: number;
  /**
   * Fallback poll, and the standby's retry, in ms (a store's wake-up comes sooner). At most a third
   * of a SQLite outbox's `leaseMs`. Default 1000.
   */
  intervalMs?: number;
  /**
   * Failed attempts after which a row is parked (kept, marked failed, no longer sent). The errors of
   * an outage (`TRANSPORT_ERROR`, `TIMEOUT`, `CLOSED`) count as no attempt, so a broker that is away
   * never parks the backlog. Default 5.
   */
  maxAttempts?: number;
  /** Called with every error the relay recovers from (send failed, connection lost, lease lost). */
  onError?(error: unknown): void;
}

export interface Lag {
  /** Rows written and not yet sent (parked rows not counted; rows held behind them are). */
  unsent: number;
  /** Age of the oldest of those rows in ms (0 when none). */
  oldestAgeMs: number;
  /** Rows parked after `maxAttempts` failed attempts: kept for inspection, not sent. */
  parked: number;
}

export interface RelayStats {
  /** This relay holds the lock (PostgreSQL) or the lease (SQLite) and is the one sending. */
  leader: boolean;
  /** Messages this relay sent (and marked). */
  sent: number;
  batches: number;
  errors: number;
  /** Rows this relay parked. */
  parked: number;
}

export interface Relay {
  readonly stats: RelayStats;
  /** Resolves once this relay became the leader. */
  readonly elected: Promise<void>;
  lag(): Promise<Lag>;
  /** Stops after the batch in flight; gives up the leadership and its connection. */
  stop(): Promise<void>;
}

/** A row that could not be sent and will not be retried. */
export interface ParkedRow {
  seq: string;
  kind: "queue" | "topic";
  destination: string;
  id: string;
  key: string | null;
  attempts: number;
  /** The last send error's message. */
  error: string;
  failedAt: Date;
}

/** A row as a store reads it for the relay. */
export interface OutboxRow {
  seq: string;
  kind: "queue" | "topic";
  destination: string;
  id: string;
  key: string | null;
  headers: Record<string, string>;
  body: Uint8Array;
  attempts: number;
}

/** One relay's hold on a store: its connection (PostgreSQL) or its lease owner id (SQLite). */
export interface RelaySession {
  /**
   * Takes or keeps the leadership; false while another relay has it. Called before every batch,
   * so a relay that lost it (a lease taken over) stops before its next batch.
   */
  lead(): Promise<boolean>;
  /** False once the leadership may have passed to another relay since the last `lead()`. */
  leading(): boolean;
  /**
   * Up to `limit` sendable rows in insertion order: not parked, and not behind a parked row of the
   * same destination and key.
   */
  read(limit: number): Promise<OutboxRow[]>;
  /** Deletes sent rows. */
  remove(seqs: string[]): Promise<void>;
  /** Counts a failed attempt on each row; a row reaching `maxAttempts` is parked with its error. Returns how many were parked. */
  fail(failures: Array<{ seq: string; error: string }>, maxAttempts: number): Promise<number>;
  /** Gives up the leadership and the connection. */
  close(): Promise<void>;
}

export interface RelayStore {
  /** Opens a session; `wake` cuts the relay's pause short, `lost` ends the session with an error. */
  open(events: { wake(): void; lost(error: unknown): void }): Promise<RelaySession>;
  lag(): Promise<Lag>;
  /** The longest pause the leader may take between two `lead()` calls (a lease's margin). */
  maxIntervalMs?: number;
}

/** Errors that say the broker is away, not that the message is bad: they are no attempt. */
const TRANSIENT = new Set(["TRANSPORT_ERROR", "TIMEOUT", "CLOSED"]);

const message = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 2000);

/**
 * The relay loop both stores share: lead, read a batch, send it one transport call per destination
 * (rows in insertion order, so per-key order holds), delete what was sent. A destination whose call
 * fails is retried row by row, so a bad row is found, counted and eventually parked while the rows
 * of other keys go on; later rows of its key wait behind it.
 */
export function startRelay(bus: Bus, options: RelayOptions, store: RelayStore): Relay {
  const batchSize = options.batchSize ?? 100;
  const intervalMs = options.intervalMs ?? 1000;
  const maxAttempts = options.maxAttempts ?? 5;
  if (!Number.isInteger(batchSize) || batchSize < 1 || !(intervalMs >= 1)) {
    throw new SwitchyardError("CONFIG_INVALID", `relay needs an integer batchSize ≥ 1 and intervalMs ≥ 1`);
  }
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new SwitchyardError("CONFIG_INVALID", "relay needs an integer maxAttempts ≥ 1");
  }
  if (store.maxIntervalMs !== undefined && intervalMs > store.maxIntervalMs) {
    throw new SwitchyardError(
      "CONFIG_INVALID",
      `relay intervalMs ${intervalMs} must be at most ${store.maxIntervalMs} (a third of the lease)`,
    );
  }
  const stats: RelayStats = { leader: false, sent: 0, batches: 0, errors: 0, parked: 0 };
  let stopped = false;
  let notified = false;
  let wake: (() => void) | undefined;
  let onElected: () => void = () => {};
  const elected = new Promise<void>((resolve) => {
    onElected = resolve;
  });
  const report = (error: unknown) => {
    stats.errors++;
    options.onError?.(error);
  };
  /** Waits for a wake-up, the interval, or stop(). */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (notified || stopped) {
        notified = false;
        return resolve();
      }
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  const send = async (rows: OutboxRow[]) => {
    const { kind, destination } = rows[0]!;
    await bus.publishEnvelopes(
      { kind, name: destination },
      rows.map((row) =>
        fromWire({
          id: row.id,
          ...(row.key === null ? {} : { key: row.key }),
          headers: row.headers,
          body: row.body,
        }),
      ),
    );
  };

  /** Sends one round; returns the rows read, or -1 when something failed (back off). */
  const round = async (session: RelaySession): Promise<number> => {
    notified = false;
    const rows = await session.read(batchSize);
    if (rows.length === 0) return 0;
    const groups = new Map<string, OutboxRow[]>();
    for (const row of rows) {
      const id = `${row.kind}:${row.destination}`;
      let group = groups.get(id);
      if (!group) {
        group = [];
        groups.set(id, group);
      }
      group.push(row);
    }
    const sent: string[] = [];
    const failures: Array<{ seq: string; error: string }> = [];
    await Promise.all(
      [...groups.values()].map(async (group) => {
        try {
          await send(group);
          for (const row of group) sent.push(row.seq);
          return;
        } catch (error) {
          report(error);
          if (isSwitchyardError(error) && TRANSIENT.has(error.code)) return; // all of it next round
        }
        // Something in the group is refused: one by one, to find it. Keys behind a failed row wait.
        const blocked = new Set<string>();
        for (const row of group) {
          if (row.key !== null && blocked.has(row.key)) continue;
          try {
            await send([row]);
            sent.push(row.seq);
          } catch (error) {
            if (isSwitchyardError(error) && TRANSIENT.has(error.code)) return; // away now: the rest next round
            if (row.key !== null) blocked.add(row.key);
            failures.push({ seq: row.seq, error: message(error) });
          }
        }
      }),
    );
    if (sent.length > 0) {
      await session.remove(sent);
      stats.sent += sent.length;
      stats.batches++;
    }
    if (failures.length > 0) stats.parked += await session.fail(failures, maxAttempts);
    return sent.length === rows.length ? rows.length : -1;
  };

  const lead = async (): Promise<void> => {
    // This session's own: a late error of an earlier session's connection cannot end this one.
    let lostError: unknown;
    const checkLost = () => {
      if (lostError !== undefined) throw lostError;
    };
    const session = await store.open({
      wake: () => {
        notified = true;
        wake?.();
      },
      lost: (error) => {
        lostError ??= error;
        wake?.();
      },
    });
    try {
      while (!stopped) {
        checkLost();
        if (!(await session.lead())) {
          stats.leader = false;
          await pause(intervalMs); // standby
          continue;
        }
        if (!stats.leader) {
          stats.leader = true;
          onElected();
        }
        const n = await round(session);
        checkLost();
        if (!session.leading()) {
          // The batch outlasted the lease: another relay may be sending. Step down and compete again.
          stats.leader = false;
          throw new SwitchyardError(
            "TIMEOUT",
            "outbox relay: the lease expired during a batch; stepping down",
          );
        }
        if (stopped) break;
        if (n === -1 || n < batchSize) await pause(intervalMs);
      }
    } finally {
      stats.leader = false;
      await session.close().catch(() => {});
    }
  };

  const running = (async () => {
    while (!stopped) {
      try {
        await lead();
      } catch (error) {
        if (stopped) break;
        report(error);
        await pause(intervalMs);
      }
    }
  })();

  return {
    stats,
    elected,
    lag: () => store.lag(),
    async stop() {
      stopped = true;
      wake?.();
      await running;
    },
  };
}
