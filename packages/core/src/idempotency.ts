/**
 * Remembers which message ids a consumer has handled, so a redelivered duplicate is dropped.
 * `claim` must be atomic: of two concurrent claims of one key exactly one returns true.
 */
export interface IdempotencyStore {
  /** True when the key was not claimed yet (and is now, for `ttlMs`). */
  claim(key: string, ttlMs: number): Promise<boolean>;
  /** Forget a claim, so a failed handling can be retried. */
  release(key: string): Promise<void>;
  /**
   * Optional: mark a claimed key handled, kept for `ttlMs` from now. A store that has it is claimed
   * first for a short processing lease only, so the redelivery of a message whose consumer died in
   * the handler (a crash, a kill) is handled once the lease runs out, instead of being skipped as a
   * duplicate for the whole TTL. Without it, the claim is for the TTL from the start.
   */
  complete?(key: string, ttlMs: number): Promise<void>;
}

/** In-process store with expiry. Bounded by TTL; expired keys are swept as new ones arrive. */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly #expiresAt = new Map<string, number>();
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const now = this.#now();
    this.#sweep(now);
    const expiry = this.#expiresAt.get(key);
    if (expiry !== undefined && expiry > now) return false;
    // Re-inserting keeps the map ordered by insertion, which the sweep relies on for equal TTLs.
    this.#expiresAt.delete(key);
    this.#expiresAt.set(key, now + ttlMs);
    return true;
  }

  async release(key: string): Promise<void> {
    this.#expiresAt.delete(key);
  }

  async complete(key: string, ttlMs: number): Promise<void> {
    this.#expiresAt.delete(key);
    this.#expiresAt.set(key, this.#now() + ttlMs);
  }

  get size(): number {
    return this.#expiresAt.size;
  }

  #sweep(now: number): void {
    for (const [key, expiry] of this.#expiresAt) {
      if (expiry > now) break;
      this.#expiresAt.delete(key);
    }
  }
}
