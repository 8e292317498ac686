use super::*;
use crate::domain::vaults;
use crate::model::config::{Config, InitArgs, Limits};
use crate::model::records::MemberRecord;
use crate::model::types::{CreateVaultArgs, ItemKind, PlanSelection, Tier};
use crate::runtime::testing::MockRuntime;
use ic_stable_structures::DefaultMemoryImpl;

const CHUNK: u32 = 1024;
const T0: u64 = 1_767_225_600_000_000_000;

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 29])
}
const OWNER: u8 = 1;
const HEIR1: u8 = 2;
const HEIR2: u8 = 3;
const WITNESS: u8 = 4;
const STRANGER: u8 = 5;

struct Env {
    s: State,
    rt: MockRuntime,
    vault: VaultId,
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

fn sha(b: &[u8]) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(Sha256::digest(b).to_vec())
}

/// A Basic vault (5 MiB) in NeedSetup with two heirs and a witness, 1 KiB chunks (every
/// tier capped at 64 MiB, what 65 536 chunks of 1 KiB hold).
fn env() -> Env {
    let mut s = State::open(DefaultMemoryImpl::default());
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
    s.set_config(Config::from_init(init, p(9)).unwrap());
    s.stamp_layout();
    let rt = MockRuntime::new(T0, p(OWNER));
    let v = vaults::create_vault(
        &mut s,
        &rt,
        CreateVaultArgs {
            name: "v".into(),
            plan: PlanSelection {
                tier: Tier::Basic,
                heir_slots: 2,
                witness_slot: true,
            },
            owner_age: 40,
            idempotency_key: None,
        },
    )
    .unwrap();
    vault_core::confirm_creation_payment(&mut s, v.id, T0, p(9)).unwrap();
    for (member_id, who, role) in [
        (1, HEIR1, MemberRole::Heir),
        (2, HEIR2, MemberRole::Heir),
        (3, WITNESS, MemberRole::Witness),
    ] {
        s.members.insert(&MemberRecord {
            vault_id: v.id,
            member_id,
            principal: p(who),
            role,
            name: "m".into(),
            share_index: member_id as u8,
            joined_at: T0,
            relation: Default::default(),
            email_hint: None,
            can_trigger_unlock: true,
            count_as_approver: true,
            invite_id: u64::from(member_id),
        });
    }
    Env { s, rt, vault: v.id }
}

