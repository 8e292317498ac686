//! The whole storage's invariant walk, [`State::check_invariants`]: every structure's own walk,
//! then the cross-checks between structures (indexes against the records they index,
//! counters against counts, the shared slab and the page space accounted exactly).
//!
//! A child module of `state` (so the walk sees the state's fields whatever their visibility)
//! kept in its own file. It reads every record: for tests (native model tests run it after
//! every step), never called by the canister's entry points.

use std::collections::{BTreeMap, BTreeSet};

use super::State;
use crate::model::records::{RecoveryState, UploadEntry};
use crate::model::types::VaultStatus;
use crate::storage::pages;

/// Fails the walk with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

impl State {
    /// Walks the whole storage (see the module docs); the first violation found, as text.
    ///
    /// Structures: the record slab, the vault and ticket tables, the audit log, the chunk
    /// index, both due queues, the payment repository (`PaymentRepository::check_invariants`:
    /// sessions, their index and checks, journal, billing), the admin trail, the vetKeys map,
    /// the content items and the page space each pass their own walk, and the slab's blocks
    /// are exactly those the four slab users reach plus its free lists.
    ///
    /// Cross-checks:
    /// - vaults: each under its own id, below `next_vault_id`; the per-status counters equal
    ///   the counts; the owner index lists exactly the vaults that are not `Deleted`;
    /// - audit: logs only for existing vaults; a kept log ends at the vault's
    ///   `audit_next_seq` and its hash chain (recomputed) ends in the vault's head;
    /// - idempotency: the repository's walk (each reverse entry's key bound to its vault),
    ///   those vaults are `Draft`s, and the other keys are exactly the open uploads' keys;
    /// - members and invites: each repository's walk (table and index agree both ways),
    ///   and their vaults exist; recovery codes belong to existing vaults, and a vault's
    ///   `recovery_code_hash` names an active code of that vault;
    /// - payments: refund accounts only of existing vaults; each journal entry's memo is
    ///   the dedup key of its `(session, seq)`;
    /// - content: the chunks' page runs and the free runs tile the pages below the
    ///   high-water mark exactly (no page leaked, none shared); every blob with chunks
    ///   belongs to an item or an open upload, below `next_blob_id`; every item has its
    ///   chunk count recorded, its vault exists and its id is below `next_item_id`; tickets are below `next_ticket_id`.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_structures()?;
        self.check_vaults()?;
        self.check_indexes()?;
        self.check_content()
    }

    fn check_structures(&self) -> Result<(), String> {
        let slab = self.vaults.slab();
        slab.check_invariants()?;
        let mut blocks = self.vaults.check_invariants()?;
        blocks.extend(self.download_tickets.check_invariants()?);
        blocks.extend(self.audit.reachable_blocks()?);
        blocks.extend(self.content_chunks.check_invariants()?);
        blocks.extend(self.vaults.check_owner_index()?);
        slab.check_accounted(&blocks)?;
        self.scheduler_queue.check_invariants()?;
        self.payments.check_invariants()?;
        self.admin_trail.check_invariants()?;
        self.vetkeys.check_invariants()?;
        self.content_items.check_invariants()?;
        pages::check_state(self)
    }

    fn check_vaults(&self) -> Result<(), String> {
        let header = self.header.get();
        let mut by_status = vec![0u64; header.status_counts.len().max(VaultStatus::ALL.len())];
        let mut owned = BTreeSet::new();
        for (id, v) in self.vaults.iter() {
            ensure!(v.id == id, "vault {id} stored as vault {}", v.id);
            ensure!(
                id >= 1 && id < header.next_vault_id,
                "vault {id} outside 1..{}",
                header.next_vault_id
            );
            by_status[v.status.index()] += 1;
            if v.status != VaultStatus::Deleted {
                owned.insert((v.owner, id));
            }
            let (first, kept) = self.audit.bounds(id);
            if kept > 0 {
                ensure!(
                    first + kept == v.audit_next_seq,
                    "vault {id}: audit log ends at {}, the vault's next seq is {}",
                    first + kept,
                    v.audit_next_seq
                );
                ensure!(
                    crate::domain::vault_core::audit::verify_chain(self, &v),
                    "vault {id}: the audit hash chain does not end in the vault's head"
                );
            }
        }
        for (i, &n) in by_status.iter().enumerate() {
            let counted = header.status_counts.get(i).copied().unwrap_or(0);
            ensure!(
                counted == n,
                "status {i}: the header counts {counted} vaults, {n} are stored"
            );
        }
        let index: BTreeSet<_> = self.vaults.owner_index().collect();
        ensure!(
            index == owned,
            "the owner index differs from the vaults not deleted: {:?} listed only, {:?} \
             missing",
            index.difference(&owned).take(3).collect::<Vec<_>>(),
            owned.difference(&index).take(3).collect::<Vec<_>>()
        );
        for vault in self.audit.vaults() {
            ensure!(
                self.vaults.contains(vault),
                "audit log of vault {vault}, which does not exist"
            );
        }
        Ok(())
    }

    fn check_indexes(&self) -> Result<(), String> {
        // Idempotency: drafts' keys (with their reverse entries), then open uploads' keys.
        let upload_keys = self.idempotency.check_invariants()?;
        for (vault, _) in self.idempotency.vault_bindings() {
            let status = self.vaults.get(&vault).map(|v| v.status);
            ensure!(
                status == Some(VaultStatus::Draft),
                "idempotency key of vault {vault}, which is {status:?}, not a draft"
            );
        }
        let mut open_keys = BTreeMap::new();
        for (_, entry) in self.uploads.raw_entries() {
            if let UploadEntry::Head(head) = entry {
                if let Some(hash) = head.idempotency_hash {
                    open_keys.insert(hash, head.upload_id);
                }
            }
        }
        ensure!(
            upload_keys == open_keys,
            "the upload idempotency keys ({}) differ from the open uploads' keys ({})",
            upload_keys.len(),
            open_keys.len()
        );
        // Members, invites and recovery codes: each repository's own walk, then the vaults.
        self.members.check_invariants()?;
        for m in self.members.iter() {
            ensure!(
                self.vaults.contains(m.vault_id),
                "member ({}, {}) of a vault that does not exist",
                m.vault_id,
                m.member_id
            );
        }
        self.invites.check_invariants()?;
        for i in self.invites.iter() {
            ensure!(
                self.vaults.contains(i.vault_id),
                "invite ({}, {}) of a vault that does not exist",
                i.vault_id,
                i.invite_id
            );
        }
        for (_, code) in self.recovery_codes.iter() {
            ensure!(
                self.vaults.contains(code.vault_id),
                "recovery code of vault {}, which does not exist",
                code.vault_id
            );
        }
        for (id, v) in self.vaults.iter() {
            if let Some(hash) = v.membership.recovery_code_hash {
                let code = self.recovery_codes.get(&hash);
                ensure!(
                    code.as_ref()
                        .is_some_and(|c| c.vault_id == id && c.state == RecoveryState::Active),
                    "vault {id}: its recovery code is {code:?}, not an active code of the vault"
                );
            }
        }
        for vault in self.payments.refund_account_vaults() {
            ensure!(
                self.vaults.contains(vault),
                "refund account of vault {vault}, which does not exist"
            );
        }
        for e in self.payments.journal() {
            ensure!(
                e.memo == crate::domain::payments::journal::memo(e.session_id, e.seq),
                "journal entry ({}, {}): memo {} is not its dedup key",
                e.session_id,
                e.seq,
                e.memo
            );
        }
        Ok(())
    }

    fn check_content(&self) -> Result<(), String> {
        let header = self.header.get();
        // Pages: the chunks' runs and the free runs tile 0..hwm.
        let mut runs: Vec<(u64, u64, u64)> = self
            .content_free
            .iter()
            .map(|e| e.into_pair())
            .map(|(start, n)| (start, n, u64::MAX))
            .collect();
        let mut blobs: BTreeMap<u64, u32> = BTreeMap::new();
        for (blob, _, chunk) in self.content_chunks.iter() {
            *blobs.entry(blob).or_default() += 1;
            runs.extend(chunk.extents.iter().map(|e| (e.start, e.pages, blob)));
        }
        runs.sort_unstable();
        let mut at = 0;
        for (start, n, owner) in runs {
            let owner = if owner == u64::MAX {
                "the free list".to_string()
            } else {
                format!("blob {owner}")
            };
            ensure!(
                start == at,
                "content pages {at}..{start}: expected next at {at}, found a run of {owner} at \
                 {start} (a leak, or pages shared)"
            );
            at += n;
        }
        ensure!(
            at == header.content_pages_hwm,
            "content pages {at}..{} leaked (neither a chunk's nor free)",
            header.content_pages_hwm
        );
        // Blobs: each an item's or an open upload's.
        let mut owners: BTreeMap<u64, String> = BTreeMap::new();
        for record in self.content_items.iter() {
            let (vault, item) = (record.vault_id, record.item_id);
            ensure!(
                item >= 1 && item < header.next_item_id,
                "item ({vault}, {item}) outside 1..{}",
                header.next_item_id
            );
            ensure!(
                self.vaults.contains(vault),
                "item ({vault}, {item}) of a vault that does not exist"
            );
            let count = blobs.get(&record.blob_id).copied().unwrap_or(0);
            ensure!(
                count == record.chunk_count,
                "item ({vault}, {item}): {} chunks, {count} recorded for blob {}",
                record.chunk_count,
                record.blob_id
            );
            owners.insert(record.blob_id, format!("item ({vault}, {item})"));
        }
        for ((tag, upload, _), entry) in self.uploads.raw_entries() {
            if let (0, UploadEntry::Head(head)) = (tag, entry) {
                if let Some(other) = owners.insert(head.blob_id, format!("upload {upload}")) {
                    return Err(format!(
                        "blob {} belongs to upload {upload} and to {other}",
                        head.blob_id
                    ));
                }
            }
        }
        for &blob in blobs.keys() {
            ensure!(
                blob < header.next_blob_id,
                "blob {blob} at or past next_blob_id {}",
                header.next_blob_id
            );
            ensure!(
                owners.contains_key(&blob),
                "blob {blob} has chunks but no item or upload"
            );
        }
        for (id, ticket) in self.download_tickets.iter() {
            ensure!(
                ticket.ticket_id == id && id < header.next_ticket_id,
                "ticket {id} (stored as {}) outside 0..{}",
                ticket.ticket_id,
                header.next_ticket_id
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! A random walk through the domain's storage-heavy flows (vaults created, paid, updated,
    //! deleted, erased; uploads finished and aborted; items deleted; scheduler ticks over
    //! months; upgrades), with the whole walk after every step.

    use candid::Principal;
    use ic_stable_structures::DefaultMemoryImpl;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use crate::domain::{content, scheduler, vaults};
    use crate::model::config::{Config, InitArgs, Limits};
    use crate::model::types::{
        BeginUploadArgs, CreateVaultArgs, ItemKind, PlanSelection, Tier, UpdateVaultArgs,
        VaultStatus, NANOS_PER_DAY,
    };
    use crate::runtime::testing::MockRuntime;
    use crate::runtime::Runtime;
    use crate::storage::model_test::{cases, ok};
    use crate::storage::State;

    const T0: u64 = 1_767_225_600_000_000_000;
    const CHUNK: u32 = 1024;
    const SYSTEM: u8 = 9;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    #[derive(Clone, Debug)]
    enum Op {
        Create {
            owner: u8,
            key: Option<u8>,
        },
        Pay {
            v: usize,
        },
        /// Opens (or reuses) the creation payment session of a draft.
        OpenSession {
            v: usize,
        },
        Rename {
            v: usize,
        },
        CheckIn {
            v: usize,
        },
        Delete {
            v: usize,
        },
        EraseDraft {
            v: usize,
        },
        /// Uploads `size` bytes, finishing the upload or aborting it half-way.
        Upload {
            v: usize,
            size: u64,
            finish: bool,
        },
        DeleteItem {
            v: usize,
            i: usize,
        },
        /// Advances the clock and runs the scheduler's due entries.
        Tick {
            days: u64,
        },
        Upgrade,
    }

    fn op() -> impl Strategy<Value = Op> {
        let v = any::<usize>();
        prop_oneof![
            3 => (1u8..4, prop::option::of(0u8..3)).prop_map(|(owner, key)| Op::Create { owner, key }),
            3 => v.prop_map(|v| Op::Pay { v }),
            2 => v.prop_map(|v| Op::OpenSession { v }),
            1 => v.prop_map(|v| Op::Rename { v }),
            1 => v.prop_map(|v| Op::CheckIn { v }),
            1 => v.prop_map(|v| Op::Delete { v }),
            1 => v.prop_map(|v| Op::EraseDraft { v }),
            4 => (v, 1u64..6_000, prop::bool::weighted(0.8))
                .prop_map(|(v, size, finish)| Op::Upload { v, size, finish }),
            2 => (v, any::<usize>()).prop_map(|(v, i)| Op::DeleteItem { v, i }),
            2 => (1u64..120).prop_map(|days| Op::Tick { days }),
            1 => Just(Op::Upgrade),
        ]
    }

    fn open(memory: &DefaultMemoryImpl) -> State {
        State::open(memory.clone())
    }

    /// The vault at `i` (modulo the stored ones), with its owner.
    fn pick(s: &State, i: usize) -> Option<(u64, Principal, VaultStatus)> {
        let all: Vec<_> = s
            .vaults
            .iter()
            .map(|(id, v)| (id, v.owner, v.status))
            .collect();
        (!all.is_empty()).then(|| all[i % all.len()])
    }

    fn upload(s: &mut State, rt: &MockRuntime, vault: u64, size: u64, finish: bool) {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        let Ok(up) = content::begin_upload(
            s,
            rt,
            BeginUploadArgs {
                vault_id: vault,
                kind: ItemKind::File,
                size,
                sha256: serde_bytes::ByteBuf::from(Sha256::digest(&bytes).to_vec()),
                encrypted_meta: serde_bytes::ByteBuf::from(vec![7; 40]),
                recipients: None,
                replaces: None,
                idempotency_key: None,
            },
        ) else {
            return;
        };
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK as usize).collect();
        let upto = if finish {
            chunks.len()
        } else {
            chunks.len() / 2
        };
        for (i, c) in chunks[..upto].iter().enumerate() {
            if content::upload_chunk(s, rt, up.upload_id, i as u32, c).is_err() {
                break;
            }
        }
        // A refused chunk leaves the upload open (its chunks so far recorded), like a client
        // that gives up; the walk must hold either way.
        if finish {
            let _ = content::finish_upload(s, rt, up.upload_id);
        } else {
            let _ = content::abort_upload(s, rt, up.upload_id);
        }
    }

    /// A fresh memory holding an initialized state. Formatting one costs about a second in a
    /// debug build (every virtual memory's first 8 MiB bucket is zero-filled), so it is done
    /// once per thread and each case starts from a copy.
    fn initialized_memory() -> DefaultMemoryImpl {
        thread_local! {
            static TEMPLATE: DefaultMemoryImpl = {
                let memory = DefaultMemoryImpl::default();
                let mut s = open(&memory);
                // 1 KiB chunks: every tier capped at 64 MiB, what 65 536 chunks of 1 KiB hold.
                let mut pricing = crate::model::config::Pricing::default();
                for t in &mut pricing.tiers {
                    t.storage_bytes = t.storage_bytes.min(64 << 20);
                }
                let init = InitArgs {
                    limits: Some(Limits {
                        max_chunk_bytes: CHUNK,
                        ..Default::default()
                    }),
                    pricing: Some(pricing),
                    ..Default::default()
                };
                s.set_config(Config::from_init(init, p(SYSTEM)).unwrap());
                s.stamp_layout();
                memory
            };
        }
        TEMPLATE.with(|t| std::rc::Rc::new(std::cell::RefCell::new(t.borrow().clone())))
    }

    fn run(ops: Vec<Op>) {
        let memory = initialized_memory();
        let mut s = open(&memory);
        let rt = MockRuntime::new(T0, p(1));
        ok(s.check_invariants());
        for op in ops {
            let now = rt.now();
            match op {
                Op::Create { owner, key } => {
                    rt.as_caller(p(owner));
                    let _ = vaults::create_vault(
                        &mut s,
                        &rt,
                        CreateVaultArgs {
                            name: format!("v{owner}"),
                            plan: PlanSelection {
                                tier: Tier::Basic,
                                heir_slots: 1,
                                witness_slot: false,
                            },
                            owner_age: 40,
                            idempotency_key: key.map(|k| format!("key-{k}")),
                        },
                    );
                }
                Op::Pay { v } => {
                    if let Some((id, _, _)) = pick(&s, v) {
                        let _ = crate::domain::vault_core::confirm_creation_payment(
                            &mut s,
                            id,
                            now,
                            p(SYSTEM),
                        );
                    }
                }
                Op::OpenSession { v } => {
                    if let Some((id, owner, _)) = pick(&s, v) {
                        rt.as_caller(owner);
                        let _ = crate::domain::payments::init_payment(
                            &mut s,
                            &rt,
                            id,
                            crate::model::payments::PaymentPurpose::Create,
                        );
                    }
                }
                Op::Rename { v } => {
                    if let Some((id, owner, _)) = pick(&s, v) {
                        rt.as_caller(owner);
                        let _ = vaults::update_vault(
                            &mut s,
                            &rt,
                            UpdateVaultArgs {
                                vault_id: id,
                                name: Some(format!("renamed at {now}")),
                                unlock_rules: None,
                                post_unlock_days: None,
                                audit_retention_days: None,
                            },
                        );
                    }
                }
                Op::CheckIn { v } => {
                    if let Some((id, owner, _)) = pick(&s, v) {
                        rt.as_caller(owner);
                        let _ = vaults::check_in(&mut s, &rt, id);
                    }
                }
                Op::Delete { v } => {
                    if let Some((id, owner, _)) = pick(&s, v) {
                        rt.as_caller(owner);
                        let _ = vaults::delete_vault(&mut s, &rt, id);
                    }
                }
                Op::EraseDraft { v } => {
                    if let Some((id, _, VaultStatus::Draft)) = pick(&s, v) {
                        let vault = s.vaults.load(id).unwrap();
                        vaults::erase_draft(&mut s, &vault);
                    }
                }
                Op::Upload { v, size, finish } => {
                    if let Some((id, owner, _)) = pick(&s, v) {
                        rt.as_caller(owner);
                        upload(&mut s, &rt, id, size, finish);
                    }
                }
                Op::DeleteItem { v, i } => {
                    if let Some((id, owner, _)) = pick(&s, v) {
                        let items: Vec<u64> =
                            s.content_items.in_vault(id).map(|i| i.item_id).collect();
                        if !items.is_empty() {
                            rt.as_caller(owner);
                            let _ = content::delete_item(&mut s, &rt, id, items[i % items.len()]);
                        }
                    }
                }
                Op::Tick { days } => {
                    rt.advance(days * NANOS_PER_DAY);
                    let now = rt.now();
                    for _ in 0..20 {
                        let due = scheduler::due_batch(&s, now, 50);
                        if due.is_empty() {
                            break;
                        }
                        scheduler::process_batch(&mut s, &due, now, p(SYSTEM), || {});
                    }
                }
                Op::Upgrade => {
                    drop(s);
                    s = open(&memory);
                    s.migrate().expect("current layout");
                }
            }
            ok(s.check_invariants());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(24)))]
        #[test]
        fn every_step_of_a_random_walk_keeps_the_storage_invariants(
            ops in prop::collection::vec(op(), 1..40),
        ) {
            run(ops);
        }
    }

    /// A fresh state holding one Basic draft of `p(1)`, created with `key`.
    fn draft(key: Option<&str>) -> (State, crate::model::types::VaultId) {
        let mut s = open(&initialized_memory());
        let rt = MockRuntime::new(T0, p(1));
        let v = vaults::create_vault(
            &mut s,
            &rt,
            CreateVaultArgs {
                name: "v".into(),
                plan: PlanSelection {
                    tier: Tier::Basic,
                    heir_slots: 1,
                    witness_slot: false,
                },
                owner_age: 40,
                idempotency_key: key.map(str::to_string),
            },
        )
        .unwrap();
        (s, v.id)
    }

    /// The walk is not vacuous: each kind of inconsistency it names is found.
    #[test]
    fn the_walk_finds_broken_counters_indexes_and_leaked_pages() {
        let fresh = || {
            let (s, id) = draft(Some("k"));
            assert_eq!(s.check_invariants(), Ok(()));
            (s, id)
        };
        let err = |s: &State| s.check_invariants().unwrap_err();

        let (mut s, _) = fresh();
        let mut h = s.header.get().clone();
        h.status_counts[VaultStatus::Draft.index()] += 1;
        s.header.set(h);
        assert!(err(&s).contains("the header counts"), "{}", err(&s));

        let (mut s, id) = fresh();
        s.vaults.unindex_unchecked(p(1), id);
        assert!(err(&s).contains("owner index"), "{}", err(&s));

        let (mut s, id) = fresh();
        s.idempotency.unindex_unchecked(id);
        assert!(err(&s).contains("idempotency"), "{}", err(&s));

        let (mut s, id) = fresh();
        let mut v = s.vaults.get(&id).unwrap();
        v.audit_head = vec![0; 32];
        s.vaults.put_unchecked(&v);
        assert!(err(&s).contains("hash chain"), "{}", err(&s));

        let (mut s, _) = fresh();
        crate::storage::pages::allocate(&mut s, 3 * 4096).unwrap();
        assert!(err(&s).contains("leaked"), "{}", err(&s));

        // Payments: a session's index entry lost; a refund account of an erased vault.
        let (mut s, id) = fresh();
        let rt = MockRuntime::new(T0, p(1));
        let purpose = crate::model::payments::PaymentPurpose::Create;
        let session = crate::domain::payments::init_payment(&mut s, &rt, id, purpose).unwrap();
        assert_eq!(s.check_invariants(), Ok(()));
        s.payments.unindex_session_unchecked(id, session.id);
        assert!(err(&s).contains("payment session index"), "{}", err(&s));

        let (mut s, id) = fresh();
        let account = crate::model::config::Account {
            owner: p(3),
            subaccount: None,
        };
        s.payments.set_refund_account(id + 1, account);
        assert!(err(&s).contains("refund account"), "{}", err(&s));
    }

    /// The member, invite, recovery-code and upload-key checks find what they name: each
    /// repository's own walk runs, and the cross-checks against vaults and uploads hold.
    #[test]
    fn the_walk_finds_broken_member_invite_code_and_upload_key_entries() {
        use crate::model::records::{
            InviteRecord, InviteState, MemberRecord, MemberRole, RecoveryCodeRecord, RecoveryState,
            UploadEntry,
        };
        let member = |vault: u64| MemberRecord {
            vault_id: vault,
            member_id: 1,
            principal: p(20),
            role: MemberRole::Heir,
            name: "m".into(),
            share_index: 1,
            joined_at: T0,
            relation: Default::default(),
            email_hint: None,
            can_trigger_unlock: true,
            count_as_approver: true,
            invite_id: 1,
        };
        let invite = |vault: u64| InviteRecord {
            vault_id: vault,
            invite_id: 1,
            role: MemberRole::Heir,
            name: "i".into(),
            relation: Default::default(),
            email_hint: None,
            can_trigger_unlock: true,
            count_as_approver: true,
            share_index: 1,
            token_hash: [5; 32],
            created_at: T0,
            expires_at: T0 + 1,
            state: InviteState::Open,
            replaced_by: None,
        };
        // A paid vault with an upload opened under an idempotency key.
        let fresh = || {
            let (mut s, id) = draft(None);
            let rt = MockRuntime::new(T0, p(1));
            crate::domain::vault_core::confirm_creation_payment(&mut s, id, T0, p(SYSTEM)).unwrap();
            let up = content::begin_upload(
                &mut s,
                &rt,
                BeginUploadArgs {
                    vault_id: id,
                    kind: ItemKind::File,
                    size: 10,
                    sha256: serde_bytes::ByteBuf::from(vec![0; 32]),
                    encrypted_meta: serde_bytes::ByteBuf::new(),
                    recipients: None,
                    replaces: None,
                    idempotency_key: Some("u".into()),
                },
            )
            .unwrap();
            s.members.insert(&member(id));
            s.invites.insert_new(&invite(id));
            assert_eq!(s.check_invariants(), Ok(()));
            (s, id, up.upload_id)
        };
        let err = |s: &State| s.check_invariants().unwrap_err();

        let (mut s, id, _) = fresh();
        s.members.unindex_unchecked(p(20), id);
        assert!(err(&s).contains("member index"), "{}", err(&s));

        let (mut s, _, _) = fresh();
        s.members.insert(&member(999));
        assert!(
            err(&s).contains("of a vault that does not exist"),
            "{}",
            err(&s)
        );

        let (mut s, _, _) = fresh();
        s.invites.unindex_unchecked(&[5; 32]);
        assert!(err(&s).contains("token's index entry"), "{}", err(&s));

        let (mut s, _, _) = fresh();
        s.invites.insert_new(&InviteRecord {
            token_hash: [6; 32],
            ..invite(999)
        });
        assert!(err(&s).contains("invite (999, 1)"), "{}", err(&s));

        let (mut s, id, _) = fresh();
        let mut v = s.vaults.get(&id).unwrap();
        v.membership.recovery_code_hash = Some([7; 32]);
        s.vaults.put_unchecked(&v);
        assert!(err(&s).contains("recovery code"), "{}", err(&s));
        let code = RecoveryCodeRecord {
            vault_id: id,
            bypass_quorum: false,
            issued_at: T0,
            state: RecoveryState::Active,
        };
        s.recovery_codes.insert_new([7; 32], &code);
        assert_eq!(s.check_invariants(), Ok(()));
        s.recovery_codes.save(
            [7; 32],
            &RecoveryCodeRecord {
                state: RecoveryState::Used { at: T0, by: p(20) },
                ..code
            },
        );
        assert!(err(&s).contains("not an active code"), "{}", err(&s));

        // The open upload's key released by hand, or a key left behind by no upload.
        let (mut s, _, _) = fresh();
        let hash = s
            .uploads
            .raw_entries()
            .into_iter()
            .find_map(|(_, e)| match e {
                UploadEntry::Head(h) => h.idempotency_hash,
                _ => None,
            });
        s.idempotency.release_upload(&hash.unwrap());
        assert!(err(&s).contains("upload idempotency keys"), "{}", err(&s));
        let (mut s, _, upload) = fresh();
        s.idempotency.bind_upload([8; 32], upload);
        assert!(err(&s).contains("upload idempotency keys"), "{}", err(&s));
    }
}
