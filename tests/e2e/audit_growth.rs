//! Issue #12, H1: a vault's audit log grows without a per-vault cap. Layout 3 kept a vault's
//! event locations in one slab record (16 bytes each, at most 1 MiB), so the 65 536th kept
//! event trapped, and so did every later audit-writing call on that vault. An owner's client
//! calling `update_vault` once a second gets there in 18 hours; here the events are seeded by
//! the benchmark-only `bench_seed_audit` (bench-seed wasm: `scripts/build.sh --bench-seed`),
//! which appends through the same `audit::append` as every user call, then the real calls run.

use candid::Principal;
use livault_backend::model::records::MemberRole;
use livault_tests::*;

type R<T> = Result<T, VaultError>;

/// Kept events the layout-3 index record held: `(1 MiB − 8) / 16`.
const OLD_CAP: u64 = 65_535;
/// Events `bench_seed_audit` appends per call at most.
const SEED_BATCH: u64 = 10_000;

/// The bench wasm; the maintenance timer never fires within the test (ticks through
/// `run_maintenance`).
fn env() -> TestEnv {
    TestEnv::with_wasm(bench_wasm(), manual_ticks_args())
}

fn head(env: &mut TestEnv, who: Principal, v: VaultId) -> AuditHead {
    env.query::<_, R<AuditHead>>(who, "get_audit_head", (v,))
        .expect("get_audit_head")
}

/// Appends events to `owner`'s vault `v` until its next seq is `target`; returns it.
fn seed_until(env: &mut TestEnv, owner: Principal, v: VaultId, target: u64) -> u64 {
    let controller = env.controller;
    let mut next = head(env, owner, v).next_seq;
    while next < target {
        let n = (target - next).min(SEED_BATCH) as u32;
        let r: R<u64> = env.update(controller, "bench_seed_audit", (v, n));
        next = r.expect("bench_seed_audit");
    }
    assert_eq!(next, target);
    next
}

/// The events of `v` after `start_after` (one page of up to 100), as the owner sees them.
fn tail(env: &mut TestEnv, owner: Principal, v: VaultId, start_after: u64) -> Vec<AuditEventView> {
    let page: Page<AuditEventView> = env
        .query::<_, R<Page<AuditEventView>>>(
            owner,
            "get_audit_log",
            (
                v,
                PageArgs {
                    start_after: Some(start_after),
                    limit: Some(100),
                },
            ),
        )
        .expect("get_audit_log");
    page.items
}

fn first_page(env: &mut TestEnv, owner: Principal, v: VaultId) -> Vec<AuditEventView> {
    let page: Page<AuditEventView> = env
        .query::<_, R<Page<AuditEventView>>>(
            owner,
            "get_audit_log",
            (
                v,
                PageArgs {
                    start_after: None,
                    limit: Some(10),
                },
            ),
        )
        .expect("get_audit_log");
    page.items
}

fn rename(env: &mut TestEnv, owner: Principal, v: VaultId, name: &str) -> R<VaultView> {
    env.update(
        owner,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v,
            name: Some(name.into()),
            unlock_rules: None,
            post_unlock_days: None,
            audit_retention_days: None,
        },),
    )
}

/// Asserts that the newest events of `v` are `seqs` with `actions`, chained up to the head.
fn assert_newest(
    env: &mut TestEnv,
    owner: Principal,
    v: VaultId,
    expect: &[(u64, &str)],
) -> AuditHead {
    let h = head(env, owner, v);
    let from = expect[0].0;
    let got = tail(env, owner, v, from - 1);
    let got: Vec<(u64, &str)> = got.iter().map(|e| (e.seq, e.action.as_str())).collect();
    assert_eq!(got, expect);
    let newest = tail(env, owner, v, h.next_seq - 2);
    assert_eq!(newest.len(), 1);
    assert_eq!(
        newest[0].hash, h.head_hash,
        "the last kept event is the head"
    );
    h
}