impl Env {
    fn as_(&self, who: u8) -> &MockRuntime {
        self.rt.as_caller(p(who))
    }
    fn begin(&mut self, size: u64, sha: serde_bytes::ByteBuf) -> VaultResult<UploadView> {
        self.begin_with(size, sha, None, None)
    }
    fn begin_with(
        &mut self,
        size: u64,
        sha: serde_bytes::ByteBuf,
        recipients: Option<Vec<u32>>,
        replaces: Option<ItemId>,
    ) -> VaultResult<UploadView> {
        self.rt.as_caller(p(OWNER));
        begin_upload(
            &mut self.s,
            &self.rt,
            BeginUploadArgs {
                vault_id: self.vault,
                kind: ItemKind::File,
                size,
                sha256: sha,
                encrypted_meta: serde_bytes::ByteBuf::from(vec![7; 100]),
                recipients,
                replaces,
                idempotency_key: None,
            },
        )
    }
    fn chunk(&mut self, up: UploadId, i: u32, b: &[u8]) -> VaultResult<UploadView> {
        self.rt.as_caller(p(OWNER));
        upload_chunk(&mut self.s, &self.rt, up, i, b)
    }
    fn finish(&mut self, up: UploadId) -> VaultResult<ItemView> {
        self.rt.as_caller(p(OWNER));
        finish_upload(&mut self.s, &self.rt, up)
    }
    /// A whole upload; returns the item.
    fn put(&mut self, payload: &[u8], recipients: Option<Vec<u32>>) -> ItemView {
        let up = self
            .begin_with(payload.len() as u64, sha(payload), recipients, None)
            .unwrap();
        for (i, c) in payload.chunks(CHUNK as usize).enumerate() {
            self.chunk(up.upload_id, i as u32, c).unwrap();
        }
        self.finish(up.upload_id).unwrap()
    }
    fn download(&mut self, who: u8, item: ItemId) -> VaultResult<Vec<u8>> {
        self.rt.as_caller(p(who));
        let t = request_download(&mut self.s, &self.rt, self.vault, item)?;
        let mut out = Vec::new();
        for i in 0..t.chunk_count {
            out.extend(get_download_chunk(&self.s, &self.rt, t.ticket_id, i)?);
        }
        assert_eq!(out.len() as u64, t.size);
        assert_eq!(sha(&out), t.sha256);
        Ok(out)
    }
    fn vault(&self) -> VaultRecord {
        self.s.vaults.get(&self.vault).unwrap()
    }
    fn set_status(&mut self, status: VaultStatus) {
        let mut v = self.s.vaults.load(self.vault).unwrap();
        v.status = status;
        self.s.save_vault(&mut v);
    }
    /// Everything observable about content, to check that refused calls change nothing.
    fn snapshot(&self) -> String {
        let v = self.vault();
        let uploads: Vec<_> = self.s.uploads.raw_entries();
        let chunks: Vec<_> = self.s.content_chunks.iter().collect();
        let items: Vec<_> = self.s.content_items.iter().collect();
        let free = crate::storage::pages::free_runs(&self.s);
        format!(
            "{} {} {} {} {:?} {:?} {:?} {:?} {:?}",
            v.item_count,
            v.storage_committed_bytes,
            v.storage_reserved_bytes,
            v.audit_next_seq,
            uploads,
            chunks,
            items,
            free,
            self.s.header.get()
        )
    }
}

#[test]
fn resumable_hash_equals_sha256_for_any_split() {
    let payload = data(1000, 3);
    for len in [0usize, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000] {
        for split in [1usize, 7, 63, 64, 65, 200] {
            let mut h = HashState::new();
            for piece in payload[..len].chunks(split) {
                h.update(piece);
            }
            let want: [u8; 32] = Sha256::digest(&payload[..len]).into();
            assert_eq!(h.finalize(), want, "len {len} split {split}");
        }
    }
}

#[test]
fn uploads_of_various_sizes_download_identical() {
    let mut e = env();
    let c = CHUNK as usize;
    for (len, seed) in [(1, 1), (c, 2), (c * 10 + c / 2, 3), (2 * c - 1, 4)] {
        let payload = data(len, seed);
        let item = e.put(&payload, None);
        assert_eq!(item.size, len as u64);
        assert_eq!(item.chunk_count as usize, len.div_ceil(c));
        assert_eq!(e.download(OWNER, item.item_id).unwrap(), payload);
    }
    let v = e.vault();
    assert_eq!(v.item_count, 4);
    assert_eq!(v.storage_reserved_bytes, 0);
    assert_eq!(
        v.storage_committed_bytes,
        (1 + c + c * 10 + c / 2 + 2 * c - 1) as u64
    );
    let page = list_items(&e.s, e.as_(OWNER), e.vault, PageArgs::default()).unwrap();
    assert_eq!(page.items.len(), 4);
    assert_eq!(page.items[0].encrypted_meta.as_slice(), &[7; 100][..]);
}

#[test]
fn empty_payload_is_refused() {
    let mut e = env();
    let before = e.snapshot();
    assert!(matches!(
        e.begin(0, sha(b"")),
        Err(VaultError::InvalidInput { ref field, .. }) if field == "size"
    ));
    assert_eq!(e.snapshot(), before);
}

