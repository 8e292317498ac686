//! The stable header: the layout version, id counters, per-status vault counts, content page
//! counters and the `get_metrics` aggregates, in one cell.

use ic_stable_structures::StableCell;

use crate::model::records::{MetricsCounters, StorageHeader, LAYOUT_VERSION};
use crate::model::types::VaultStatus;
use crate::storage::state::Mem;

/// The header cell. Reads are free (the cell caches its value); every write goes through
/// one of the methods below, which read, change and write the whole cell once.
pub struct HeaderRepository {
    cell: StableCell<StorageHeader, Mem>,
}

impl HeaderRepository {
    /// Opens the header over `memory` (a default header on empty memory).
    pub fn init(memory: Mem) -> Self {
        HeaderRepository {
            cell: StableCell::init(memory, StorageHeader::default()),
        }
    }

    /// The header as stored.
    pub fn get(&self) -> &StorageHeader {
        self.cell.get()
    }

    /// Applies `f` to the header and writes it back; returns what `f` returns.
    fn modify<R>(&mut self, f: impl FnOnce(&mut StorageHeader) -> R) -> R {
        let mut header = self.cell.get().clone();
        let out = f(&mut header);
        self.cell.set(header);
        out
    }

    /// Replaces the whole header (storage-internal: page allocator, tests of migrations).
    pub(in crate::storage) fn set(&mut self, header: StorageHeader) {
        self.cell.set(header);
    }

    /// Marks the memory with the current layout version.
    pub fn stamp_layout(&mut self) {
        self.modify(|h| h.layout_version = LAYOUT_VERSION);
    }

    /// Hands out the next vault id.
    pub fn next_vault_id(&mut self) -> u64 {
        self.modify(|h| {
            let id = h.next_vault_id;
            h.next_vault_id += 1;
            id
        })
    }

    /// Hands out the next item id or ticket id (see [`IdKind`]; ids start at 1).
    pub fn next_id(&mut self, kind: IdKind) -> u64 {
        self.modify(|h| {
            let slot = match kind {
                IdKind::Item => &mut h.next_item_id,
                IdKind::Ticket => &mut h.next_ticket_id,
            };
            let id = (*slot).max(1);
            *slot = id + 1;
            id
        })
    }

    /// Hands out the ids of a new upload and of its blob, in one write.
    pub fn next_upload_ids(&mut self) -> (u64, u64) {
        self.modify(|h| {
            let upload_id = h.next_upload_id.max(1);
            let blob_id = h.next_blob_id.max(1);
            h.next_upload_id = upload_id + 1;
            h.next_blob_id = blob_id + 1;
            (upload_id, blob_id)
        })
    }

    /// Vaults in `status` (tombstones included).
    pub fn status_count(&self, status: VaultStatus) -> u64 {
        self.get()
            .status_counts
            .get(status.index())
            .copied()
            .unwrap_or(0)
    }

    /// Moves one vault between the per-status counts (`None`: not counted before / no
    /// longer counted). Only the vault repository calls it.
    pub(in crate::storage) fn count_status(
        &mut self,
        from: Option<VaultStatus>,
        to: Option<VaultStatus>,
    ) {
        if from == to {
            return;
        }
        self.modify(|h| {
            if let Some(from) = from {
                h.status_counts[from.index()] = h.status_counts[from.index()].saturating_sub(1);
            }
            if let Some(to) = to {
                h.status_counts[to.index()] += 1;
            }
        });
    }

    /// Moves the `get_metrics` storage totals by one vault's change of `(committed,
    /// reserved)` bytes from `before` to `after` (never below zero). Only the vault
    /// repository calls it, when it writes a vault whose numbers changed.
    pub(in crate::storage) fn move_storage(&mut self, before: (u64, u64), after: (u64, u64)) {
        if before == after {
            return;
        }
        let shift = |total: u64, from: u64, to: u64| {
            if to >= from {
                total.saturating_add(to - from)
            } else {
                total.saturating_sub(from - to)
            }
        };
        self.modify(|h| {
            let c = &mut h.counters;
            c.storage_committed_bytes = shift(c.storage_committed_bytes, before.0, after.0);
            c.storage_reserved_bytes = shift(c.storage_reserved_bytes, before.1, after.1);
        });
    }

    /// Applies `f` to the `get_metrics` aggregates.
    pub fn update_counters(&mut self, f: impl FnOnce(&mut MetricsCounters)) {
        self.modify(|h| f(&mut h.counters));
    }

    /// Replaces the aggregates and marks them as maintained at `version` (the recount of
    /// `post_upgrade` for a header written before they existed).
    pub fn replace_counters(&mut self, counters: MetricsCounters, version: u32) {
        self.modify(|h| {
            h.counters = counters;
            h.counters_version = version;
        });
    }

    /// Moves the download-ticket collector's resume point.
    pub fn set_tickets_collected_below(&mut self, below: u64) {
        self.modify(|h| h.tickets_collected_below = below);
    }
}

/// Id counters handed out one at a time (vault ids: [`HeaderRepository::next_vault_id`];
/// upload and blob ids: [`HeaderRepository::next_upload_ids`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Item,
    Ticket,
}
