//! The bucket migration on a memory image written by the module before it (8 MiB
//! `MemoryManager` buckets, storage layout 4; the fixture of `livault_tests::legacy_image`):
//! today's module upgrades over it, every answer of its public API is the same, the data
//! is byte for byte where it was, new writes work, and the manager now hands out 1 MiB.

use livault_backend::domain::admin_trail::AdminTrailEntry;
use livault_backend::model::records::MemberRole;
use livault_backend::storage::memory;
use livault_tests::legacy_image::*;
use livault_tests::stable_usage::{buckets, virtual_memory};
use livault_tests::*;
use local_replica::{Host, HostConfig};

/// Bytes of one `MemoryManager` bucket after the bucket migration (1 MiB).
const BUCKET_BYTES: usize = memory::BUCKET_PAGES as usize * 65_536;

type R<T> = Result<T, VaultError>;

fn fixture() -> Fixture {
    Fixture::load(&fixture_dir())
}

#[test]
fn the_fixture_is_an_eight_mib_bucket_layout() {
    let f = fixture();
    assert_eq!(buckets(&f.image).map(|b| b.0), Some(128));
    assert!(f.probes.len() > 100, "{} probes", f.probes.len());
    assert!(f.probes.iter().all(|p| !p.reply.is_empty()));
}

