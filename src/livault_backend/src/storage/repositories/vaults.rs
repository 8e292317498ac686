//! Vaults: the record table (dense ids, tombstones included) and the owner index (live
//! vaults only), with the per-status counts in the header.
//!
//! A vault is changed through a [`LoadedVault`]: it remembers the status, owner and storage
//! numbers it was loaded with, so [`VaultRepository::save`] moves the status count, the owner
//! index and the `get_metrics` storage totals itself, without reading the stored record
//! again. Callers cannot forget them: whatever changes a vault's storage numbers and saves
//! it moves the totals by exactly that change (no hand-written "storage changed" call). A plain [`VaultRecord`] (from
//! [`VaultRepository::get`]) cannot be saved: only a new vault enters through
//! [`VaultRepository::insert_new`].

use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use candid::Principal;

use super::header::HeaderRepository;
use crate::model::records::VaultRecord;
use crate::model::types::{VaultId, VaultStatus};
use crate::storage::owner_index::OwnerIndex;
use crate::storage::slab::{DenseTable, Slab};
use crate::storage::state::Mem;

/// The vault table and its owner index.
pub struct VaultRepository {
    /// `vault id → vault`, tombstones included.
    table: DenseTable<VaultRecord, Mem>,
    /// `(owner, vault)` for vaults that are not `Deleted` (a hash table in the same slab).
    by_owner: OwnerIndex<Mem>,
}

/// A vault loaded to be changed and saved. Derefs to the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedVault {
    record: VaultRecord,
    /// Status and owner as stored (what the counts and the owner index hold now).
    stored_status: VaultStatus,
    stored_owner: Principal,
    /// `(committed, reserved)` bytes as stored (what the header's storage totals include).
    stored_storage: (u64, u64),
}

/// A vault's storage numbers `(committed, reserved)`, as the header's totals sum them.
fn storage_of(vault: &VaultRecord) -> (u64, u64) {
    (vault.storage_committed_bytes, vault.storage_reserved_bytes)
}

impl LoadedVault {
    fn new(record: VaultRecord) -> Self {
        LoadedVault {
            stored_status: record.status,
            stored_owner: record.owner,
            stored_storage: storage_of(&record),
            record,
        }
    }

    /// The record (as changed so far).
    pub fn record(&self) -> &VaultRecord {
        &self.record
    }

    /// The record, leaving the repository's bookkeeping behind (for views and returns).
    pub fn into_record(self) -> VaultRecord {
        self.record
    }
}

impl Deref for LoadedVault {
    type Target = VaultRecord;
    fn deref(&self) -> &VaultRecord {
        &self.record
    }
}

impl DerefMut for LoadedVault {
    fn deref_mut(&mut self) -> &mut VaultRecord {
        &mut self.record
    }
}

impl VaultRepository {
    /// Opens the table (directory `dir` over `slab`) and the owner index (directory
    /// `by_owner` over the same slab; `salt` keys its hash if it is created now).
    pub fn init(dir: Mem, slab: Rc<Slab<Mem>>, by_owner: Mem, salt: [u8; 16]) -> Self {
        VaultRepository {
            by_owner: OwnerIndex::init(by_owner, slab.clone(), salt),
            table: DenseTable::init(dir, slab),
        }
    }

    /// A copy of vault `id`, to read.
    pub fn get(&self, id: &VaultId) -> Option<VaultRecord> {
        self.table.get(id)
    }

    /// Vault `id`, to change and [`save`](Self::save).
    pub fn load(&self, id: VaultId) -> Option<LoadedVault> {
        self.table.get(&id).map(LoadedVault::new)
    }

    /// Whether vault `id` exists (tombstones included).
    pub fn contains(&self, id: VaultId) -> bool {
        self.table.contains_key(&id)
    }

