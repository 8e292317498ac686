//! The stable structures of the canister, opened over one `MemoryManager`.

use candid::Principal;
use ic_stable_structures::memory_manager::{MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell};

use super::admin_trail::AdminTrail;
use super::audit_log::AuditLog;
use super::binary;
use super::chunk_index::ChunkIndex;
use super::due_queue::DueQueue;
use super::memory as ids;
use super::pages::ChunkLoc;
use super::repositories::{
    DailyCounters, HeaderRepository, IdempotencyRepository, InviteRepository, ItemRepository,
    KeyRepository, LoadedVault, MemberRepository, PaymentMemories, PaymentRepository,
    RecoveryCodeRepository, TicketRepository, UploadRepository, VaultRepository,
};
use super::slab::Slab;
use crate::model::config::{Account, Config};
use crate::model::keys::KeyRecord;
use crate::model::payments::{BillingEntry, JournalEntry, PaymentSession};
use crate::model::records::{
    AuditEvent, ConfigCell, InviteRecord, ItemRecord, MemberRecord, RecoveryCodeRecord,
    StorageHeader, TicketRecord, UploadEntry, VaultRecord, LAYOUT_VERSION, STABLE_VEC_DIRECTORIES,
};
use crate::model::types::{TicketId, VaultId};
use crate::{binary_storable, cbor_storable};

cbor_storable!(ConfigCell, 1);
// The records every scheduler item touches: compact binary (version 2, reads version 1 CBOR).
binary_storable!(StorageHeader, binary::encode_header, binary::decode_header);
binary_storable!(VaultRecord, binary::encode_vault, binary::decode_vault);
binary_storable!(AuditEvent, binary::encode_audit, binary::decode_audit);
binary_storable!(TicketRecord, binary::encode_ticket, binary::decode_ticket);
binary_storable!(MemberRecord, binary::encode_member, binary::decode_member);
cbor_storable!(InviteRecord, 1);
cbor_storable!(RecoveryCodeRecord, 1);
// The payment trail every paid vault keeps: compact binary too (version 2, reads CBOR).
binary_storable!(
    PaymentSession,
    binary::encode_session,
    binary::decode_session
);
binary_storable!(JournalEntry, binary::encode_journal, binary::decode_journal);
binary_storable!(BillingEntry, binary::encode_billing, binary::decode_billing);
cbor_storable!(Account, 1);
cbor_storable!(ItemRecord, 1);
cbor_storable!(UploadEntry, 1);
cbor_storable!(KeyRecord, 1);

// The whole storage's invariant walk (`State::check_invariants`), in its own file.
#[path = "invariants.rs"]
mod invariants;

/// A virtual memory of the canister's stable memory.
pub type Mem = VirtualMemory<DefaultMemoryImpl>;

/// Every persistent structure.
pub struct State {
    memory_manager: MemoryManager<DefaultMemoryImpl>,
    /// Buckets of memories migrated from 8 MiB buckets beyond their size (see `memory`).
    bucket_slack: ids::BucketSlack,
    config: StableCell<ConfigCell, Mem>,
    /// Layout version, id counters, per-status counts, `get_metrics` aggregates.
    pub header: HeaderRepository,
    /// Vaults (tombstones included) with their owner index; keeps the per-status counts.
    pub vaults: VaultRepository,
    /// Members with their `(principal, vault)` index.
    pub members: MemberRepository,
    /// Each vault's audit events by seq.
    pub audit: AuditLog<Mem>,
    /// Idempotency keys of drafts (with their reverse index) and of open uploads.
    pub idempotency: IdempotencyRepository,
    /// `(UTC day, principal) → vaults it created that day` (today's, until collected).
    pub vault_creations: DailyCounters,
    // ---- members (invites, recovery codes)
    /// Invites with their token index.
    pub invites: InviteRepository,
    /// `sha256(recovery code) → record`.
    pub recovery_codes: RecoveryCodeRepository,
    // ---- scheduler
    /// `(due_ns, kind, id) → failed attempts`: the scheduler's due queue.
    pub scheduler_queue: DueQueue<Mem>,
    // ---- payments
    /// Sessions (with their by-vault index and checks), journal, billing, refund accounts.
    pub payments: PaymentRepository,
    // ---- content
    /// `(vault, item) → item metadata`.
    pub content_items: ItemRepository,
    /// Open uploads with their idle and per-vault indexes.
    pub uploads: UploadRepository,
    /// `(blob, chunk index) → pages`.
    pub content_chunks: ChunkIndex<Mem>,
    /// Raw pages of chunk bodies (see `storage::pages`).
    pub(super) content_pages: Mem,
    /// Free page runs: `first page → pages`.
    pub(super) content_free: StableBTreeMap<u64, u64, Mem>,
    /// `(UTC day, principal) → downloads requested that day` (non-owners; today's, until
    /// collected).
    pub download_counters: DailyCounters,
    /// Download tickets with their id counter and collector cursor (in the header).
    download_tickets: TicketRepository,
    // ---- vetKeys
    /// The vetKeys public key cache and derivation counters.
    pub vetkeys: KeyRepository,
    // ---- operations
    /// The operational counters' snapshot (raw; see `domain::ops`).
    ops_snapshot: Mem,
    /// The newest admin actions (see `domain::admin_trail`).
    pub admin_trail: AdminTrail<Mem>,
}

/// One virtual memory's size, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    pub id: u8,
    pub name: &'static str,
    /// Pages of the virtual memory.
    pub pages: u64,
    /// Pages of the buckets the memory manager gave it (whole buckets of
    /// [`ids::BUCKET_PAGES`]); what it takes of the canister's stable memory.
    pub allocated_pages: u64,
}

/// Why a stored layout cannot be opened by this code.
#[derive(Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Written by a newer version of the canister: downgrades are refused.
    Newer { found: u32, supported: u32 },
}

