//! Per-principal token bucket kept in heap memory (SPEC §13): capacity 20, refill 1 per second.
//!
//! Heap state is lost on upgrade, which only refills everyone's bucket. The map is bounded:
//! when it grows past [`MAX_TRACKED`] principals, buckets that are full again are dropped.

use std::collections::HashMap;

use candid::Principal;

use super::error::{VaultError, VaultResult};
use crate::model::types::NANOS_PER_SEC;

/// Bucket capacity (calls).
pub const CAPACITY: u64 = 20;
/// Refill rate: one call per this many nanoseconds.
pub const REFILL_NS: u64 = NANOS_PER_SEC;
/// Principals tracked before full buckets are pruned.
pub const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens left after the last take.
    tokens: u64,
    /// Time of the last refill accounting (ns).
    at: u64,
}

impl Bucket {
    fn refilled(self, now: u64) -> Bucket {
        let elapsed = now.saturating_sub(self.at);
        let gained = elapsed / REFILL_NS;
        if self.tokens + gained.min(CAPACITY) >= CAPACITY {
            Bucket {
                tokens: CAPACITY,
                at: now,
            }
        } else {
            Bucket {
                tokens: self.tokens + gained,
                at: self.at + gained * REFILL_NS,
            }
        }
    }
}

/// The token buckets of all principals.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<Principal, Bucket>,
}

impl RateLimiter {
    /// Takes one token for `who` at `now`, or says how long to wait.
    pub fn take(&mut self, who: Principal, now: u64) -> VaultResult<()> {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&who) {
            self.prune(now);
        }
        let bucket = self
            .buckets
            .get(&who)
            .copied()
            .unwrap_or(Bucket {
                tokens: CAPACITY,
                at: now,
            })
            .refilled(now);
        if bucket.tokens == 0 {
            let next = bucket.at + REFILL_NS;
            let wait_ns = next.saturating_sub(now);
            self.buckets.insert(who, bucket);
            return Err(VaultError::RateLimited {
                retry_after_secs: wait_ns.div_ceil(NANOS_PER_SEC).max(1),
            });
        }
        self.buckets.insert(
            who,
            Bucket {
                tokens: bucket.tokens - 1,
                at: bucket.at,
            },
        );
        Ok(())
    }

    /// Drops buckets that have refilled completely (they carry no information).
    pub fn prune(&mut self, now: u64) {
        self.buckets
            .retain(|_, b| b.refilled(now).tokens < CAPACITY);
    }

    /// Principals currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    #[test]
    fn burst_of_capacity_then_limited() {
        let mut rl = RateLimiter::default();
        let t = 1_000 * NANOS_PER_SEC;
        for _ in 0..CAPACITY {
            rl.take(p(1), t).unwrap();
        }
        assert_eq!(
            rl.take(p(1), t),
            Err(VaultError::RateLimited {
                retry_after_secs: 1
            })
        );
        // Other principals are independent.
        rl.take(p(2), t).unwrap();
    }

    #[test]
    fn refills_one_per_second() {
        let mut rl = RateLimiter::default();
        let t = 1_000 * NANOS_PER_SEC;
        for _ in 0..CAPACITY {
            rl.take(p(1), t).unwrap();
        }
        assert!(rl.take(p(1), t + NANOS_PER_SEC / 2).is_err());
        rl.take(p(1), t + NANOS_PER_SEC).unwrap();
        assert!(rl.take(p(1), t + NANOS_PER_SEC).is_err());
        // Three seconds later: three more calls, not four.
        let later = t + 4 * NANOS_PER_SEC;
        for _ in 0..3 {
            rl.take(p(1), later).unwrap();
        }
        assert!(rl.take(p(1), later).is_err());
        // A long pause refills up to the capacity, not beyond.
        let much_later = later + 1_000 * NANOS_PER_SEC;
        for _ in 0..CAPACITY {
            rl.take(p(1), much_later).unwrap();
        }
        assert!(rl.take(p(1), much_later).is_err());
    }

    #[test]
    fn map_stays_bounded() {
        let mut rl = RateLimiter::default();
        let t = 1_000 * NANOS_PER_SEC;
        for i in 0..MAX_TRACKED as u32 {
            let mut bytes = [0u8; 29];
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            rl.take(Principal::from_slice(&bytes), t).unwrap();
        }
        assert_eq!(rl.tracked(), MAX_TRACKED);
        // 20 s later every bucket is full again: a new principal prunes them.
        rl.take(p(7), t + 20 * NANOS_PER_SEC).unwrap();
        assert_eq!(rl.tracked(), 1);
    }
}