#[test]
fn bad_chunks_and_bad_finishes_change_nothing() {
    let mut e = env();
    let c = CHUNK as usize;
    let payload = data(3 * c, 5);
    let up = e
        .begin(payload.len() as u64, sha(&payload))
        .unwrap()
        .upload_id;
    e.chunk(up, 0, &payload[..c]).unwrap();
    let before = e.snapshot();
    // Out of order (skip ahead, and go back two).
    assert_eq!(
        e.chunk(up, 2, &payload[2 * c..]),
        Err(VaultError::ChunkOutOfOrder { expected: 1 })
    );
    // Repeat of the last chunk with different bytes.
    assert_eq!(
        e.chunk(up, 0, &payload[c..2 * c]),
        Err(VaultError::ChunkOutOfOrder { expected: 1 })
    );
    // Over the maximum.
    assert!(matches!(
        e.chunk(up, 1, &data(c + 1, 0)),
        Err(VaultError::InvalidInput { .. })
    ));
    // A short chunk that is not the last.
    assert!(matches!(
        e.chunk(up, 1, &payload[c..c + 10]),
        Err(VaultError::InvalidInput { .. })
    ));
    // Someone else's upload.
    e.rt.as_caller(p(STRANGER));
    assert_eq!(
        upload_chunk(&mut e.s, &e.rt, up, 1, &payload[c..2 * c]),
        Err(VaultError::NotAuthorized)
    );
    assert_eq!(
        finish_upload(&mut e.s, &e.rt, up),
        Err(VaultError::NotAuthorized)
    );
    assert_eq!(
        abort_upload(&mut e.s, &e.rt, up),
        Err(VaultError::NotAuthorized)
    );
    // Too early to finish.
    assert_eq!(
        e.finish(up),
        Err(VaultError::SizeMismatch {
            expected: 3 * c as u64,
            actual: c as u64
        })
    );
    assert_eq!(e.snapshot(), before);
    // A repeat with identical bytes is accepted and changes nothing.
    assert_eq!(e.chunk(up, 0, &payload[..c]).unwrap().next_index, 1);
    assert_eq!(e.snapshot(), before);
    e.chunk(up, 1, &payload[c..2 * c]).unwrap();
    e.chunk(up, 2, &payload[2 * c..]).unwrap();
    assert_eq!(e.finish(up).unwrap().size, 3 * c as u64);

    // Wrong SHA-256: refused, nothing committed, the reservation stays until abort.
    let up = e.begin(10, sha(b"other")).unwrap().upload_id;
    e.chunk(up, 0, &data(10, 1)).unwrap();
    let before = e.snapshot();
    assert_eq!(e.finish(up), Err(VaultError::ChecksumMismatch));
    assert_eq!(e.snapshot(), before);
    // More bytes than announced.
    let up2 = e.begin(c as u64 + 5, sha(b"x")).unwrap().upload_id;
    e.chunk(up2, 0, &data(c, 1)).unwrap();
    let before = e.snapshot();
    assert_eq!(
        e.chunk(up2, 1, &data(6, 1)),
        Err(VaultError::SizeMismatch {
            expected: c as u64 + 5,
            actual: c as u64 + 6
        })
    );
    assert_eq!(e.snapshot(), before);
    let committed = e.vault().storage_committed_bytes;
    e.rt.as_caller(p(OWNER));
    abort_upload(&mut e.s, &e.rt, up).unwrap();
    abort_upload(&mut e.s, &e.rt, up2).unwrap();
    let v = e.vault();
    assert_eq!(v.storage_reserved_bytes, 0);
    assert_eq!(v.storage_committed_bytes, committed);
    assert_eq!(v.item_count, 1);
    assert_eq!(e.finish(up), Err(VaultError::NotFound));
}

#[test]
fn quota_counts_committed_and_open_reservations() {
    let mut e = env();
    let limit = 5 * 1024 * 1024;
    let a = e.begin(3 * 1024 * 1024, sha(b"a")).unwrap();
    let before = e.snapshot();
    assert_eq!(
        e.begin(3 * 1024 * 1024, sha(b"b")),
        Err(VaultError::QuotaExceeded {
            requested: 3 * 1024 * 1024,
            available: limit - 3 * 1024 * 1024
        })
    );
    assert_eq!(
        e.begin(limit + 1, sha(b"b")),
        Err(VaultError::QuotaExceeded {
            requested: limit + 1,
            available: limit - 3 * 1024 * 1024
        })
    );
    assert_eq!(e.snapshot(), before);
    assert!(e.begin(2 * 1024 * 1024, sha(b"b")).is_ok());
    assert!(matches!(
        e.begin(1, sha(b"c")),
        Err(VaultError::QuotaExceeded { available: 0, .. })
    ));
    e.rt.as_caller(p(OWNER));
    abort_upload(&mut e.s, &e.rt, a.upload_id).unwrap();
    assert!(e.begin(1, sha(b"c")).is_ok());
}

