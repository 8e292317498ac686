//! Recovery codes: `sha256(code) → record` (memory `RECOVERY_CODES`).
//!
//! A table without an index of its own: a vault finds its active code through its
//! `membership.recovery_code_hash` (a vault field; the storage walk checks that it names an
//! active code of that vault). Kept apart from the invites (see the `invites` module docs).

use ic_stable_structures::StableBTreeMap;

use crate::model::records::RecoveryCodeRecord;
use crate::storage::state::Mem;

/// The recovery-code table.
pub struct RecoveryCodeRepository {
    /// `sha256(code) → record`.
    table: StableBTreeMap<[u8; 32], RecoveryCodeRecord, Mem>,
}

impl RecoveryCodeRepository {
    /// Opens the table over `memory`.
    pub fn init(memory: Mem) -> Self {
        RecoveryCodeRepository {
            table: StableBTreeMap::init(memory),
        }
    }

    /// The code hashing to `hash`.
    pub fn get(&self, hash: &[u8; 32]) -> Option<RecoveryCodeRecord> {
        self.table.get(hash)
    }

    /// Whether a code hashing to `hash` is stored.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.table.contains_key(hash)
    }

    /// Stores a newly issued code. The caller has made sure the hash is free
    /// ([`Self::contains`]).
    pub fn insert_new(&mut self, hash: [u8; 32], record: &RecoveryCodeRecord) {
        debug_assert!(!self.table.contains_key(&hash), "recovery code reused");
        self.table.insert(hash, record.clone());
    }

    /// Writes a code back whose state changed (revoked when a member joined, used).
    pub fn save(&mut self, hash: [u8; 32], record: &RecoveryCodeRecord) {
        self.table.insert(hash, record.clone());
    }

    /// Forgets a code (replaced, revoked by the owner, used for a transfer, tombstoned).
    pub fn remove(&mut self, hash: &[u8; 32]) {
        self.table.remove(hash);
    }

    /// Every code `(hash, record)`, in hash order (tests, invariant checks).
    pub fn iter(&self) -> impl Iterator<Item = ([u8; 32], RecoveryCodeRecord)> + '_ {
        self.table.iter().map(|e| e.into_pair())
    }

    /// Number of stored codes.
    pub fn len(&self) -> u64 {
        self.table.len()
    }

    /// Whether no code is stored.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
    use ic_stable_structures::DefaultMemoryImpl;

    use super::*;
    use crate::model::records::RecoveryState;

    #[test]
    fn codes_are_issued_changed_and_forgotten() {
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        let mut r = RecoveryCodeRepository::init(mm.get(MemoryId::new(0)));
        let mut code = RecoveryCodeRecord {
            vault_id: 7,
            bypass_quorum: false,
            issued_at: 1,
            state: RecoveryState::Active,
        };
        assert!(r.is_empty());
        r.insert_new([1; 32], &code);
        assert!(r.contains(&[1; 32]) && !r.contains(&[2; 32]));
        code.state = RecoveryState::Revoked {
            at: 2,
            reason: "member joined".into(),
        };
        r.save([1; 32], &code);
        assert_eq!(r.get(&[1; 32]), Some(code.clone()));
        assert_eq!(r.len(), 1);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![([1; 32], code)]);
        r.remove(&[1; 32]);
        assert_eq!(r.get(&[1; 32]), None);
        assert!(r.is_empty());
    }
}
