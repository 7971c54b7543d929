/**
 * C8: one download per manager and kind per cooldown window. The store is the single place that
 * decides who wins a race: exactly one of many concurrent acquires for the same key succeeds.
 */
export type CooldownAcquireInput = {
  /** The domain's cooldownKey(channelId, managerId, kind). */
  key: string;
  /** Who holds it: the exportId being created, so a retry of the same request is recognised. */
  holder: string;
  now: Date;
  durationSeconds: number;
};

export type CooldownAcquireResult =
  | { acquired: true; retryAfterSeconds: 0 }
  | { acquired: false; retryAfterSeconds: number; holder?: string; acquiredAt?: string };

export interface CooldownStore {
  /**
   * Takes the cooldown when it is free, expired (even if the item still exists: TTL deletion lags
   * hours to days) or already held by the same holder (an idempotent retry).
   */
  acquire(input: CooldownAcquireInput): Promise<CooldownAcquireResult>;
  /** Gives it back, only if `holder` still holds it (never frees someone else's). */
  release(key: string, holder: string): Promise<void>;
}