#[test]
fn item_and_open_upload_limits() {
    let mut e = env();
    let mut config = e.s.config().clone();
    config.limits.max_items_per_vault = 2;
    e.s.set_config(config);
    e.put(b"one", None);
    e.begin(1, sha(b"x")).unwrap();
    assert_eq!(
        e.begin(1, sha(b"y")),
        Err(VaultError::PlanLimit {
            resource: "items".into(),
            limit: 2
        })
    );
}

#[test]
fn delete_and_replace_free_space_and_pages() {
    let mut e = env();
    let c = CHUNK as usize;
    let old = data(4 * c, 1);
    let item = e.put(&old, None);
    assert_eq!(e.vault().status, VaultStatus::NeedSetup);
    let hwm = e.s.header.get().content_pages_hwm;
    // Replace: same id, new payload, old pages freed.
    let new = data(2 * c + 3, 2);
    let up = e
        .begin_with(new.len() as u64, sha(&new), None, Some(item.item_id))
        .unwrap();
    for (i, ch) in new.chunks(c).enumerate() {
        e.chunk(up.upload_id, i as u32, ch).unwrap();
    }
    let replaced = e.finish(up.upload_id).unwrap();
    assert_eq!(replaced.item_id, item.item_id);
    assert_eq!(replaced.version, 2);
    assert_eq!(e.download(OWNER, item.item_id).unwrap(), new);
    let v = e.vault();
    assert_eq!(
        (v.item_count, v.storage_committed_bytes),
        (1, new.len() as u64)
    );
    assert_eq!(v.storage_reserved_bytes, 0);
    assert_eq!(e.s.header.get().content_free_pages, 4);
    // Pages are reused before the high-water mark grows.
    e.put(&data(4 * c, 3), None);
    assert_eq!(e.s.header.get().content_free_pages, 0);
    assert_eq!(e.s.header.get().content_pages_hwm, hwm + 3);
    // Delete.
    e.rt.as_caller(p(OWNER));
    delete_item(&mut e.s, &e.rt, e.vault, item.item_id).unwrap();
    let v = e.vault();
    assert_eq!((v.item_count, v.storage_committed_bytes), (1, 4 * c as u64));
    assert_eq!(e.s.header.get().content_free_pages, 3);
    assert_eq!(
        delete_item(&mut e.s, &e.rt, e.vault, item.item_id),
        Err(VaultError::NotFound)
    );
}

#[test]
fn a_ticket_for_a_replaced_item_stops_working() {
    let mut e = env();
    let item = e.put(b"first", None);
    e.rt.as_caller(p(OWNER));
    let t = request_download(&mut e.s, &e.rt, e.vault, item.item_id).unwrap();
    e.rt.as_caller(p(OWNER));
    delete_item(&mut e.s, &e.rt, e.vault, item.item_id).unwrap();
    assert_eq!(
        get_download_chunk(&e.s, &e.rt, t.ticket_id, 0),
        Err(VaultError::NotFound)
    );
}