impl State {
    /// Opens (or creates, on empty memory) every structure over `memory`; an 8 MiB-bucket
    /// layout is first converted to 1 MiB buckets (traps on an unknown one: see `memory`).
    pub fn open(memory: DefaultMemoryImpl) -> State {
        let (mm, bucket_slack) = ids::open_manager(memory);
        let header = HeaderRepository::init(mm.get(ids::HEADER));
        // Layout 8 (see `LAYOUT_VERSION`): raw directories become `StableVec`s before the
        // structures over them open; `migrate` stamps the layout afterwards.
        if header.get().layout_version < STABLE_VEC_DIRECTORIES {
            for id in ids::DIRECTORIES {
                super::slab::convert_raw_directory(mm.get(id));
            }
        }
        let slab = std::rc::Rc::new(Slab::init(mm.get(ids::RECORD_SLAB)));
        State {
            config: StableCell::init(mm.get(ids::CONFIG), ConfigCell::default()),
            header,
            vaults: VaultRepository::init(
                mm.get(ids::VAULT_DIR),
                slab.clone(),
                mm.get(ids::OWNER_INDEX),
                super::owner_index::fresh_salt(),
            ),
            members: MemberRepository::init(mm.get(ids::MEMBERS), mm.get(ids::VAULTS_BY_MEMBER)),
            audit: AuditLog::init(mm.get(ids::AUDIT_INDEX), slab.clone()),
            idempotency: IdempotencyRepository::init(
                mm.get(ids::IDEMPOTENCY),
                mm.get(ids::IDEMPOTENCY_BY_VAULT),
            ),
            vault_creations: DailyCounters::init(mm.get(ids::VAULT_CREATIONS)),
            // ---- members
            invites: InviteRepository::init(mm.get(ids::INVITES), mm.get(ids::INVITE_TOKEN_INDEX)),
            recovery_codes: RecoveryCodeRepository::init(mm.get(ids::RECOVERY_CODES)),
            // ---- scheduler
            scheduler_queue: DueQueue::init(mm.get(ids::SCHEDULER_SLOTS)),
            // ---- payments
            payments: PaymentRepository::init(PaymentMemories::of(&mm)),
            // ---- content
            content_items: ItemRepository::init(mm.get(ids::CONTENT_ITEMS)),
            uploads: UploadRepository::init(mm.get(ids::UPLOADS)),
            content_chunks: ChunkIndex::init(mm.get(ids::CHUNK_DIR), slab.clone()),
            content_pages: mm.get(ids::CONTENT_PAGES),
            content_free: StableBTreeMap::init(mm.get(ids::CONTENT_FREE_PAGES)),
            download_counters: DailyCounters::init(mm.get(ids::DOWNLOAD_COUNTERS_BY_DAY)),
            download_tickets: TicketRepository::init(mm.get(ids::TICKET_DIR), slab),
            vetkeys: KeyRepository::init(mm.get(ids::VETKEYS)),
            ops_snapshot: mm.get(ids::OPS_SNAPSHOT),
            admin_trail: AdminTrail::init(mm.get(ids::ADMIN_TRAIL)),
            memory_manager: mm,
            bucket_slack,
        }
    }

    /// The configuration. Present after `init`; its absence is a programming error.
    pub fn config(&self) -> &Config {
        self.config
            .get()
            .0
            .as_ref()
            .expect("BUG: configuration missing (init did not run)")
    }

    /// Replaces the configuration.
    pub fn set_config(&mut self, config: Config) {
        self.config.set(ConfigCell(Some(config)));
    }

    /// Marks fresh memory with the current layout version (called by `init`).
    pub fn stamp_layout(&mut self) {
        self.header.stamp_layout();
    }

    /// Runs the migrations from the stored layout to [`LAYOUT_VERSION`]; refuses a layout
    /// written by newer code. Called first thing in `post_upgrade`.
    pub fn migrate(&mut self) -> Result<u32, LayoutError> {
        let found = self.header.get().layout_version;
        if found > LAYOUT_VERSION {
            return Err(LayoutError::Newer {
                found,
                supported: LAYOUT_VERSION,
            });
        }
        // Version 0 is memory written before layout stamping existed. Each step is
        // idempotent (a trap rolls the whole upgrade back).
        if found < 3 {
            self.migrate_to_3();
        }
        // From layout 2, `migrate_to_3` already appended the events in the current layout;
        // only a layout-3 audit index holds flat records.
        if found == 3 {
            self.audit.migrate_flat_layout_3();
        }
        if found < 6 {
            self.migrate_owner_index_to_6();
            self.migrate_payments_to_6();
        }
        if found < 7 {
            self.migrate_download_counters_to_7();
        }
        if found < LAYOUT_VERSION {
            self.stamp_layout();
        }
        Ok(found)
    }

    /// Layout 3: vaults, audit events and queue entries move out of their retired
    /// `StableBTreeMap`s (memory ids 2, 16, 17), which are then cleared. (Audit events are
    /// appended through the current `AuditLog`, so they land in the layout-4 pages.)
    fn migrate_to_3(&mut self) {
        let mut old_vaults: StableBTreeMap<VaultId, VaultRecord, Mem> =
            StableBTreeMap::init(self.memory_manager.get(ids::VAULTS));
        for (id, vault) in old_vaults.iter().map(|e| e.into_pair()) {
            debug_assert_eq!(id, vault.id);
            self.vaults.migrate_record(&vault);
        }
        old_vaults.clear_new();
        let mut old_audit: StableBTreeMap<(VaultId, u64), AuditEvent, Mem> =
            StableBTreeMap::init(self.memory_manager.get(ids::AUDIT_LOG));
        for ((vault, _), event) in old_audit.iter().map(|e| e.into_pair()) {
            self.audit.append(vault, &event);
        }
        old_audit.clear_new();
        let mut old_queue: StableBTreeMap<(u64, u8, u64), u32, Mem> =
            StableBTreeMap::init(self.memory_manager.get(ids::SCHEDULER_QUEUE));
        for (key, attempts) in old_queue.iter().map(|e| e.into_pair()) {
            self.scheduler_queue.insert(key, attempts);
        }
        old_queue.clear_new();
        let mut old_chunks: StableBTreeMap<(u64, u32), ChunkLoc, Mem> =
            StableBTreeMap::init(self.memory_manager.get(ids::CONTENT_CHUNK_INDEX));
        for ((blob, index), chunk) in old_chunks.iter().map(|e| e.into_pair()) {
            self.content_chunks.push(blob, index, &chunk);
        }
        old_chunks.clear_new();
        let mut old_tickets: StableBTreeMap<u64, TicketRecord, Mem> =
            StableBTreeMap::init(self.memory_manager.get(ids::DOWNLOAD_TICKETS));
        for (id, ticket) in old_tickets.iter().map(|e| e.into_pair()) {
            self.download_tickets.migrate_ticket(id, ticket);
        }
        old_tickets.clear_new();
    }