/// An `Active` vault with one heir and a letter, audit retention 30 days.
fn active_vault(env: &mut TestEnv, owner: Principal, heir: Principal) -> VaultId {
    let v = env.create_vault(owner, "Family").id;
    env.pay_creation(owner, v);
    let now = env.now();
    let r: R<VaultView> = env.update(
        owner,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v,
            name: None,
            unlock_rules: Some(UnlockRules {
                unlock_after: Some(now + 400 * DAY_NS),
                inactivity_days: Some(180),
                request_wait_days: 7,
                required_heirs: 1,
                required_witness: false,
            }),
            post_unlock_days: Some(30),
            audit_retention_days: Some(30),
        },),
    );
    r.expect("update_vault");
    let member = env.join(owner, v, MemberRole::Heir, heir);
    env.upload_letter(owner, v, b"ciphertext", Some(vec![member]));
    let r: R<VaultView> = env.update(owner, "finalize_setup", (v,));
    assert_eq!(r.expect("finalize_setup").status, VaultStatus::Active);
    v
}

#[test]
fn a_log_past_65536_kept_events_keeps_taking_user_calls_and_compaction() {
    let mut env = env();
    let (owner, heir) = (user("owner"), user("heir"));
    let v = active_vault(&mut env, owner, heir);

    // Fill the log to the old cap: every event still kept (nothing is 30 days old).
    seed_until(&mut env, owner, v, OLD_CAP);
    let r: R<VaultView> = env.update(owner, "check_in", (v,));
    assert_eq!(
        r.expect("check_in: event #65 536").status,
        VaultStatus::Active
    );
    env.advance(std::time::Duration::from_secs(1));
    let r = rename(&mut env, owner, v, "Family 2");
    assert_eq!(r.expect("update_vault: event #65 537").name, "Family 2");
    assert_newest(
        &mut env,
        owner,
        v,
        &[
            (OLD_CAP - 1, "vault.settings_changed"),
            (OLD_CAP, "owner.check_in"),
            (OLD_CAP + 1, "vault.renamed"),
        ],
    );

    // Further on (two more index pages of 8 192), then the owner again.
    let next = seed_until(&mut env, owner, v, OLD_CAP + 2 * 8_192 + 7);
    env.advance(std::time::Duration::from_secs(1));
    let r = rename(&mut env, owner, v, "Family 3");
    assert_eq!(r.expect("update_vault at event 81 927").name, "Family 3");
    let r: R<VaultView> = env.update(owner, "check_in", (v,));
    r.expect("check_in at event 81 928");
    assert_newest(
        &mut env,
        owner,
        v,
        &[
            (next - 1, "vault.settings_changed"),
            (next, "vault.renamed"),
            (next + 1, "owner.check_in"),
        ],
    );
    let first = first_page(&mut env, owner, v);
    assert_eq!(first[0].seq, 0, "nothing compacted yet");
    assert_eq!(first[0].action, "vault.created");

    // Retention: 31 days later the scheduler's compaction removes the oldest events in
    // batches of 100 and logs each run; nothing traps, nothing is parked.
    env.advance_days(31);
    let admin = env.admin;
    for run in 1..=3u64 {
        let report: R<TickReport> = env.update(admin, "run_maintenance", ());
        let report = report.expect("run_maintenance");
        assert_eq!(
            (report.failed, report.applied),
            (0, 1),
            "run {run}: {report:?}"
        );
        let first = first_page(&mut env, owner, v);
        assert_eq!(first[0].seq, 100 * run, "run {run}");
        let h = head(&mut env, owner, v);
        let newest = tail(&mut env, owner, v, h.next_seq - 2);
        assert_eq!(newest[0].action, "audit.compacted");
        assert_eq!(
            newest[0].details,
            format!(
                "removed 100 events (seq {}..={}) older than 30 days",
                100 * (run - 1),
                100 * run - 1
            )
        );
    }
    let m: R<Metrics> = env.query(admin, "get_metrics", ());
    assert_eq!(m.expect("metrics").scheduler.parked, 0);

    // And the owner's calls still work on the compacted log.
    let r = rename(&mut env, owner, v, "Family 4");
    r.expect("update_vault after compaction");
    let h = head(&mut env, owner, v);
    assert_eq!(h.next_seq, next + 2 + 3 + 1);
    let newest = tail(&mut env, owner, v, h.next_seq - 2);
    assert_eq!(newest[0].action, "vault.renamed");
    assert_eq!(newest[0].hash, h.head_hash);
}
