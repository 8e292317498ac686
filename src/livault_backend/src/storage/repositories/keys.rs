//! vetKeys records: the cached public key of the configured master key, the canister-wide
//! derivation counters and each vault's derivation counters.
//!
//! All three live in one `StableBTreeMap` under a tagged key `(tag, id)` (the persisted
//! format of memory `VETKEYS`): `(0, 0)` public key, `(1, 0)` totals, `(2, vault)` a vault's
//! usage, each with the [`KeyRecord`] variant of its tag. Only this module builds those keys.
//! The rules (who may derive, the limits, what a failed call gives back) are `domain::keys`.

use ic_stable_structures::StableBTreeMap;

use crate::model::keys::{KeyRecord, KeyTotals, VaultKeyUsage, VetKdPublicKey};
use crate::model::types::VaultId;
use crate::storage::state::Mem;

const TAG_PUBLIC_KEY: u8 = 0;
const TAG_TOTALS: u8 = 1;
const TAG_USAGE: u8 = 2;

/// The vetKeys map.
pub struct KeyRepository {
    map: StableBTreeMap<(u8, u64), KeyRecord, Mem>,
}

impl KeyRepository {
    /// Opens the map over `memory`.
    pub fn init(memory: Mem) -> Self {
        KeyRepository {
            map: StableBTreeMap::init(memory),
        }
    }

    /// The cached public key, whatever master key and context it belongs to.
    pub fn public_key(&self) -> Option<VetKdPublicKey> {
        match self.map.get(&(TAG_PUBLIC_KEY, 0)) {
            Some(KeyRecord::PublicKey(pk)) => Some(pk),
            _ => None,
        }
    }

    /// Caches `public_key` (replaces the one cached before).
    pub fn cache_public_key(&mut self, public_key: VetKdPublicKey) {
        self.map
            .insert((TAG_PUBLIC_KEY, 0), KeyRecord::PublicKey(public_key));
    }

    /// The canister-wide counters (all zero before the first derivation).
    pub fn totals(&self) -> KeyTotals {
        match self.map.get(&(TAG_TOTALS, 0)) {
            Some(KeyRecord::Totals(t)) => t,
            _ => KeyTotals::default(),
        }
    }

    /// Writes the canister-wide counters.
    pub fn set_totals(&mut self, totals: KeyTotals) {
        self.map.insert((TAG_TOTALS, 0), KeyRecord::Totals(totals));
    }

    /// Vault `vault`'s derivation counters (all zero if it has none).
    pub fn usage(&self, vault: VaultId) -> VaultKeyUsage {
        match self.map.get(&(TAG_USAGE, vault)) {
            Some(KeyRecord::Usage(u)) => u,
            _ => VaultKeyUsage::default(),
        }
    }

    /// Writes vault `vault`'s derivation counters.
    pub fn set_usage(&mut self, vault: VaultId, usage: VaultKeyUsage) {
        self.map.insert((TAG_USAGE, vault), KeyRecord::Usage(usage));
    }

    /// Changes vault `vault`'s derivation counters with `f` if it has any; writes nothing
    /// (and returns `false`) if it has none, e.g. because the vault was purged or erased
    /// while a derivation was in flight.
    pub fn update_existing_usage(
        &mut self,
        vault: VaultId,
        f: impl FnOnce(&mut VaultKeyUsage),
    ) -> bool {
        match self.map.get(&(TAG_USAGE, vault)) {
            Some(KeyRecord::Usage(mut u)) => {
                f(&mut u);
                self.map.insert((TAG_USAGE, vault), KeyRecord::Usage(u));
                true
            }
            _ => false,
        }
    }

    /// Drops vault `vault`'s derivation counters (the vault is purged or erased).
    pub fn forget_vault(&mut self, vault: VaultId) {
        self.map.remove(&(TAG_USAGE, vault));
    }

    /// The map's own walk: every entry is under a known tag with the record variant of that
    /// tag, and the public key and the totals are under id 0.
    pub fn check_invariants(&self) -> Result<(), String> {
        for entry in self.map.iter() {
            let ((tag, id), record) = entry.into_pair();
            let fits = match (tag, &record) {
                (TAG_PUBLIC_KEY, KeyRecord::PublicKey(_)) | (TAG_TOTALS, KeyRecord::Totals(_)) => {
                    id == 0
                }
                (TAG_USAGE, KeyRecord::Usage(_)) => true,
                _ => false,
            };
            if !fits {
                return Err(format!(
                    "vetKeys entry ({tag}, {id}) holds a {} record",
                    match record {
                        KeyRecord::PublicKey(_) => "public key",
                        KeyRecord::Totals(_) => "totals",
                        KeyRecord::Usage(_) => "usage",
                    }
                ));
            }
        }
        Ok(())
    }

    /// Stores `record` under `key` as given, bypassing the typed methods (tests of the walk).
    #[cfg(test)]
    pub(in crate::storage) fn insert_raw(&mut self, key: (u8, u64), record: KeyRecord) {
        self.map.insert(key, record);
    }
}