#[test]
fn stale_uploads_are_collected_and_release_their_reservation() {
    let mut e = env();
    let up = e.begin(2 * CHUNK as u64, sha(b"x")).unwrap().upload_id;
    e.chunk(up, 0, &data(CHUNK as usize, 1)).unwrap();
    let fresh = e.begin(5, sha(b"y")).unwrap().upload_id;
    assert_eq!(e.vault().storage_reserved_bytes, 2 * CHUNK as u64 + 5);
    let day = 86_400 * NANOS_PER_SEC;
    e.rt.advance(day / 2);
    e.chunk(fresh, 0, b"abcde").unwrap();
    e.rt.advance(day / 2);
    // The first upload is idle for 24 h: refused, then collected; the other one stays.
    assert_eq!(
        e.chunk(up, 1, &data(CHUNK as usize, 1)),
        Err(VaultError::UploadExpired)
    );
    assert_eq!(collect_stale_uploads(&mut e.s, e.rt.now(), 10), 1);
    assert_eq!(collect_stale_uploads(&mut e.s, e.rt.now(), 10), 0);
    assert_eq!(e.vault().storage_reserved_bytes, 5);
    assert_eq!(e.s.header.get().content_free_pages, 1);
    assert_eq!(e.finish(up), Err(VaultError::NotFound));
    assert!(e.finish(fresh).is_err()); // wrong hash, but still open
    e.rt.advance(day);
    assert_eq!(collect_stale_uploads(&mut e.s, e.rt.now(), 10), 1);
    assert_eq!(e.vault().storage_reserved_bytes, 0);
    assert!(e.s.uploads.is_empty());
}

#[test]
fn an_upload_survives_reopening_the_memory() {
    let memory = DefaultMemoryImpl::default();
    let mut e = env();
    // Rebuild the env over a memory we keep.
    let mut s = State::open(memory.clone());
    s.set_config(e.s.config().clone());
    std::mem::swap(&mut e.s, &mut s);
    drop(s);
    let rt = MockRuntime::new(T0, p(OWNER));
    let v = vaults::create_vault(
        &mut e.s,
        &rt,
        CreateVaultArgs {
            name: "w".into(),
            plan: PlanSelection {
                tier: Tier::Basic,
                heir_slots: 1,
                witness_slot: false,
            },
            owner_age: 30,
            idempotency_key: None,
        },
    )
    .unwrap();
    vault_core::confirm_creation_payment(&mut e.s, v.id, T0, p(9)).unwrap();
    e.vault = v.id;
    let payload = data(5 * CHUNK as usize + 17, 9);
    let up = e
        .begin(payload.len() as u64, sha(&payload))
        .unwrap()
        .upload_id;
    for i in 0..3 {
        let c = CHUNK as usize;
        e.chunk(up, i, &payload[i as usize * c..(i as usize + 1) * c])
            .unwrap();
    }
    let mut reopened = State::open(memory);
    reopened.migrate().unwrap();
    std::mem::swap(&mut e.s, &mut reopened);
    drop(reopened);
    let c = CHUNK as usize;
    assert_eq!(
        e.chunk(up, 5, &payload[5 * c..]),
        Err(VaultError::ChunkOutOfOrder { expected: 3 })
    );
    for i in 3..6usize {
        e.chunk(
            up,
            i as u32,
            &payload[i * c..((i + 1) * c).min(payload.len())],
        )
        .unwrap();
    }
    let item = e.finish(up).unwrap();
    assert_eq!(e.download(OWNER, item.item_id).unwrap(), payload);
}

