//! Per-principal counters of one UTC day: vaults created (`VAULT_CREATIONS`) and downloads
//! requested (`DOWNLOAD_COUNTERS_BY_DAY`). Keyed `(day, principal)`, so the counters of past
//! days are a prefix of the map and a collector never looks at today's.
//!
//! The collector ([`DailyCounters::collect_before`]) empties the map at once when every
//! counter is from a past day (a cost that does not depend on how many it holds), else
//! removes at most `max` from the front. The download counters were keyed
//! `(principal, day)` until layout 7: collecting them scanned every counter of the day on
//! every tick (`State::migrate_download_counters_to_7` re-keys them).

use candid::Principal;
use ic_stable_structures::StableBTreeMap;

use crate::storage::state::Mem;

/// Counters `(day, principal) → count` of one kind.
pub struct DailyCounters {
    map: StableBTreeMap<(u64, Principal), u32, Mem>,
}

impl DailyCounters {
    /// Opens the counters over `memory`.
    pub fn init(memory: Mem) -> Self {
        DailyCounters {
            map: StableBTreeMap::init(memory),
        }
    }

    /// `who`'s count on `day` (0 when it has none).
    pub fn get(&self, day: u64, who: Principal) -> u32 {
        self.map.get(&(day, who)).unwrap_or(0)
    }

    /// Counts one more for `who` on `day`, whose count this message read as `seen` with
    /// [`Self::get`] (the callers check a limit first): one B-tree write, no second read.
    /// Returns the new count.
    pub fn increment_from(&mut self, day: u64, who: Principal, seen: u32) -> u32 {
        debug_assert_eq!(seen, self.get(day, who), "BUG: a stale count");
        let n = seen.saturating_add(1);
        self.map.insert((day, who), n);
        n
    }

    /// Sets `who`'s count on `day` (migrations).
    pub(in crate::storage) fn set(&mut self, day: u64, who: Principal, n: u32) {
        self.map.insert((day, who), n);
    }

    /// Removes counters of days before `today`: all of them at once when no counter is from
    /// `today` or later, else at most `max` from the front. Returns how many went.
    pub fn collect_before(&mut self, today: u64, max: usize) -> usize {
        // The oldest first: when it is today's, nothing is past and this costs one descent.
        match self.map.first_key_value() {
            Some(((oldest, _), _)) if oldest < today => {}
            _ => return 0,
        }
        if let Some(((newest, _), _)) = self.map.last_key_value() {
            if newest < today {
                let all = self.map.len() as usize;
                self.map.clear_new();
                return all;
            }
        }
        let old: Vec<(u64, Principal)> = self
            .map
            .keys_range(..(today, Principal::management_canister()))
            .take(max)
            .collect();
        for key in &old {
            self.map.remove(key);
        }
        old.len()
    }

    /// How many counters there are.
    pub fn len(&self) -> u64 {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every counter `((day, principal), count)`, ascending.
    pub fn iter(&self) -> impl Iterator<Item = ((u64, Principal), u32)> + '_ {
        self.map.iter().map(|e| e.into_pair())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
    use ic_stable_structures::DefaultMemoryImpl;
    use proptest::prelude::*;

    use super::*;

    fn counters() -> DailyCounters {
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        DailyCounters::init(mm.get(MemoryId::new(0)))
    }

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 10])
    }

    #[test]
    fn past_days_go_and_today_stays() {
        let mut c = counters();
        for who in 0..5 {
            c.increment_from(10, p(who), 0);
        }
        c.increment_from(11, p(1), 0);
        assert_eq!(c.increment_from(11, p(1), 1), 2);
        assert_eq!(c.get(11, p(1)), 2);
        assert_eq!(c.get(11, p(2)), 0);
        assert_eq!(c.collect_before(11, 2), 2);
        assert_eq!(c.collect_before(11, 2), 2);
        assert_eq!(c.collect_before(11, 2), 1);
        assert_eq!(c.collect_before(11, 2), 0);
        assert_eq!(c.iter().collect::<Vec<_>>(), [((11, p(1)), 2)]);
        // Every counter past: all at once, whatever `max`.
        assert_eq!(c.collect_before(12, 0), 1);
        assert!(c.is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Increment { day: u64, who: u8 },
        Collect { today: u64, max: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..6, 0u8..6).prop_map(|(day, who)| Op::Increment { day, who }),
            1 => (0u64..7, 0usize..4).prop_map(|(today, max)| Op::Collect { today, max }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::storage::model_test::cases(64)))]
        #[test]
        fn random_operations_match_a_model(ops in prop::collection::vec(op(), 1..80)) {
            let mut c = counters();
            let mut model: BTreeMap<(u64, Principal), u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Increment { day, who } => {
                        let n = model.entry((day, p(who))).or_default();
                        let seen = c.get(day, p(who));
                        prop_assert_eq!(seen, *n);
                        *n += 1;
                        prop_assert_eq!(c.increment_from(day, p(who), seen), *n);
                    }
                    Op::Collect { today, max } => {
                        let past: Vec<_> = model.range(..(today, Principal::management_canister())).map(|(k, _)| *k).collect();
                        let n = if past.len() == model.len() { past.len() } else { past.len().min(max) };
                        for k in &past[..n] {
                            model.remove(k);
                        }
                        prop_assert_eq!(c.collect_before(today, max), n);
                    }
                }
                prop_assert_eq!(c.iter().collect::<BTreeMap<_, _>>(), model.clone());
                prop_assert_eq!(c.len(), model.len() as u64);
            }
        }
    }
}