#[cfg(test)]
mod tests {
    use candid::Principal;
    use ic_stable_structures::memory_manager::MemoryManager;
    use ic_stable_structures::DefaultMemoryImpl;

    use super::*;
    use crate::model::keys::CallerDay;
    use crate::storage::memory::VETKEYS;

    fn public_key(name: &str) -> VetKdPublicKey {
        VetKdPublicKey {
            key_name: name.into(),
            context: b"ctx".to_vec(),
            public_key: vec![7; 96],
            fetched_at: 5,
        }
    }

    fn usage(count: u32) -> VaultKeyUsage {
        VaultKeyUsage {
            window_start: 10,
            window_count: count,
            callers: vec![CallerDay {
                principal: Principal::from_slice(&[1; 29]),
                day: 3,
                count,
            }],
        }
    }

    /// A release after the vault's counters were forgotten (purge or erase during the call)
    /// writes nothing; one for a vault with counters changes them.
    #[test]
    fn updating_usage_touches_only_vaults_that_have_counters() {
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        let mut keys = KeyRepository::init(mm.get(VETKEYS));
        keys.set_usage(4, usage(2));
        keys.forget_vault(4);
        assert!(!keys.update_existing_usage(4, |u| u.window_count = 0));
        assert!(
            keys.map.get(&(TAG_USAGE, 4)).is_none(),
            "no orphan counters"
        );
        keys.set_usage(5, usage(2));
        assert!(keys.update_existing_usage(5, |u| u.window_count -= 1));
        assert_eq!(keys.usage(5).window_count, 1);
    }

    /// The typed methods write the tagged keys the map has always held (no persisted change),
    /// read back what they wrote, and survive reopening the memory.
    #[test]
    fn typed_methods_write_the_tagged_keys_and_read_back() {
        let memory = DefaultMemoryImpl::default();
        let mm = MemoryManager::init(memory.clone());
        let mut keys = KeyRepository::init(mm.get(VETKEYS));
        assert_eq!(keys.public_key(), None);
        assert_eq!(keys.totals(), KeyTotals::default());
        assert_eq!(keys.usage(4), VaultKeyUsage::default());

        keys.cache_public_key(public_key("a"));
        keys.cache_public_key(public_key("b"));
        let totals = KeyTotals {
            derived: 3,
            cycles: 9,
            failed: 1,
            unpaid_day: 2,
            unpaid_count: 1,
        };
        keys.set_totals(totals.clone());
        keys.set_usage(4, usage(1));
        keys.set_usage(9, usage(2));
        keys.set_usage(4, usage(3));
        assert_eq!(keys.check_invariants(), Ok(()));

        drop(keys);
        // What a plain map over the same memory (the format before the repository) reads.
        let plain: StableBTreeMap<(u8, u64), KeyRecord, Mem> =
            StableBTreeMap::init(MemoryManager::init(memory.clone()).get(VETKEYS));
        let stored: Vec<((u8, u64), KeyRecord)> = plain.iter().map(|e| e.into_pair()).collect();
        drop(plain);
        let mut keys = KeyRepository::init(MemoryManager::init(memory.clone()).get(VETKEYS));
        assert_eq!(
            stored,
            vec![
                ((0, 0), KeyRecord::PublicKey(public_key("b"))),
                ((1, 0), KeyRecord::Totals(totals.clone())),
                ((2, 4), KeyRecord::Usage(usage(3))),
                ((2, 9), KeyRecord::Usage(usage(2))),
            ]
        );

        keys.forget_vault(4);
        keys.forget_vault(5);
        assert_eq!(keys.usage(4), VaultKeyUsage::default());
        assert_eq!(keys.usage(9), usage(2));
        drop(keys);

        let again = KeyRepository::init(MemoryManager::init(memory).get(VETKEYS));
        assert_eq!(again.public_key(), Some(public_key("b")));
        assert_eq!(again.totals(), totals);
        assert_eq!(again.usage(9), usage(2));
        assert_eq!(again.usage(4), VaultKeyUsage::default());
    }

    #[test]
    fn the_walk_finds_misplaced_records() {
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        let mut keys = KeyRepository::init(mm.get(VETKEYS));
        keys.insert_raw((TAG_USAGE, 3), KeyRecord::Totals(KeyTotals::default()));
        assert_eq!(
            keys.check_invariants(),
            Err("vetKeys entry (2, 3) holds a totals record".into())
        );
        keys.forget_vault(3);
        keys.insert_raw((TAG_TOTALS, 1), KeyRecord::Totals(KeyTotals::default()));
        assert!(keys.check_invariants().unwrap_err().contains("(1, 1)"));
        keys.insert_raw((TAG_TOTALS, 1), KeyRecord::Usage(usage(1)));
        keys.insert_raw((7, 0), KeyRecord::Usage(usage(1)));
        assert!(keys.check_invariants().is_err());
    }
}