    /// Vaults with id ≥ `from`, ascending.
    pub fn range_from(&self, from: VaultId) -> impl Iterator<Item = (VaultId, VaultRecord)> + '_ {
        self.table.range_from(from)
    }

    /// Every vault, ascending by id.
    pub fn iter(&self) -> impl Iterator<Item = (VaultId, VaultRecord)> + '_ {
        self.table.iter()
    }

    /// Ids ≥ `from` of the live vaults `owner` owns, ascending.
    pub fn owned_by(&self, owner: Principal, from: VaultId) -> impl Iterator<Item = VaultId> {
        self.by_owner.owned_by(owner, from).into_iter()
    }

    /// Every owner-index entry `(owner, vault)`, ordered (walks the whole index: tests,
    /// invariant checks).
    pub fn owner_index(&self) -> impl Iterator<Item = (Principal, VaultId)> {
        self.by_owner.entries().into_iter()
    }

    /// Stores a new vault: its record, its owner-index entry, its status count and its
    /// storage numbers in the totals.
    pub fn insert_new(&mut self, header: &mut HeaderRepository, vault: VaultRecord) -> LoadedVault {
        debug_assert!(!self.table.contains_key(&vault.id), "vault id reused");
        self.table.put(vault.id, &vault);
        if vault.status != VaultStatus::Deleted {
            self.by_owner.insert(vault.owner, vault.id);
        }
        header.count_status(None, Some(vault.status));
        header.move_storage((0, 0), storage_of(&vault));
        LoadedVault::new(vault)
    }

    /// Writes `vault` back: the record, and where its status or owner changed since it was
    /// loaded, the status counts and the owner index (a `Deleted` vault leaves the index);
    /// where its storage numbers changed, the header's storage totals.
    pub fn save(&mut self, header: &mut HeaderRepository, vault: &mut LoadedVault) {
        let (id, status, owner) = (vault.record.id, vault.record.status, vault.record.owner);
        self.table.put(id, &vault.record);
        if status != vault.stored_status {
            header.count_status(Some(vault.stored_status), Some(status));
        }
        let storage = storage_of(&vault.record);
        header.move_storage(vault.stored_storage, storage);
        vault.stored_storage = storage;
        let indexed_before = vault.stored_status != VaultStatus::Deleted;
        let indexed_now = status != VaultStatus::Deleted;
        if indexed_before && (!indexed_now || owner != vault.stored_owner) {
            self.by_owner.remove(vault.stored_owner, id);
        }
        if indexed_now && (!indexed_before || owner != vault.stored_owner) {
            self.by_owner.insert(owner, id);
        }
        vault.stored_status = status;
        vault.stored_owner = owner;
    }

    /// Erases a vault entirely (an unpaid draft): record, owner-index entry, status count,
    /// its stored numbers in the storage totals. Its id stays used (ids come from a counter).
    pub fn erase(&mut self, header: &mut HeaderRepository, vault: &LoadedVault) {
        let id = vault.record.id;
        self.by_owner.remove(vault.stored_owner, id);
        header.count_status(Some(vault.stored_status), None);
        header.move_storage(vault.stored_storage, (0, 0));
        self.table.remove(&id);
    }

    /// Migration (layout 3): stores a record moved from the retired map as it is; the
    /// index and counts were written with it by the code of that layout.
    pub(in crate::storage) fn migrate_record(&mut self, vault: &VaultRecord) {
        self.table.put(vault.id, vault);
    }

    /// Migration (layout 6): builds the owner index from the retired B-tree's entries (into
    /// an empty index; see `OwnerIndex::bulk_load`).
    pub(in crate::storage) fn migrate_owner_index(
        &mut self,
        entries: impl Iterator<Item = (Principal, VaultId)>,
    ) {
        self.by_owner.bulk_load(entries);
    }

    /// Whether the owner index's hash is keyed by the subnet's randomness (re-keyed once).
    pub fn owner_salt_is_random(&self) -> bool {
        self.by_owner.salt_is_random()
    }

    /// Keys the owner index's hash with `salt` (16 bytes of the subnet's randomness),
    /// rewriting its buckets (`OwnerIndex::rekey`); the number of entries re-hashed.
    pub fn rekey_owner_index(&mut self, salt: [u8; 16]) -> u64 {
        self.by_owner.rekey(salt);
        self.by_owner.len()
    }

    /// The owner index's walk (`OwnerIndex::check_invariants`): the slab blocks it holds.
    pub(in crate::storage) fn check_owner_index(
        &self,
    ) -> Result<Vec<crate::storage::slab::Loc>, String> {
        self.by_owner.check_invariants()
    }

    /// The slab the vault records live in (for the storage-wide invariant walk).
    pub(in crate::storage) fn slab(&self) -> &crate::storage::slab::Slab<Mem> {
        self.table.slab()
    }

    /// The directory's walk (`DenseTable::check_invariants`): the slab blocks it holds.
    pub(in crate::storage) fn check_invariants(
        &self,
    ) -> Result<Vec<crate::storage::slab::Loc>, String> {
        self.table.check_invariants()
    }

    /// Number of vaults (walks the directory).
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.table.count()
    }

    /// Test fixtures: writes `vault` as it is, without counts or index (to build a state
    /// the code itself cannot reach, e.g. a status set directly).
    #[cfg(test)]
    pub fn put_unchecked(&mut self, vault: &VaultRecord) {
        self.table.put(vault.id, vault);
    }

    /// Test fixtures: an owner-index entry written directly.
    #[cfg(test)]
    pub fn index_unchecked(&mut self, owner: Principal, id: VaultId) {
        self.by_owner.insert(owner, id);
    }

    /// Test fixtures: an owner-index entry removed directly.
    #[cfg(test)]
    pub fn unindex_unchecked(&mut self, owner: Principal, id: VaultId) {
        self.by_owner.remove(owner, id);
    }
}