    /// Layout 6: the owner index leaves its retired `StableBTreeMap` (memory id 3) for the
    /// salted hash table (`storage::owner_index`), built in one pass; the map is then
    /// cleared. Memory that never held the map (a fresh install) is not touched.
    fn migrate_owner_index_to_6(&mut self) {
        use ic_stable_structures::Memory;
        let memory = self.memory_manager.get(ids::VAULTS_BY_OWNER);
        if memory.size() == 0 {
            return;
        }
        let mut old: StableBTreeMap<(Principal, VaultId), (), Mem> = StableBTreeMap::init(memory);
        self.vaults.migrate_owner_index(old.keys());
        old.clear_new();
    }

    /// Layout 7: the download counters move from their `(principal, day)` map to
    /// [`DailyCounters`] keyed `(day, principal)` (past days' too: the next tick collects
    /// them). Reads the retired memory only when it was ever written.
    fn migrate_download_counters_to_7(&mut self) {
        use ic_stable_structures::Memory;
        let memory = self.memory_manager.get(ids::DOWNLOAD_COUNTERS);
        if memory.size() == 0 {
            return;
        }
        let mut old: StableBTreeMap<(Principal, u64), u32, Mem> = StableBTreeMap::init(memory);
        if old.is_empty() {
            return;
        }
        for ((who, day), n) in old.iter().map(|e| e.into_pair()) {
            self.download_counters.set(day, who, n);
        }
        old.clear_new();
    }

    /// Layout 6: billing entries move from their map into slots, and the journals of the
    /// sessions with nothing left to do are folded (`PaymentRepository`). Idempotent.
    fn migrate_payments_to_6(&mut self) {
        self.payments.migrate_billing_to_slots();
        self.payments.fold_settled_journals();
    }

    /// Issues a download ticket: `make(id)` stored under the next ticket id (see
    /// [`TicketRepository::issue`]); that id.
    pub fn issue_ticket(&mut self, make: impl FnOnce(TicketId) -> TicketRecord) -> TicketId {
        self.download_tickets.issue(&mut self.header, make)
    }

    /// Download ticket `id`, until collected.
    pub fn ticket(&self, id: TicketId) -> Option<TicketRecord> {
        self.download_tickets.get(id)
    }

    /// Removes at most `max` tickets expired at `now` (see
    /// [`TicketRepository::collect_expired`]); how many.
    pub fn collect_expired_tickets(&mut self, now: u64, max: usize) -> usize {
        self.download_tickets
            .collect_expired(&mut self.header, now, max)
    }

    /// Hands out the next vault id.
    pub fn next_vault_id(&mut self) -> VaultId {
        self.header.next_vault_id()
    }

    /// Stores a new vault (record, owner index, status count); see [`VaultRepository`].
    pub fn insert_vault(&mut self, vault: VaultRecord) -> LoadedVault {
        self.vaults.insert_new(&mut self.header, vault)
    }

    /// Writes a changed vault back with its index entries and counts.
    pub fn save_vault(&mut self, vault: &mut LoadedVault) {
        self.vaults.save(&mut self.header, vault);
    }

    /// Erases a vault (an unpaid draft): record, owner-index entry, status count.
    pub fn erase_vault(&mut self, vault: &LoadedVault) {
        self.vaults.erase(&mut self.header, vault);
    }

    /// Every virtual memory's size, in the order of [`ids::ALL`]. With the memory manager's
    /// header, the allocated pages add up to the canister's stable memory.
    pub fn memory_usage(&self) -> Vec<MemoryUse> {
        use ic_stable_structures::Memory;
        ids::ALL
            .iter()
            .map(|(id, n, name)| {
                let pages = self.memory_manager.get(*id).size();
                MemoryUse {
                    id: *n,
                    name,
                    pages,
                    allocated_pages: self.bucket_slack.allocated_pages(*n, pages),
                }
            })
            .collect()
    }

    /// Sum of the virtual memories' sizes in Wasm pages.
    pub fn stable_pages(&self) -> u64 {
        self.memory_usage().iter().map(|m| m.pages).sum()
    }

    /// Reserves `bytes` (rounded up to pages) for the operational counters' snapshot, so that
    /// `pre_upgrade` writes it without growing memory. Called by `init` and `post_upgrade`.
    pub fn reserve_ops_snapshot(&mut self, bytes: u64) {
        use ic_stable_structures::Memory;
        let pages = bytes.div_ceil(65_536);
        let have = self.ops_snapshot.size();
        if have < pages {
            assert!(
                self.ops_snapshot.grow(pages - have) >= 0,
                "stable memory exhausted (ops snapshot)"
            );
        }
    }

