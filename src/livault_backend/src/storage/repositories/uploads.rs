//! Open uploads: for each upload a head (what is uploaded), its progress (chunks received,
//! hash state, last activity) and its encrypted metadata, plus two indexes (by last
//! activity, for the idle collector; by vault, for purges and the per-vault cap).
//!
//! All five live in one `StableBTreeMap` under a tagged key `(tag, a, b)` (the persisted
//! format of memory `UPLOADS`): `(0, upload, 0)` head, `(1, upload, 0)` progress,
//! `(2, last_activity, upload)` idle index, `(3, vault, upload)` vault index,
//! `(4, upload, 0)` metadata. Only this module builds those keys.

use ic_stable_structures::StableBTreeMap;

use crate::model::records::{UploadEntry, UploadHead, UploadProgress};
use crate::model::types::{UploadId, VaultId};
use crate::storage::state::Mem;

const TAG_HEAD: u8 = 0;
const TAG_PROGRESS: u8 = 1;
const TAG_BY_IDLE: u8 = 2;
const TAG_BY_VAULT: u8 = 3;
const TAG_META: u8 = 4;

/// The open uploads and their indexes.
pub struct UploadRepository {
    map: StableBTreeMap<(u8, u64, u64), UploadEntry, Mem>,
}

impl UploadRepository {
    /// Opens the map over `memory`.
    pub fn init(memory: Mem) -> Self {
        UploadRepository {
            map: StableBTreeMap::init(memory),
        }
    }

    /// The head of upload `id`.
    pub fn head(&self, id: UploadId) -> Option<UploadHead> {
        match self.map.get(&(TAG_HEAD, id, 0)) {
            Some(UploadEntry::Head(h)) => Some(h),
            _ => None,
        }
    }

    /// The progress of upload `id`.
    pub fn progress(&self, id: UploadId) -> Option<UploadProgress> {
        match self.map.get(&(TAG_PROGRESS, id, 0)) {
            Some(UploadEntry::Progress(p)) => Some(p),
            _ => None,
        }
    }

    /// The encrypted metadata of upload `id` (empty if none).
    pub fn meta(&self, id: UploadId) -> Vec<u8> {
        match self.map.get(&(TAG_META, id, 0)) {
            Some(UploadEntry::Meta(m)) => m,
            _ => Vec::new(),
        }
    }

    /// Stores a new upload with both index entries.
    pub fn insert(&mut self, head: &UploadHead, progress: &UploadProgress, meta: Vec<u8>) {
        let id = head.upload_id;
        self.map
            .insert((TAG_HEAD, id, 0), UploadEntry::Head(head.clone()));
        self.map.insert(
            (TAG_PROGRESS, id, 0),
            UploadEntry::Progress(progress.clone()),
        );
        self.map.insert((TAG_META, id, 0), UploadEntry::Meta(meta));
        self.map.insert(
            (TAG_BY_IDLE, progress.last_activity, id),
            UploadEntry::Index,
        );
        self.map
            .insert((TAG_BY_VAULT, head.vault_id, id), UploadEntry::Index);
    }

    /// Writes the new `progress` of upload `id`; `last_activity_before` is the activity time
    /// the idle index holds for it (the entry moves when the time changed).
    pub fn update_progress(
        &mut self,
        id: UploadId,
        last_activity_before: u64,
        progress: &UploadProgress,
    ) {
        if progress.last_activity != last_activity_before {
            self.map.remove(&(TAG_BY_IDLE, last_activity_before, id));
            self.map.insert(
                (TAG_BY_IDLE, progress.last_activity, id),
                UploadEntry::Index,
            );
        }
        self.map.insert(
            (TAG_PROGRESS, id, 0),
            UploadEntry::Progress(progress.clone()),
        );
    }

    /// Removes an upload's records and index entries (`progress`: its stored progress).
    pub fn remove(&mut self, head: &UploadHead, progress: &UploadProgress) {
        let id = head.upload_id;
        self.map.remove(&(TAG_HEAD, id, 0));
        self.map.remove(&(TAG_PROGRESS, id, 0));
        self.map.remove(&(TAG_META, id, 0));
        self.map.remove(&(TAG_BY_IDLE, progress.last_activity, id));
        self.map.remove(&(TAG_BY_VAULT, head.vault_id, id));
    }

    /// Ids of the uploads open in `vault`, ascending.
    pub fn open_in(&self, vault: VaultId) -> impl Iterator<Item = UploadId> + '_ {
        self.map
            .keys_range((TAG_BY_VAULT, vault, 0)..=(TAG_BY_VAULT, vault, u64::MAX))
            .map(|(_, _, id)| id)
    }

    /// `(last activity, upload id)` of the uploads last active at or before `cutoff`,
    /// oldest first.
    pub fn idle_since(&self, cutoff: u64) -> impl Iterator<Item = (u64, UploadId)> + '_ {
        self.map
            .keys_range((TAG_BY_IDLE, 0, 0)..=(TAG_BY_IDLE, cutoff, u64::MAX))
            .map(|(_, at, id)| (at, id))
    }

    /// Whether no upload is open (no entry of any kind).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry as stored (tests, invariant checks).
    pub fn raw_entries(&self) -> Vec<((u8, u64, u64), UploadEntry)> {
        self.map.iter().map(|e| e.into_pair()).collect()
    }
}
