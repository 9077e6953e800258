export interface RetryOptions {
  /** Deliveries in all, the first included, before the message is dead-lettered. Default 5. */
  maxAttempts: number;
  /** Delay before the second attempt. Default 100 ms. */
  initialDelayMs: number;
  /** Upper bound of any delay. Default 30 s. */
  maxDelayMs: number;
  /** Growth per attempt. Default 2. */
  multiplier: number;
  /** Fraction of the delay that is randomised (0 = none, 1 = full jitter). Default 0.2. */
  jitter: number;
}

export const defaultRetry: RetryOptions = {
  maxAttempts: 5,
  initialDelayMs: 100,
  maxDelayMs: 30_000,
  multiplier: 2,
  jitter: 0.2,
};

/** Exponential backoff with jitter: the delay before attempt `attempt + 1`. */
export function backoffDelay(
  attempt: number,
  options: RetryOptions,
  random: () => number = Math.random,
): number {
  const exponential = options.initialDelayMs * options.multiplier ** Math.max(0, attempt - 1);
  const capped = Math.min(options.maxDelayMs, exponential);
  return Math.max(0, Math.round(capped * (1 - options.jitter * random())));
}