#[test]
fn heirs_read_only_their_items_after_unlock_within_the_daily_allowance() {
    let mut e = env();
    let for_all = e.put(b"to everyone", None);
    let for_heir1 = e.put(b"to heir 1", Some(vec![1]));
    let for_heir2 = e.put(b"to heir 2", Some(vec![2]));
    // Recipients must be heirs of this vault.
    assert!(matches!(
        e.begin_with(1, sha(b"x"), Some(vec![3]), None),
        Err(VaultError::InvalidInput { .. })
    ));
    assert!(matches!(
        e.begin_with(1, sha(b"x"), Some(vec![1, 1]), None),
        Err(VaultError::InvalidInput { .. })
    ));
    // Before unlock: heirs, witness, strangers refused.
    for who in [HEIR1, WITNESS, STRANGER] {
        e.rt.as_caller(p(who));
        assert_eq!(
            request_download(&mut e.s, &e.rt, e.vault, for_all.item_id),
            Err(VaultError::NotAuthorized)
        );
        assert_eq!(
            list_items(&e.s, &e.rt, e.vault, PageArgs::default()),
            Err(VaultError::NotAuthorized)
        );
    }
    e.set_status(VaultStatus::Unlockable);
    // Content is frozen.
    assert_eq!(
        e.begin(1, sha(b"x")),
        Err(VaultError::InvalidState {
            current: VaultStatus::Unlockable
        })
    );
    let ids = |e: &Env, who| -> Vec<ItemId> {
        list_items(&e.s, e.as_(who), e.vault, PageArgs::default())
            .unwrap()
            .items
            .iter()
            .map(|i| i.item_id)
            .collect()
    };
    assert_eq!(ids(&e, HEIR1), vec![for_all.item_id, for_heir1.item_id]);
    assert_eq!(ids(&e, HEIR2), vec![for_all.item_id, for_heir2.item_id]);
    assert_eq!(ids(&e, OWNER).len(), 3);
    e.rt.as_caller(p(WITNESS));
    assert_eq!(
        request_download(&mut e.s, &e.rt, e.vault, for_all.item_id),
        Err(VaultError::NotAuthorized)
    );
    assert_eq!(
        e.download(HEIR1, for_heir2.item_id),
        Err(VaultError::NotAuthorized)
    );
    assert_eq!(e.download(HEIR1, for_all.item_id).unwrap(), b"to everyone");
    assert_eq!(e.download(HEIR1, for_heir1.item_id).unwrap(), b"to heir 1");
    e.rt.as_caller(p(HEIR1));
    let t3 = request_download(&mut e.s, &e.rt, e.vault, for_all.item_id).unwrap();
    let day = (e.rt.now() / NANOS_PER_DAY + 1) * NANOS_PER_DAY;
    let before = e.snapshot();
    assert_eq!(
        request_download(&mut e.s, &e.rt, e.vault, for_all.item_id),
        Err(VaultError::DownloadLimitReached { resets_at: day })
    );
    assert_eq!(e.snapshot(), before);
    // Another heir and the owner are not affected.
    assert!(e.download(HEIR2, for_heir2.item_id).is_ok());
    for _ in 0..5 {
        assert!(e.download(OWNER, for_heir2.item_id).is_ok());
    }
    // A ticket is its holder's only, and expires after an hour.
    e.rt.as_caller(p(HEIR2));
    assert_eq!(
        get_download_chunk(&e.s, &e.rt, t3.ticket_id, 0),
        Err(VaultError::NotAuthorized)
    );
    e.rt.as_caller(p(HEIR1));
    assert!(get_download_chunk(&e.s, &e.rt, t3.ticket_id, 0).is_ok());
    e.rt.advance(3600 * NANOS_PER_SEC);
    assert_eq!(
        get_download_chunk(&e.s, &e.rt, t3.ticket_id, 0),
        Err(VaultError::TokenExpired)
    );
    // The next day the allowance is back; old tickets and counters get collected.
    e.rt.now.set(day);
    assert!(e.download(HEIR1, for_all.item_id).is_ok());
    let removed = collect_expired_tickets(&mut e.s, e.rt.now(), 100);
    assert!(removed >= 5, "{removed}");
    assert_eq!(e.s.download_counters.len(), 1);
}

#[test]
fn deleting_the_vault_and_purging_free_all_content() {
    let mut e = env();
    e.put(&data(3000, 1), None);
    e.begin(500, sha(b"x")).unwrap();
    e.rt.as_caller(p(OWNER));
    vaults::delete_vault(&mut e.s, &e.rt, e.vault).unwrap();
    assert!(e.s.content_items.is_empty());
    assert!(e.s.uploads.is_empty());
    assert!(e.s.content_chunks.is_empty());
    assert_eq!(
        e.s.header.get().content_free_pages,
        e.s.header.get().content_pages_hwm
    );

    let mut e = env();
    e.put(&data(3000, 1), None);
    {
        // What the scheduler does on `Unlockable → Expired`.
        let mut v = e.s.vaults.load(e.vault).unwrap();
        crate::domain::vaults::purge_payload(&mut e.s, &mut v);
        e.s.save_vault(&mut v);
    }
    let v = e.vault();
    assert_eq!((v.item_count, v.storage_committed_bytes), (0, 0));
    assert!(e.s.content_chunks.is_empty());
}