#[test]
fn every_answer_reads_back_the_same_after_the_bucket_migration() {
    let f = fixture();
    let mut env = upgraded(&f);
    let stable = env.host.stable_memory().unwrap().to_vec();
    let (bucket_pages, count) = buckets(&stable).unwrap();
    let (_, old_count) = buckets(&f.image).unwrap();
    assert_eq!(bucket_pages, memory::BUCKET_PAGES);
    // The memories that grow (layouts 6 and 7), new, one bucket each: the owner index's
    // directory, the billing slots and the day-first download counters.
    assert_eq!(virtual_memory(&f.image, 36).len(), 0);
    assert_eq!(virtual_memory(&stable, 36).len(), 65_536);
    assert_eq!(virtual_memory(&f.image, 37).len(), 0);
    assert_eq!(virtual_memory(&f.image, 38).len(), 0);
    assert_eq!(virtual_memory(&stable, 38).len(), 65_536);
    assert_eq!(
        count,
        old_count * 8 + 3,
        "no other memory grew during the upgrade"
    );
    assert_eq!(
        stable.len(),
        f.image.len() + 3 * BUCKET_BYTES,
        "no data moved"
    );

    // Byte for byte: every memory the upgrade does not write holds what it held.
    // Written by post_upgrade: the header (metrics counters recounted), the ops snapshot
    // pages (reserved again), the admin trail (the upgrade's entry); the layout-6 migration
    // clears the retired owner B-tree and writes the owner index (its directory, its
    // buckets in the record slab), and moves the payment trail (billing entries into their
    // slots, settled journals folded with their session's journal base); layout 7 opens
    // the day-first download counters (the image has none to move); layout 8 rewrites
    // the raw directories as `StableVec`s (checked entry by entry below); the answers
    // below read them back the same.
    let written = [
        memory::VAULT_DIR,
        memory::AUDIT_INDEX,
        memory::CHUNK_DIR,
        memory::TICKET_DIR,
        memory::HEADER,
        memory::OPS_SNAPSHOT,
        memory::ADMIN_TRAIL,
        memory::VAULTS_BY_OWNER,
        memory::RECORD_SLAB,
        memory::OWNER_INDEX,
        memory::PAYMENT_SESSIONS,
        memory::PAYMENT_JOURNAL,
        memory::BILLING,
        memory::BILLING_SLOTS,
        memory::DOWNLOAD_COUNTERS_BY_DAY,
    ];
    let slots = virtual_memory(&stable, 37);
    assert!(
        !slots.is_empty() && slots[12..16] == [74, 0, 0, 0],
        "billing slots"
    );
    // Layout 8: each raw directory of the image is now the same entries behind a
    // `StableVec` header (trailing absent entries dropped), in the same memory.
    let directories = [
        memory::VAULT_DIR,
        memory::AUDIT_INDEX,
        memory::CHUNK_DIR,
        memory::TICKET_DIR,
    ];
    for (_, n, _) in memory::ALL.iter().filter(|m| directories.contains(&m.0)) {
        assert_directory_converted(
            *n,
            &virtual_memory(&f.image, *n),
            &virtual_memory(&stable, *n),
        );
    }
    for (id, n, name) in memory::ALL {
        let before = virtual_memory(&f.image, n);
        let after = virtual_memory(&stable, n);
        if written.contains(&id) {
            assert!(after.len() >= before.len(), "{name} shrank");
        } else {
            assert!(before == after, "memory {n} ({name}) changed");
        }
    }

    // Every recorded answer, asked again at the same times.
    let failures = f.differing_answers(&mut env);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn recorded<T: candid::CandidType + serde::de::DeserializeOwned>(f: &Fixture, method: &str) -> T {
    let p = f.probes.iter().find(|p| p.method == method).expect(method);
    candid::decode_one::<R<T>>(&p.reply)
        .expect("decode")
        .expect(method)
}

#[test]
fn the_operators_view_carries_over_with_one_upgrade_more() {
    let f = fixture();
    let mut env = upgraded(&f);
    let admin = env.admin;
    let old: Metrics = recorded(&f, "get_metrics");
    let m: Metrics = env
        .query::<_, R<Metrics>>(admin, "get_metrics", ())
        .expect("get_metrics");
    assert_eq!(
        m.ops.upgrades,
        old.ops.upgrades + 1,
        "counters carried over"
    );
    assert_eq!(m.ops.admin_actions_total, old.ops.admin_actions_total + 1);
    assert_eq!(m.ops.installed_at, old.ops.installed_at);
    assert_eq!(m.vaults_total, old.vaults_total);
    assert_eq!(m.vaults_by_status, old.vaults_by_status);
    assert_eq!(m.storage_committed_bytes, old.storage_committed_bytes);
    assert_eq!(m.storage_reserved_bytes, old.storage_reserved_bytes);
    assert_eq!(m.invites_issued_total, old.invites_issued_total);
    assert_eq!(m.invites_claimed_total, old.invites_claimed_total);
    assert_eq!(m.open_payment_sessions, old.open_payment_sessions);
    assert_eq!(m.billing_entries, old.billing_entries);
    assert_eq!(m.billing_treasury_e8s, old.billing_treasury_e8s);
    assert_eq!(m.scheduler.queue_len, old.scheduler.queue_len);
    assert_eq!(
        m.scheduler.payment_checks_queued,
        old.scheduler.payment_checks_queued
    );
    // Three buckets more (layouts 6 and 7), memories the image lacks: the owner index's
    // directory, the billing slots and the day-first download counters.
    assert_eq!(
        m.stable_memory_bytes,
        (f.image.len() + 3 * BUCKET_BYTES) as u64
    );
    assert_eq!(
        m.stable_memory_bytes,
        old.stable_memory_bytes + 3 * BUCKET_BYTES as u64
    );
    // The migrated memories keep the unused tail of their last 8 MiB bucket: counted.
    let allocated: u64 = m.stable_memories.iter().map(|x| x.allocated_bytes).sum();
    assert_eq!(allocated + 65_536, m.stable_memory_bytes);
    assert_eq!(m.stable_memories.len(), old.stable_memories.len() + 3);
    for (new, old) in m.stable_memories.iter().zip(&old.stable_memories) {
        assert_eq!((new.id, new.allocated_bytes), (old.id, old.allocated_bytes));
    }
    // The memories of layouts 6 and 7: the owner index's directory, the billing slots and
    // the day-first download counters.
    let added: Vec<(u8, u64)> = m.stable_memories[old.stable_memories.len()..]
        .iter()
        .map(|x| (x.id, x.allocated_bytes))
        .collect();
    assert_eq!(added, vec![(36, 1 << 20), (37, 1 << 20), (38, 1 << 20)]);

    let old: Page<AdminTrailEntry> = recorded(&f, "list_admin_trail");
    let page = PageArgs {
        start_after: None,
        limit: Some(100),
    };
    let trail: Page<AdminTrailEntry> = env
        .query::<_, R<Page<AdminTrailEntry>>>(admin, "list_admin_trail", (page,))
        .expect("list_admin_trail");
    assert_eq!(trail.items.len(), old.items.len() + 1);
    assert_eq!(trail.items[..old.items.len()], old.items[..]);
    let last = trail.items.last().unwrap();
    assert_eq!(last.action, "upgrade");
    assert!(old.items.len() >= 5, "install and the admin actions");
}

#[test]
fn content_downloads_and_new_writes_work_after_the_migration() {
    let f = fixture();
    // Every committed item of every vault downloads with its recorded SHA-256.
    let mut env = upgraded_and_downloaded(&f);
    let cast = Cast::new();

    // New data: a vault paid and filled; an old vault checked in.
    let dave = user("after-migration-dave");
    let v = env.create_vault(dave, "After").id;
    env.pay_creation(dave, v);
    let big = vec![0x5au8; 3 << 20];
    let before = env.host.stable_memory().unwrap().len();
    let item = env.upload_letter(dave, v, &big[..1_000_000], None);
    let grown = env.host.stable_memory().unwrap().len() - before;
    assert_eq!(grown % (1 << 20), 0, "grows by 1 MiB buckets: {grown}");
    assert!(grown <= 3 << 20, "grew {grown} bytes for 1 MB of content");
    let body = download(&mut env, dave, v, item);
    assert_eq!(body, &big[..1_000_000]);
    // Members join the new vault (new invites and token index entries beside the old ones).
    env.join(dave, v, MemberRole::Heir, user("after-migration-erin"));
    let old_active: VaultId = 1;
    let r: R<VaultView> = env.update(cast.bob, "check_in", (old_active,));
    assert_eq!(r.unwrap().status, VaultStatus::Active);
    let r: R<TickReport> = env.update(env.admin, "run_maintenance", ());
    r.unwrap();

    // A second upgrade finds 1 MiB buckets and leaves the layout alone.
    let layout = buckets(env.host.stable_memory().unwrap()).unwrap();
    env.upgrade(None).expect("second upgrade");
    assert_eq!(buckets(env.host.stable_memory().unwrap()), Some(layout));
    assert_eq!(
        env.get_vault(dave, v).unwrap().status,
        VaultStatus::NeedSetup
    );
    let mine: R<Page<VaultSummary>> = env.query(
        cast.alice,
        "list_my_vaults",
        (PageArgs {
            start_after: None,
            limit: Some(100),
        },),
    );
    assert_eq!(mine.unwrap().items.len(), 2);
}

/// A layout the migration does not know rolls the upgrade back and changes nothing.
#[test]
fn an_unknown_layout_is_refused_and_the_upgrade_rolled_back() {
    let f = fixture();
    let controller = user("controller");
    let mut host = Host::new(HostConfig::default());
    host.install(&empty_module(), Vec::new(), controller)
        .unwrap();
    let mut image = f.image.clone();
    image[6..8].copy_from_slice(&64u16.to_le_bytes());
    host.set_stable_memory(image.clone()).unwrap();
    let arg = candid::encode_one(None::<LiVaultArgs>).unwrap();
    let err = host.upgrade(wasm(), arg).expect_err("refused").to_string();
    assert!(
        err.contains("refusing to open the memory manager") && err.contains("bucket size of 64"),
        "{err}"
    );
    assert!(host.stable_memory().unwrap() == &image[..], "rolled back");
}
