//! The layout-8 conversion on a memory image written by the module before it (commit
//! `e38b102`: storage layout 7, 1 MiB buckets, dense-id directories as raw arrays of 16-byte
//! entries; the fixture `fixtures/layout_7` of `livault_tests::legacy_image`): today's module
//! upgrades over it, each directory holds the same entries behind a `StableVec` header in
//! the same memory, no other data moves, every answer of the public API is the same, and
//! new writes land beside the old entries.

use livault_backend::model::records::MemberRole;
use livault_backend::storage::memory;
use livault_tests::legacy_image::*;
use livault_tests::stable_usage::{buckets, virtual_memory};
use livault_tests::*;

type R<T> = Result<T, VaultError>;

fn fixture() -> Fixture {
    Fixture::load(&fixture_dir_of(LAYOUT_7_FIXTURE_DIR))
}

/// The memory numbers of the five directories.
fn directories() -> Vec<u8> {
    memory::ALL
        .iter()
        .filter(|m| memory::DIRECTORIES.contains(&m.0))
        .map(|m| m.1)
        .collect()
}

#[test]
fn the_fixture_is_a_layout_7_image_with_raw_directories() {
    let f = fixture();
    assert_eq!(buckets(&f.image).map(|b| b.0), Some(memory::BUCKET_PAGES));
    assert!(f.probes.len() > 100, "{} probes", f.probes.len());
    assert!(f.probes.iter().all(|p| !p.reply.is_empty()));
    assert_eq!(directories(), vec![25, 26, 28, 29, 36]);
    for n in directories() {
        let dir = virtual_memory(&f.image, n);
        assert!(!dir.is_empty(), "directory {n} written");
        assert_ne!(&dir[..3], b"SVC", "directory {n} is raw");
    }
}

#[test]
fn every_answer_reads_back_the_same_after_the_directories_convert() {
    let f = fixture();
    let (mut env, stable) = upgraded_with_image(&f);
    assert_eq!(buckets(&stable), buckets(&f.image), "no bucket added");
    assert_eq!(stable.len(), f.image.len(), "stable memory did not grow");

    // As post_upgrade left it (before its timers ran). Written by post_upgrade: the header (the layout stamped, metrics recounted), the ops
    // snapshot pages, the admin trail (the upgrade's entry), and the five directories
    // (converted in place). Every other memory holds what it held, byte for byte.
    let written = [memory::HEADER, memory::OPS_SNAPSHOT, memory::ADMIN_TRAIL];
    for (id, n, name) in memory::ALL {
        let (before, after) = (virtual_memory(&f.image, n), virtual_memory(&stable, n));
        if memory::DIRECTORIES.contains(&id) {
            assert_directory_converted(n, &before, &after);
        } else if written.contains(&id) {
            assert!(after.len() >= before.len(), "{name} shrank");
        } else {
            assert!(before == after, "memory {n} ({name}) changed");
        }
    }

    // Asked again after the timers the upgrade armed ran: the owner index of the image
    // (salted from the time, layout 7) is now keyed from the subnet's randomness.
    let rekeyed: Vec<String> = env
        .host
        .canister_logs()
        .filter(|l| l.content.starts_with("event=owner_index.rekeyed"))
        .map(|l| l.content.clone())
        .collect();
    let vaults_listed: usize = f
        .probes
        .iter()
        .filter(|p| p.method == "list_my_vaults")
        .map(|p| {
            candid::decode_one::<R<Page<VaultSummary>>>(&p.reply)
                .unwrap()
                .map_or(0, |page| {
                    page.items
                        .iter()
                        .filter(|v| v.role == VaultRole::Owner)
                        .count()
                })
        })
        .sum();
    assert!(vaults_listed >= 3, "{vaults_listed} owned vaults listed");
    assert_eq!(
        rekeyed,
        vec![format!("event=owner_index.rekeyed entries={vaults_listed}")]
    );
    let failures = f.differing_answers(&mut env);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn downloads_and_new_writes_work_after_the_conversion() {
    let f = fixture();
    // Every committed item of every vault downloads with its recorded SHA-256.
    let mut env = upgraded_and_downloaded(&f);
    let cast = Cast::new();

    // New entries in every directory: a vault (vault directory, audit root, owner-index
    // bucket), an item (chunk index), a ticket.
    let dave = user("after-layout-8-dave");
    let v = env.create_vault(dave, "After");
    assert!(v.id > 4, "a new id after the image's vaults: {}", v.id);
    env.pay_creation(dave, v.id);
    let letter = vec![0x5au8; 300_000];
    let item = env.upload_letter(dave, v.id, &letter, None);
    assert_eq!(download(&mut env, dave, v.id, item), letter);
    env.join(dave, v.id, MemberRole::Heir, user("after-layout-8-erin"));
    let r: R<VaultView> = env.update(cast.bob, "check_in", (1u64,));
    assert_eq!(r.unwrap().status, VaultStatus::Active);
    let r: R<TickReport> = env.update(env.admin, "run_maintenance", ());
    r.unwrap();
    // The new vault's log: created, paid, item, member... read back in order.
    let log = env.audit_log(dave, v.id);
    assert!(log.len() >= 4, "{} events", log.len());
    assert_eq!(log[0].action, "vault.created");
    // An old vault's log carries the check-in after its recorded events.
    let old_log = env.audit_log(cast.bob, 1);
    assert!(
        old_log.iter().any(|e| e.action.contains("check")),
        "{old_log:?}"
    );

    // A second upgrade finds layout 8 and converts nothing: the directories are unchanged.
    let before = env.host.stable_memory().unwrap().to_vec();
    env.upgrade(None).expect("second upgrade");
    let after = env.host.stable_memory().unwrap().to_vec();
    for n in directories() {
        assert!(
            virtual_memory(&before, n) == virtual_memory(&after, n),
            "directory {n} rewritten by the second upgrade"
        );
    }
    assert_eq!(download(&mut env, dave, v.id, item), letter);
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
