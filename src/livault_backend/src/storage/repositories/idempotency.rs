//! Idempotency keys: `sha256(caller ‖ key) → id` (memory `IDEMPOTENCY`) and, for the keys
//! of `create_vault`, the reverse `vault → sha256(caller ‖ key)` (memory
//! `IDEMPOTENCY_BY_VAULT`), through which a draft that is paid or erased drops its key.
//!
//! Two kinds of binding share the forward map (their hashes are domain-separated, so they
//! never collide): a vault creation's (`create_vault`: the id is a vault id, with its reverse
//! entry) and an open upload's (`begin_upload`: the id is an upload id; the upload's head
//! holds the hash, so it needs no reverse entry). Each kind is bound and released by one
//! method that writes both maps where both apply; the bytes are those the plain maps held
//! (the forward entry is written first, and dropped last, as the domain code did).

use std::collections::BTreeMap;

use ic_stable_structures::StableBTreeMap;

use crate::model::types::{UploadId, VaultId};
use crate::storage::state::Mem;

/// The idempotency keys and the reverse index of the vault creations' keys.
pub struct IdempotencyRepository {
    /// `key hash → vault id or upload id`.
    forward: StableBTreeMap<[u8; 32], u64, Mem>,
    /// `vault → key hash`, for the vault creations' keys only.
    by_vault: StableBTreeMap<VaultId, [u8; 32], Mem>,
}

impl IdempotencyRepository {
    /// Opens the keys over `forward` and the reverse index over `by_vault`.
    pub fn init(forward: Mem, by_vault: Mem) -> Self {
        IdempotencyRepository {
            forward: StableBTreeMap::init(forward),
            by_vault: StableBTreeMap::init(by_vault),
        }
    }

    /// The vault (or upload: the hashes differ) a key hash is bound to.
    pub fn lookup(&self, hash: &[u8; 32]) -> Option<u64> {
        self.forward.get(hash)
    }

    /// Binds a vault creation's key to the new draft `vault` (both maps).
    pub fn bind_vault(&mut self, hash: [u8; 32], vault: VaultId) {
        self.forward.insert(hash, vault);
        self.by_vault.insert(vault, hash);
    }

    /// Releases the key of `vault`, if it has one (it leaves `Draft`: paid or erased).
    pub fn release_vault(&mut self, vault: VaultId) {
        if let Some(hash) = self.by_vault.remove(&vault) {
            self.forward.remove(&hash);
        }
    }

    /// Binds an upload's key to the open upload `upload`.
    pub fn bind_upload(&mut self, hash: [u8; 32], upload: UploadId) {
        self.forward.insert(hash, upload);
    }

    /// Releases an upload's key (the upload is finished, aborted or collected).
    pub fn release_upload(&mut self, hash: &[u8; 32]) {
        self.forward.remove(hash);
    }

    /// The vault creations' bindings `(vault, key hash)`, ascending by vault.
    pub fn vault_bindings(&self) -> impl Iterator<Item = (VaultId, [u8; 32])> + '_ {
        self.by_vault.iter().map(|e| e.into_pair())
    }

    /// The reverse index agrees with the keys: each `vault → hash` entry has its key bound
    /// to that vault (so no two vaults share a key). Returns the other keys, `hash → id`:
    /// the uploads' bindings, which the storage walk checks against the open uploads.
    pub fn check_invariants(&self) -> Result<BTreeMap<[u8; 32], u64>, String> {
        let mut rest: BTreeMap<[u8; 32], u64> =
            self.forward.iter().map(|e| e.into_pair()).collect();
        for (vault, hash) in self.vault_bindings() {
            let bound = rest.remove(&hash);
            if bound != Some(vault) {
                return Err(format!(
                    "idempotency: vault {vault}'s key is bound to {bound:?} in the keys"
                ));
            }
        }
        Ok(rest)
    }

    /// Test fixtures: a key removed from the forward map only (to corrupt the index).
    #[cfg(test)]
    pub fn unbind_unchecked(&mut self, hash: &[u8; 32]) {
        self.forward.remove(hash);
    }

    /// Test fixtures: a reverse entry removed only (to corrupt the index).
    #[cfg(test)]
    pub fn unindex_unchecked(&mut self, vault: VaultId) {
        self.by_vault.remove(&vault);
    }
}

#[cfg(test)]
mod tests {
    use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
    use ic_stable_structures::DefaultMemoryImpl;

    use super::*;

    fn repo() -> IdempotencyRepository {
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        IdempotencyRepository::init(mm.get(MemoryId::new(0)), mm.get(MemoryId::new(1)))
    }

    #[test]
    fn bind_and_release_keep_both_maps_together() {
        let mut r = repo();
        r.bind_vault([1; 32], 7);
        r.bind_vault([2; 32], 8);
        r.bind_upload([3; 32], 7);
        assert_eq!(r.lookup(&[1; 32]), Some(7));
        assert_eq!(r.lookup(&[3; 32]), Some(7));
        assert_eq!(
            r.vault_bindings().collect::<Vec<_>>(),
            vec![(7, [1; 32]), (8, [2; 32])]
        );
        // Only the upload's key is left over for the storage walk.
        assert_eq!(r.check_invariants(), Ok(BTreeMap::from([([3; 32], 7)])));

        r.release_vault(7);
        r.release_vault(7);
        r.release_vault(9);
        assert_eq!(r.lookup(&[1; 32]), None);
        assert_eq!(r.lookup(&[3; 32]), Some(7), "the upload's key stays");
        r.release_upload(&[3; 32]);
        assert_eq!(r.lookup(&[3; 32]), None);
        assert_eq!(r.vault_bindings().collect::<Vec<_>>(), vec![(8, [2; 32])]);
        assert_eq!(r.check_invariants(), Ok(BTreeMap::new()));
    }

    #[test]
    fn the_walk_finds_a_reverse_entry_without_its_key() {
        let mut r = repo();
        r.bind_vault([1; 32], 7);
        r.unbind_unchecked(&[1; 32]);
        let err = r.check_invariants().unwrap_err();
        assert!(err.contains("vault 7's key is bound to None"), "{err}");

        // Two vaults claiming one key: the key names only one of them.
        let mut r = repo();
        r.bind_vault([1; 32], 7);
        r.bind_vault([1; 32], 8);
        assert!(r.check_invariants().is_err());

        // A key whose reverse entry is lost is left over (the storage walk then finds it is
        // no open upload's).
        let mut r = repo();
        r.bind_vault([1; 32], 7);
        r.unindex_unchecked(7);
        assert_eq!(r.check_invariants(), Ok(BTreeMap::from([([1; 32], 7)])));
    }
}