/// The storage totals of `get_metrics` follow every path that changes a vault's numbers
/// and always equal the sum over the vaults.
#[test]
fn metrics_storage_totals_follow_uploads_deletes_collection_and_purge() {
    use crate::domain::metrics::{current, recount};
    let mut e = env();
    let check = |e: &Env, committed: u64, reserved: u64| {
        let now = e.rt.now();
        let c = current(&e.s, now);
        assert_eq!(
            (c.storage_committed_bytes, c.storage_reserved_bytes),
            (committed, reserved)
        );
        assert_eq!(c, recount(&e.s, now));
    };
    check(&e, 0, 0);
    let item = e.put(&data(3000, 1), None);
    check(&e, 3000, 0);
    let open = e.begin(500, sha(b"x")).unwrap().upload_id;
    check(&e, 3000, 500);
    // A refused begin (over quota) changes nothing.
    assert!(e.begin(1 << 40, sha(b"y")).is_err());
    check(&e, 3000, 500);
    // Replace 3000 bytes by 100.
    let new = data(100, 2);
    let up = e
        .begin_with(100, sha(&new), None, Some(item.item_id))
        .unwrap();
    check(&e, 3000, 600);
    e.chunk(up.upload_id, 0, &new).unwrap();
    e.finish(up.upload_id).unwrap();
    check(&e, 100, 500);
    e.rt.as_caller(p(OWNER));
    abort_upload(&mut e.s, &e.rt, open).unwrap();
    check(&e, 100, 0);
    e.put(&data(200, 3), None);
    e.rt.as_caller(p(OWNER));
    delete_item(&mut e.s, &e.rt, e.vault, item.item_id).unwrap();
    check(&e, 200, 0);
    e.begin(50, sha(b"z")).unwrap();
    e.rt.advance(2 * 86_400 * NANOS_PER_SEC);
    assert_eq!(collect_stale_uploads(&mut e.s, e.rt.now(), 10), 1);
    check(&e, 200, 0);
    e.begin(70, sha(b"w")).unwrap();
    check(&e, 200, 70);
    {
        // What the scheduler does on `Unlockable → Expired`.
        let mut v = e.s.vaults.load(e.vault).unwrap();
        crate::domain::vaults::purge_payload(&mut e.s, &mut v);
        e.s.save_vault(&mut v);
    }
    check(&e, 0, 0);
    // Deleting a vault (tombstone) releases its numbers too.
    let mut e = env();
    e.put(&data(3000, 1), None);
    e.begin(500, sha(b"x")).unwrap();
    check(&e, 3000, 500);
    e.rt.as_caller(p(OWNER));
    vaults::delete_vault(&mut e.s, &e.rt, e.vault).unwrap();
    check(&e, 0, 0);
}

#[test]
fn idempotent_begin_returns_the_open_upload() {
    let mut e = env();
    let args = BeginUploadArgs {
        vault_id: e.vault,
        kind: ItemKind::Letter,
        size: 10,
        sha256: sha(b"0123456789"),
        encrypted_meta: serde_bytes::ByteBuf::new(),
        recipients: None,
        replaces: None,
        idempotency_key: Some("k1".into()),
    };
    e.rt.as_caller(p(OWNER));
    let a = begin_upload(&mut e.s, &e.rt, args.clone()).unwrap();
    let b = begin_upload(&mut e.s, &e.rt, args.clone()).unwrap();
    assert_eq!(a, b);
    assert_eq!(e.vault().storage_reserved_bytes, 10);
    e.chunk(a.upload_id, 0, b"0123456789").unwrap();
    e.finish(a.upload_id).unwrap();
    e.rt.as_caller(p(OWNER));
    let c = begin_upload(&mut e.s, &e.rt, args).unwrap();
    assert_ne!(c.upload_id, a.upload_id);
}