    /// Writes the counters' snapshot (`pre_upgrade`). Never grows memory: the pages are
    /// reserved ([`Self::reserve_ops_snapshot`]) and the snapshot is bounded.
    pub fn write_ops_snapshot(&mut self, snapshot: &[u8]) {
        use ic_stable_structures::Memory;
        let room = self.ops_snapshot.size() * 65_536;
        if snapshot.len() as u64 <= room {
            self.ops_snapshot.write(0, snapshot);
        }
    }

    /// Reads the counters' snapshot bytes (`post_upgrade`): `header_bytes` are read first and
    /// `len_of` says from them how long the snapshot is; `None` if there is none or it does
    /// not fit the reserved pages.
    pub fn read_ops_snapshot(
        &self,
        header_bytes: usize,
        len_of: impl FnOnce(&[u8]) -> Option<usize>,
    ) -> Option<Vec<u8>> {
        use ic_stable_structures::Memory;
        let room = self.ops_snapshot.size() * 65_536;
        if room < header_bytes as u64 {
            return None;
        }
        let mut head = vec![0u8; header_bytes];
        self.ops_snapshot.read(0, &mut head);
        let len = len_of(&head)?;
        if len as u64 > room {
            return None;
        }
        let mut bytes = vec![0u8; len];
        self.ops_snapshot.read(0, &mut bytes);
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{Durations, Limits, Pricing, VetKdConfig};
    use crate::model::records::MemberRole;
    use crate::model::types::{PlanSelection, Tier, UnlockRules, VaultStatus};
    use crate::storage::slab::DenseTable;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    fn vault(id: VaultId) -> VaultRecord {
        VaultRecord {
            id,
            owner: p(1),
            name: format!("vault {id}"),
            status: VaultStatus::Active,
            plan: PlanSelection {
                tier: Tier::Deluxe,
                heir_slots: 4,
                witness_slot: true,
            },
            owner_age: 44,
            price_e8s: 123_456_789,
            unlock_rules: Some(UnlockRules {
                unlock_after: Some(5),
                inactivity_days: Some(90),
                request_wait_days: 7,
                required_heirs: 2,
                required_witness: true,
            }),
            post_unlock_days: 200,
            audit_retention_days: 400,
            created_at: 1,
            updated_at: 2,
            status_changed_at: 3,
            paid_at: Some(4),
            expires_at: Some(5),
            activated_at: None,
            unlocked_at: None,
            access_until: None,
            deleted_at: None,
            last_owner_activity: 6,
            storage_committed_bytes: 7,
            storage_reserved_bytes: 8,
            item_count: 9,
            heir_count: 1,
            witness_joined: false,
            audit_next_seq: 1,
            audit_head: vec![9; 32],
            membership: Default::default(),
        }
    }

    /// What an upgrade does: the same stable memory, every structure opened again.
    #[test]
    fn reopening_the_same_memory_reads_back_equal() {
        let memory = DefaultMemoryImpl::default();
        let mut s = State::open(memory.clone());
        s.set_config(Config {
            admins: vec![p(1)],
            ledger_canister_id: p(2),
            treasury: Account {
                owner: p(1),
                subaccount: None,
            },
            durations: Durations::default(),
            pricing: Pricing::default(),
            limits: Limits::default(),
            paused: false,
            vetkd: VetKdConfig::default(),
        });
        s.stamp_layout();
        for id in 1..=50 {
            assert_eq!(s.next_vault_id(), id);
            s.insert_vault(vault(id));
        }
        s.members.insert(&MemberRecord {
            vault_id: 7,
            member_id: 1,
            principal: p(2),
            role: MemberRole::Heir,
            name: "Ann".into(),
            share_index: 1,
            joined_at: 10,
            relation: Default::default(),
            email_hint: None,
            can_trigger_unlock: true,
            count_as_approver: true,
            invite_id: 1,
        });
        s.audit.append(
            7,
            &AuditEvent {
                seq: 0,
                at: 11,
                actor: p(1),
                action: "vault.created".into(),
                details: String::new(),
                hash: vec![1; 32],
            },
        );
        s.idempotency.bind_vault([3; 32], 7);
        let config = s.config().clone();
        drop(s);

        let mut again = State::open(memory);
        assert_eq!(again.migrate(), Ok(LAYOUT_VERSION));
        assert_eq!(again.config(), &config);
        assert_eq!(again.next_vault_id(), 51);
        assert_eq!(again.vaults.count(), 50);
        for id in 1..=50 {
            assert_eq!(again.vaults.get(&id), Some(vault(id)));
        }
        assert_eq!(again.vaults.owner_index().count(), 50);
        assert_eq!(again.header.status_count(VaultStatus::Active), 50);
        assert_eq!(again.members.member_id_of(p(2), 7), Some(1));
        assert_eq!(again.members.get(7, 1).unwrap().name, "Ann");
        assert_eq!(again.audit.get(7, 0).unwrap().action, "vault.created");
        assert_eq!(again.idempotency.lookup(&[3; 32]), Some(7));
        assert_eq!(
            again.idempotency.vault_bindings().collect::<Vec<_>>(),
            vec![(7, [3; 32])]
        );
    }

    fn chunk(blob: u64, i: u32) -> ChunkLoc {
        ChunkLoc {
            len: i + 1,
            extents: vec![crate::storage::pages::Extent {
                start: blob * 10 + u64::from(i),
                pages: 1,
            }],
        }
    }

    fn ticket(id: u64) -> TicketRecord {
        TicketRecord {
            ticket_id: id,
            vault_id: 1,
            item_id: 2,
            blob_id: id,
            holder: p(3),
            expires_at: 99,
            chunk_count: id as u32,
        }
    }

    /// Layout 2 kept vaults, audit events, the queue, the chunk index and download tickets in
    /// `StableBTreeMap`s; the upgrade to layout 3 moves every record and entry over and
    /// empties the retired maps.
    #[test]
    fn layout_2_state_migrates_to_the_dense_structures() {
        let memory = DefaultMemoryImpl::default();
        {
            let mm = MemoryManager::init(memory.clone());
            let mut vaults: StableBTreeMap<VaultId, VaultRecord, Mem> =
                StableBTreeMap::init(mm.get(ids::VAULTS));
            let mut audit: StableBTreeMap<(VaultId, u64), AuditEvent, Mem> =
                StableBTreeMap::init(mm.get(ids::AUDIT_LOG));
            let mut queue: StableBTreeMap<(u64, u8, u64), u32, Mem> =
                StableBTreeMap::init(mm.get(ids::SCHEDULER_QUEUE));
            let mut header: StableCell<StorageHeader, Mem> =
                StableCell::init(mm.get(ids::HEADER), StorageHeader::default());
            for id in 1..=30 {
                vaults.insert(id, vault(id));
                // A compacted log: seqs 5.. kept.
                for seq in 5..(5 + id % 4) {
                    audit.insert(
                        (id, seq),
                        AuditEvent {
                            seq,
                            at: seq,
                            actor: p(1),
                            action: format!("a{id}.{seq}"),
                            details: String::new(),
                            hash: vec![seq as u8; 32],
                        },
                    );
                }
                queue.insert((1_000 - id, (id % 9) as u8, id), (id % 3) as u32);
            }
            let mut chunks: StableBTreeMap<(u64, u32), ChunkLoc, Mem> =
                StableBTreeMap::init(mm.get(ids::CONTENT_CHUNK_INDEX));
            let mut tickets: StableBTreeMap<u64, TicketRecord, Mem> =
                StableBTreeMap::init(mm.get(ids::DOWNLOAD_TICKETS));
            for blob in 1..=3u64 {
                for i in 0..blob as u32 {
                    chunks.insert((blob, i), chunk(blob, i));
                }
                tickets.insert(blob, ticket(blob));
            }
            let mut h = header.get().clone();
            h.layout_version = 2;
            h.next_vault_id = 31;
            header.set(h);
        }
        let mut s = State::open(memory.clone());
        assert_eq!(s.migrate(), Ok(2));
        assert_eq!(s.header.get().layout_version, LAYOUT_VERSION);
        assert_eq!(s.vaults.count(), 30);
        for id in 1..=30 {
            assert_eq!(s.vaults.get(&id), Some(vault(id)));
            let actions: Vec<String> = s.audit.events_from(id, 0).map(|e| e.action).collect();
            let expect: Vec<String> = (5..(5 + id % 4)).map(|q| format!("a{id}.{q}")).collect();
            assert_eq!(actions, expect);
            assert_eq!(
                s.scheduler_queue.get(&(1_000 - id, (id % 9) as u8, id)),
                Some((id % 3) as u32)
            );
        }
        assert_eq!(s.scheduler_queue.len(), 30);
        for blob in 1..=3u64 {
            assert_eq!(s.content_chunks.chunk_count(blob), blob as u32);
            for i in 0..blob as u32 {
                assert_eq!(s.content_chunks.get(blob, i), Some(chunk(blob, i)));
            }
            assert_eq!(s.download_tickets.get(blob), Some(ticket(blob)));
        }
        // The retired maps are empty; opening again (next upgrade) changes nothing.
        let mm = &s.memory_manager;
        let old: StableBTreeMap<VaultId, VaultRecord, Mem> =
            StableBTreeMap::init(mm.get(ids::VAULTS));
        assert!(old.is_empty());
        drop(s);
        let mut again = State::open(memory);
        assert_eq!(again.migrate(), Ok(LAYOUT_VERSION));
        assert_eq!(again.vaults.count(), 30);
        assert_eq!(
            again.audit.event_count(),
            (1..=30u64).map(|id| id % 4).sum::<u64>()
        );
    }

    fn event(vault: VaultId, seq: u64) -> AuditEvent {
        AuditEvent {
            seq,
            at: seq,
            actor: p(1),
            action: format!("a{vault}.{seq}"),
            details: String::new(),
            hash: vec![seq as u8; 32],
        }
    }

    /// Layout 3 kept each vault's audit index as one flat record (written here by the
    /// layout-3 code, `audit_log::layout3`) in the slab it shares with the vault records;
    /// the upgrade to layout 4 rebuilds them as pages and leaves the vaults alone.
    #[test]
    fn layout_3_audit_index_migrates_to_pages() {
        use super::super::audit_log::layout3;
        use super::super::slab::DenseBytes;
        let memory = DefaultMemoryImpl::default();
        {
            let mm = MemoryManager::init(memory.clone());
            let slab = std::rc::Rc::new(Slab::init(mm.get(ids::RECORD_SLAB)));
            let index = DenseBytes::init(mm.get(ids::AUDIT_INDEX));
            let mut vaults: DenseTable<VaultRecord, Mem> =
                DenseTable::init(mm.get(ids::VAULT_DIR), slab.clone());
            let mut header: StableCell<StorageHeader, Mem> =
                StableCell::init(mm.get(ids::HEADER), StorageHeader::default());
            // Vault 1 at the layout-3 maximum, 2 compacted, 3 emptied, 4..=20 small.
            for id in 1..=20 {
                vaults.insert(id, vault(id));
                let n = match id {
                    1 => 65_535,
                    2 | 3 => 300,
                    _ => id,
                };
                for seq in 0..n {
                    layout3::append(&index, &slab, id, &event(id, seq));
                }
            }
            layout3::drop_before(&index, &slab, 2, 123);
            layout3::drop_before(&index, &slab, 3, 300);
            let mut h = header.get().clone();
            h.layout_version = 3;
            header.set(h);
        }
        let mut s = State::open(memory.clone());
        assert_eq!(s.migrate(), Ok(3));
        assert_eq!(s.header.get().layout_version, LAYOUT_VERSION);
        let expect = |id: VaultId, seqs: std::ops::Range<u64>| -> Vec<AuditEvent> {
            seqs.map(|q| event(id, q)).collect()
        };
        for id in 1..=20 {
            assert_eq!(s.vaults.get(&id), Some(vault(id)), "vault {id} untouched");
            let kept: Vec<AuditEvent> = s.audit.events_from(id, 0).collect();
            let want = match id {
                1 => 0..65_535,
                2 => 123..300,
                3 => 0..0,
                _ => 0..id,
            };
            assert_eq!(kept, expect(id, want), "vault {id}");
        }
        // The capped vault grows on; the emptied one starts again at its next seq.
        for seq in 65_535..70_000 {
            s.audit.append(1, &event(1, seq));
        }
        s.audit.append(3, &event(3, 300));
        assert_eq!(s.audit.bounds(1), (0, 70_000));
        assert_eq!(s.audit.bounds(3), (300, 1));
        // The next upgrade finds layout 4: nothing is migrated again.
        drop(s);
        let mut again = State::open(memory);
        assert_eq!(again.migrate(), Ok(LAYOUT_VERSION));
        assert_eq!(again.audit.get(1, 69_999), Some(event(1, 69_999)));
        assert_eq!(again.audit.first(2), Some(event(2, 123)));
        assert_eq!(again.vaults.get(&7), Some(vault(7)));
    }

    /// Layout 5 kept the owner index in a `StableBTreeMap` (memory id 3); the upgrade to
    /// layout 6 builds the hash table from it in one pass and clears the map.
    #[test]
    fn layout_5_owner_index_migrates_to_the_hash_table() {
        let memory = DefaultMemoryImpl::default();
        let owner_of = |id: VaultId| p((id % 37) as u8 + 1);
        let mut expect = std::collections::BTreeSet::new();
        {
            let mm = MemoryManager::init(memory.clone());
            let slab = std::rc::Rc::new(Slab::init(mm.get(ids::RECORD_SLAB)));
            let mut vaults: DenseTable<VaultRecord, Mem> =
                DenseTable::init(mm.get(ids::VAULT_DIR), slab);
            let mut by_owner: StableBTreeMap<(Principal, VaultId), (), Mem> =
                StableBTreeMap::init(mm.get(ids::VAULTS_BY_OWNER));
            let mut header: StableCell<StorageHeader, Mem> =
                StableCell::init(mm.get(ids::HEADER), StorageHeader::default());
            for id in 1..=1_000 {
                let mut v = vault(id);
                v.owner = owner_of(id);
                if id % 10 == 0 {
                    v.status = VaultStatus::Deleted;
                } else {
                    by_owner.insert((v.owner, id), ());
                    expect.insert((v.owner, id));
                }
                vaults.insert(id, v);
            }
            let mut h = header.get().clone();
            h.layout_version = 5;
            h.next_vault_id = 1_001;
            header.set(h);
        }
        let mut s = State::open(memory.clone());
        assert_eq!(s.migrate(), Ok(5));
        assert_eq!(s.header.get().layout_version, LAYOUT_VERSION);
        let index: std::collections::BTreeSet<_> = s.vaults.owner_index().collect();
        assert_eq!(index, expect);
        for n in 1..=37u64 {
            let want: Vec<VaultId> = (500..=1_000)
                .filter(|id| owner_of(*id) == owner_of(n) && id % 10 != 0)
                .collect();
            assert_eq!(
                s.vaults.owned_by(owner_of(n), 500).collect::<Vec<_>>(),
                want
            );
        }
        // The index's blocks and the vault records are exactly the slab's used blocks.
        let mut blocks = s.vaults.check_invariants().unwrap();
        blocks.extend(s.vaults.check_owner_index().unwrap());
        s.vaults.slab().check_accounted(&blocks).unwrap();
        // The retired map is empty; the index goes on like one built by inserts.
        let old: StableBTreeMap<(Principal, VaultId), (), Mem> =
            StableBTreeMap::init(s.memory_manager.get(ids::VAULTS_BY_OWNER));
        assert!(old.is_empty());
        drop(old);
        let mut v = s.insert_vault(VaultRecord {
            owner: p(200),
            ..vault(s.header.get().next_vault_id)
        });
        v.owner = p(201);
        s.save_vault(&mut v);
        assert_eq!(s.vaults.owned_by(p(201), 0).collect::<Vec<_>>(), vec![v.id]);
        assert_eq!(s.vaults.owned_by(p(200), 0).count(), 0);
        // The next upgrade finds layout 6: nothing is migrated again.
        drop(s);
        let mut again = State::open(memory);
        assert_eq!(again.migrate(), Ok(LAYOUT_VERSION));
        assert_eq!(again.vaults.owner_index().count(), expect.len() + 1);
        again.vaults.check_owner_index().unwrap();
    }

    /// Layout 6 kept the daily download counters keyed `(principal, day)`: the upgrade to
    /// layout 7 moves them to the `(day, principal)` counters (`if found < 7`), empties the
    /// retired map, and the collector then takes past days as a prefix.
    #[test]
    fn layout_6_download_counters_migrate_to_day_first_counters() {
        let memory = DefaultMemoryImpl::default();
        let mut expect = Vec::new();
        {
            let mm = MemoryManager::init(memory.clone());
            let mut old: StableBTreeMap<(Principal, u64), u32, Mem> =
                StableBTreeMap::init(mm.get(ids::DOWNLOAD_COUNTERS));
            for who in 0..40u8 {
                for day in [100u64, 101] {
                    let n = u32::from(who % 7) + 1;
                    old.insert((p(who), day), n);
                    expect.push(((day, p(who)), n));
                }
            }
            let mut header: StableCell<StorageHeader, Mem> =
                StableCell::init(mm.get(ids::HEADER), StorageHeader::default());
            let mut h = header.get().clone();
            h.layout_version = 6;
            header.set(h);
        }
        expect.sort();
        let mut s = State::open(memory.clone());
        assert_eq!(s.migrate(), Ok(6));
        assert_eq!(s.header.get().layout_version, LAYOUT_VERSION);
        assert_eq!(s.download_counters.iter().collect::<Vec<_>>(), expect);
        let old: StableBTreeMap<(Principal, u64), u32, Mem> =
            StableBTreeMap::init(s.memory_manager.get(ids::DOWNLOAD_COUNTERS));
        assert!(old.is_empty());
        drop(old);
        assert_eq!(s.download_counters.get(101, p(3)), 4);
        // Day 100's forty counters are the prefix the collector takes.
        assert_eq!(s.download_counters.collect_before(101, 25), 25);
        assert_eq!(s.download_counters.collect_before(101, 25), 15);
        assert_eq!(s.download_counters.len(), 40);
        // The next upgrade finds layout 7: nothing is migrated again.
        drop(s);
        let mut again = State::open(memory);
        assert_eq!(again.migrate(), Ok(LAYOUT_VERSION));
        assert_eq!(again.download_counters.len(), 40);
    }

    /// Layouts 3…7 kept the five dense-id directories as raw arrays of 16-byte entries: the
    /// state opened over such memory converts each to a `StableVec` in place before anything
    /// reads it, every record reads back the same, and the next opening converts nothing.
    #[test]
    fn layout_7_raw_directories_convert_when_the_state_opens() {
        use ic_stable_structures::{Memory, StableVec};
        let memory = DefaultMemoryImpl::default();
        let owners = |id: VaultId| p((id % 9) as u8 + 1);
        let snapshot = |s: &State| {
            let vaults: Vec<_> = s.vaults.iter().collect();
            let owned: Vec<Vec<VaultId>> = (1..=9u8)
                .map(|o| s.vaults.owned_by(p(o), 0).collect())
                .collect();
            let events: Vec<Option<AuditEvent>> = (1..=60)
                .flat_map(|v| (0..12).map(move |seq| (v, seq)))
                .map(|(v, seq)| s.audit.get(v, seq))
                .collect();
            let chunks: Vec<_> = s.content_chunks.iter().collect();
            let tickets: Vec<_> = s.download_tickets.iter().collect();
            (vaults, owned, events, chunks, tickets)
        };
        let before = {
            let mut s = State::open(memory.clone());
            s.stamp_layout();
            for id in 1..=60 {
                assert_eq!(s.next_vault_id(), id);
                let mut v = vault(id);
                v.owner = owners(id);
                s.insert_vault(v);
                // Vault 7 pages its log; the others stay packed.
                for seq in 0..if id == 7 { 12 } else { 2 } {
                    s.audit.append(id, &event(id, seq));
                }
            }
            for blob in [1u64, 2, 40] {
                for i in 0..3 {
                    s.content_chunks.push(blob, i, &chunk(blob, i));
                }
            }
            for id in [1u64, 5] {
                s.download_tickets.migrate_ticket(id, ticket(id));
            }
            ok_walks(&s);
            snapshot(&s)
        };
        assert_eq!(before.0.len(), 60);
        assert_eq!(before.2.iter().flatten().count(), 60 * 2 + 10);

        // Rewrite the directories the way layout 7 held them, and say so in the header.
        {
            let mm = MemoryManager::init(memory.clone());
            for id in ids::DIRECTORIES {
                let dir = mm.get(id);
                assert!(dir.size() > 0, "{id:?} written");
                let vec: StableVec<[u8; 16], Mem> = StableVec::init(dir.clone());
                let entries: Vec<[u8; 16]> = vec.iter().collect();
                dir.write(0, &vec![0u8; (dir.size() * 65_536) as usize]);
                for (i, e) in entries.iter().enumerate() {
                    dir.write(i as u64 * 16, e);
                }
            }
            let mut header: StableCell<StorageHeader, Mem> =
                StableCell::init(mm.get(ids::HEADER), StorageHeader::default());
            let mut h = header.get().clone();
            h.layout_version = 7;
            header.set(h);
        }

        // Opened twice before the layout is stamped (the second finds them converted).
        drop(State::open(memory.clone()));
        let mut s = State::open(memory.clone());
        assert!(snapshot(&s) == before, "every record reads back the same");
        assert_eq!(s.migrate(), Ok(7));
        assert_eq!(s.header.get().layout_version, LAYOUT_VERSION);
        ok_walks(&s);
        // New writes land beside the old entries.
        let id = s.next_vault_id();
        s.insert_vault(vault(id));
        s.audit.append(id, &event(id, 0));
        s.content_chunks.push(41, 0, &chunk(41, 0));
        s.download_tickets.migrate_ticket(6, ticket(6));
        drop(s);
        let mut again = State::open(memory);
        assert_eq!(again.migrate(), Ok(LAYOUT_VERSION));
        assert_eq!(again.vaults.get(&id), Some(vault(id)));
        assert_eq!(again.audit.get(id, 0), Some(event(id, 0)));
        assert_eq!(again.download_tickets.get(6), Some(ticket(6)));
        assert_eq!(again.vaults.get(&60).map(|v| v.owner), Some(owners(60)));
        ok_walks(&again);
    }

    /// The walks of the structures over the directories.
    fn ok_walks(s: &State) {
        use crate::storage::model_test::ok;
        let mut used = ok(s.vaults.check_invariants());
        used.extend(ok(s.audit.reachable_blocks()));
        used.extend(ok(s.content_chunks.check_invariants()));
        used.extend(ok(s.download_tickets.check_invariants()));
        used.extend(ok(s.vaults.check_owner_index()));
        ok(s.audit.check_invariants());
        ok(s.vaults.slab().check_accounted(&used));
    }

    /// A fresh install never touches the retired owner-index memory.
    #[test]
    fn a_fresh_state_leaves_the_retired_owner_memory_empty() {
        use ic_stable_structures::Memory;
        let mut s = State::open(DefaultMemoryImpl::default());
        s.stamp_layout();
        s.insert_vault(vault(1));
        assert_eq!(s.migrate(), Ok(LAYOUT_VERSION));
        assert_eq!(s.memory_manager.get(ids::VAULTS_BY_OWNER).size(), 0);
        assert_eq!(s.vaults.owned_by(p(1), 0).collect::<Vec<_>>(), vec![1]);
    }

    /// Layout 5 kept every billing entry in its map and every journal entry: the upgrade
    /// to layout 6 moves the entries into slots and folds the journal of a settled session
    /// (`if found < 6`); a layout-6 memory is not migrated again.
    #[test]
    fn layout_5_payments_migrate_to_billing_slots_and_folded_journals() {
        use crate::model::payments::{Outcome, PaymentPurpose, PaymentSessionStatus, TransferKind};
        let memory = DefaultMemoryImpl::default();
        let session = |id: u64| PaymentSession {
            id,
            vault_id: 7,
            owner: p(2),
            purpose: PaymentPurpose::Create,
            amount_e8s: 1_000_000,
            subaccount: serde_bytes::ByteBuf::from(vec![id as u8; 32]),
            account_identifier: "ab".repeat(32),
            icrc1_account: "aaaaa-aa".into(),
            created_at: 1,
            expires_at: 2,
            status: PaymentSessionStatus::Completed,
            received_e8s: 1_000_000,
            billing_id: Some(id),
            closed_at: Some(3),
            refunded_e8s: 0,
            refund_block: None,
            period_expires_at: None,
            next_check_at: None,
        };
        let billing = |id: u64| BillingEntry {
            id,
            session_id: id,
            vault_id: 7,
            owner: p(2),
            purpose: PaymentPurpose::Create,
            amount_e8s: 1_000_000,
            received_e8s: 1_000_000,
            treasury_e8s: 990_000,
            sweep_block: Some(id),
            sweep_pending: false,
            refund_e8s: 0,
            refund_block: None,
            refund_pending: false,
            dust_e8s: 0,
            fees_e8s: 10_000,
            applied: true,
            recorded_at: 3,
        };
        let sweep = |id: u64| JournalEntry {
            session_id: id,
            seq: 0,
            kind: TransferKind::Sweep,
            from_subaccount: vec![id as u8; 32],
            to: vec![2; 32],
            to_owner: p(9),
            amount_e8s: 990_000,
            fee_e8s: 10_000,
            memo: id << 16,
            created_at_time: 3,
            balance_before: 1_000_000,
            attempts: 1,
            outcome: Outcome::Done { block: Some(id) },
            written_at: 3,
            settled_at: Some(3),
        };
        // What layout 5 wrote, in its maps.
        let write_layout_5 = |memory: &DefaultMemoryImpl, id: u64| {
            let mm = MemoryManager::init_with_bucket_size(memory.clone(), ids::BUCKET_PAGES);
            let mut sessions: StableBTreeMap<u64, PaymentSession, Mem> =
                StableBTreeMap::init(mm.get(ids::PAYMENT_SESSIONS));
            let mut by_vault: StableBTreeMap<(VaultId, u64), (), Mem> =
                StableBTreeMap::init(mm.get(ids::PAYMENT_SESSIONS_BY_VAULT));
            let mut journal: StableBTreeMap<(u64, u32), JournalEntry, Mem> =
                StableBTreeMap::init(mm.get(ids::PAYMENT_JOURNAL));
            let mut billings: StableBTreeMap<u64, BillingEntry, Mem> =
                StableBTreeMap::init(mm.get(ids::BILLING));
            sessions.insert(id, session(id));
            by_vault.insert((7, id), ());
            journal.insert((id, 0), sweep(id));
            billings.insert(id, billing(id));
        };
        let mut s = State::open(memory.clone());
        assert_eq!(s.migrate(), Ok(0));
        let mut header = s.header.get().clone();
        header.layout_version = 5;
        s.header.set(header);
        drop(s);
        write_layout_5(&memory, 1);
        let mut s = State::open(memory.clone());
        assert_eq!(
            s.payments.billing(1),
            None,
            "not in a slot before the migration"
        );
        assert_eq!(s.migrate(), Ok(5));
        assert_eq!(s.header.get().layout_version, LAYOUT_VERSION);
        assert_eq!(s.payments.billing(1), Some(billing(1)));
        assert_eq!(s.payments.session(1), Some(session(1)));
        assert_eq!(s.payments.journal().count(), 0);
        assert_eq!(s.payments.next_journal_seq(1), 1);
        assert_eq!(s.payments.check_invariants(), Ok(()));
        drop(s);
        // Layout 6 is not migrated again: an entry written to the old map stays there.
        write_layout_5(&memory, 2);
        let mut again = State::open(memory);
        assert_eq!(again.migrate(), Ok(LAYOUT_VERSION));
        assert_eq!(again.payments.billing(2), None);
        assert_eq!(again.payments.journal().count(), 1);
        assert_eq!(again.payments.billing(1), Some(billing(1)));
    }

    #[test]
    fn newer_layout_is_refused() {
        let memory = DefaultMemoryImpl::default();
        let mut s = State::open(memory.clone());
        let mut header = s.header.get().clone();
        header.layout_version = LAYOUT_VERSION + 1;
        s.header.set(header);
        drop(s);
        let mut again = State::open(memory);
        assert_eq!(
            again.migrate(),
            Err(LayoutError::Newer {
                found: LAYOUT_VERSION + 1,
                supported: LAYOUT_VERSION
            })
        );
    }

    #[test]
    fn fresh_memory_migrates_to_current() {
        let mut s = State::open(DefaultMemoryImpl::default());
        assert_eq!(s.migrate(), Ok(0));
        assert_eq!(s.header.get().layout_version, LAYOUT_VERSION);
    }
}
