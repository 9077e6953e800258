import cliProgress from "cli-progress";

/** A progress bar on the terminal, or nothing at all when there is none (pipes, --json). */
export interface Progress {
  /** The number of items to do, once known (it may grow while letters are still being read). */
  total(count: number): void;
  /** One more item done. */
  tick(): void;
  /** Draws the final state and leaves it on the screen. */
  stop(): void;
}

const silent: Progress = { total() {}, tick() {}, stop() {} };

/** `label [████░░░░] 40/100 | 41.2 msg/s | 00:01` on `terminal`; a no-op without one. */
export function progressBar(label: string, terminal: NodeJS.WriteStream | undefined): Progress {
  if (!terminal) return silent;
  const started = Date.now();
  let done = 0;
  let total = 0;
  const bar = new cliProgress.SingleBar(
    {
      stream: terminal,
      format: `${label} [{bar}] {value}/{total} | {rate} msg/s | {duration_formatted}`,
      barCompleteChar: "█",
      barIncompleteChar: "░",
      hideCursor: true,
      clearOnComplete: false,
      // cli-progress skips drawing on non-TTY streams unless told; ours is a TTY by construction.
      noTTYOutput: false,
      fps: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  const rate = () => (done / Math.max((Date.now() - started) / 1000, 0.001)).toFixed(1);
  // Drawn from the first letter on: a command that fails or finds nothing leaves no empty bar
  // (and no hidden cursor) behind.
  let drawing = false;
  const draw = () => {
    if (!drawing) bar.start(Math.max(total, done), done, { rate: rate() });
    drawing = true;
  };
  return {
    total(count) {
      total = count;
      draw();
      bar.setTotal(Math.max(total, done));
    },
    tick() {
      done++;
      draw();
      bar.setTotal(Math.max(total, done));
      bar.update(done, { rate: rate() });
    },
    stop() {
      if (!drawing) return;
      bar.update(done, { rate: rate() });
      bar.stop();
    },
  };
}

/** Items per second over an elapsed time, for summaries. */
export function ratePerSecond(count: number, elapsedMs: number): number {
  return Math.round((count / Math.max(elapsedMs / 1000, 0.001)) * 10) / 10;
}
