//! Issue #12 on the real wasm: what throw-away principals, chatty clients and unlucky users
//! could do to the canister, each reproduced first, then held (M2, M3, L4, L6, capacity,
//! refund destination). Payments races are in `payments.rs`.

use std::time::Duration;

use candid::Principal;
use livault_backend::model::config::{Durations, Limits};
use livault_backend::model::member_types::RecoveryCodeIssued;
use livault_backend::model::records::MemberRole;
use livault_tests::*;

type R<T> = Result<T, VaultError>;

fn metrics(env: &mut TestEnv) -> Metrics {
    let admin = env.admin;
    let m: R<Metrics> = env.query(admin, "get_metrics", ());
    m.expect("get_metrics")
}

fn create_draft(env: &mut TestEnv, owner: Principal, key: Option<&str>) -> R<VaultView> {
    env.update(
        owner,
        "create_vault",
        (CreateVaultArgs {
            name: "Draft".into(),
            plan: PlanSelection {
                tier: Tier::Basic,
                heir_slots: 1,
                witness_slot: false,
            },
            owner_age: 30,
            idempotency_key: key.map(str::to_string),
        },),
    )
}

/// A canister whose maintenance timer fires once a day and whose validity is `validity_days`.
fn daily_env(validity_days: u32) -> TestEnv {
    TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(Durations {
            timer_interval_secs: 86_400,
            validity_days,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `update_vault` setting only the unlock rules.
fn set_rules(env: &mut TestEnv, owner: Principal, v: VaultId, rules: UnlockRules) {
    let r: R<VaultView> = env.update(
        owner,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: v,
            name: None,
            unlock_rules: Some(rules),
            post_unlock_days: None,
            audit_retention_days: None,
        },),
    );
    r.expect("rules");
}

/// An `Active` vault with `rules`, one heir joined and one letter. Returns (owner, heir, vault).
fn active_vault(env: &mut TestEnv, rules: UnlockRules) -> (Principal, Principal, VaultId) {
    let (owner, heir) = (user("owner"), user("heir"));
    let v = env.create_vault(owner, "Family").id;
    env.pay_creation(owner, v);
    set_rules(env, owner, v, rules);
    env.join(owner, v, MemberRole::Heir, heir);
    env.upload_letter(owner, v, b"ciphertext", None);
    let r: R<VaultView> = env.update(owner, "finalize_setup", (v,));
    assert_eq!(r.unwrap().status, VaultStatus::Active);
    (owner, heir, v)
}

// ---------------------------------------------------------------- M3

/// Issue #12 M3 (SPEC §3, §4: in `GraceHeir` the time gate holds; the vault becomes
/// `Unlockable` the moment the quorum holds too). A vault whose rules need no approvals
/// (a pure time lock whose date is far away) runs out of validity, passes `GraceMaster`,
/// and unlocks at the scheduler's first tick in `GraceHeir` — nobody has to call
/// `trigger_unlock` before the payload would be purged.
#[test]
fn a_grace_heir_vault_that_needs_no_approvals_unlocks_by_itself() {
    let mut env = daily_env(30);
    let now = env.now();
    let (owner, heir, v) = active_vault(
        &mut env,
        UnlockRules {
            unlock_after: Some(now + 3000 * DAY_NS),
            inactivity_days: None,
            request_wait_days: 7,
            required_heirs: 0,
            required_witness: false,
        },
    );
    env.advance_days(31);
    assert_eq!(
        env.get_vault(owner, v).unwrap().status,
        VaultStatus::GraceMaster
    );
    env.advance_days(14);
    let status = env.get_vault(heir, v).unwrap().status;
    assert!(
        status == VaultStatus::GraceHeir || status == VaultStatus::Unlockable,
        "{status:?}"
    );
    env.advance_days(1);
    let vault = env.get_vault(heir, v).unwrap();
    assert_eq!(
        vault.status,
        VaultStatus::Unlockable,
        "unlocked by the tick"
    );
    assert!(vault.access_until.is_some());
    // Far from the GraceHeir purge: the heir can download.
    env.advance_days(20);
    assert_eq!(
        env.get_vault(heir, v).unwrap().status,
        VaultStatus::Unlockable
    );
}

// ---------------------------------------------------------------- M2

/// Issue #12 M2: create → delete cycles of unpaid drafts by throw-away principals leave no
/// scheduler entries, no tombstone and no idempotency entry behind; the drafts' ids stay
/// used (a new vault gets a new id).
#[test]
fn deleted_unpaid_drafts_leave_nothing_but_their_ids() {
    let mut env = TestEnv::new();
    let baseline = metrics(&mut env).scheduler.queue_len;
    let mut last_id = 0;
    for i in 0..30 {
        let p = user(&format!("throwaway-{i}"));
        let v = create_draft(&mut env, p, Some("same-key")).unwrap();
        assert!(v.id > last_id);
        last_id = v.id;
        // A retention change used to start a second compaction chain.
        let r: R<VaultView> = env.update(
            p,
            "update_vault",
            (UpdateVaultArgs {
                vault_id: v.id,
                name: None,
                unlock_rules: None,
                post_unlock_days: None,
                audit_retention_days: Some(30),
            },),
        );
        r.unwrap();
        let deleted: R<VaultView> = env.update(p, "delete_vault", (v.id,));
        assert_eq!(deleted.unwrap().status, VaultStatus::Deleted);
        assert_eq!(env.get_vault(p, v.id), Err(VaultError::NotFound));
    }
    let m = metrics(&mut env);
    assert_eq!(m.scheduler.queue_len, baseline, "no queue entry left");
    assert_eq!(m.vaults_total, 30, "ids stay used");
    let count = |s: VaultStatus| {
        m.vaults_by_status
            .iter()
            .find(|c| c.status == s)
            .map_or(0, |c| c.count)
    };
    assert_eq!(count(VaultStatus::Draft), 0);
    assert_eq!(count(VaultStatus::Deleted), 0, "no tombstones of drafts");
    // The idempotency key is free again once its draft is gone.
    let p = user("throwaway-0");
    let again = create_draft(&mut env, p, Some("same-key")).unwrap();
    assert_eq!(again.id, 31);
    assert_eq!(again.status, VaultStatus::Draft);
    // A year later nothing has come back.
    env.advance_days(400);
    let m = metrics(&mut env);
    assert_eq!(
        m.scheduler.queue_len, baseline,
        "the TTL purge erased the last draft"
    );
    assert_eq!(env.get_vault(p, again.id), Err(VaultError::NotFound));
}

/// Issue #12 M2: the per-owner vault limit must not read the owner's deleted vaults, so a
/// principal's 200th create (over 11 days: 20 creations a day) costs what its first did.
#[test]
fn create_vault_costs_the_same_after_many_deleted_drafts() {
    let mut env = TestEnv::new();
    let p = user("churner");
    let cost = |env: &mut TestEnv| {
        let arg = candid::encode_one(CreateVaultArgs {
            name: "Draft".into(),
            plan: PlanSelection {
                tier: Tier::Basic,
                heir_slots: 1,
                witness_slot: false,
            },
            owner_age: 30,
            idempotency_key: None,
        })
        .unwrap();
        let reply = env.host.update(p, "create_vault", arg).unwrap();
        let v: R<VaultView> = candid::decode_one(&reply.bytes).unwrap();
        (v.unwrap().id, reply.instructions)
    };
    // The baseline is a warm canister (20 drafts created and deleted): the very first
    // create_vault of an empty canister is ~13% cheaper (empty maps), which is no growth.
    let mut created = 0u32;
    let mut churn = |env: &mut TestEnv, n: usize| {
        let mut last = 0;
        for _ in 0..n {
            // Stay inside the rate limit and the 20 vault creations a principal makes a day.
            created += 1;
            if created.is_multiple_of(19) {
                env.advance_days(1);
            }
            env.advance(Duration::from_secs(2));
            let (id, c) = cost(env);
            let r: R<VaultView> = env.update(p, "delete_vault", (id,));
            r.unwrap();
            last = c;
        }
        last
    };
    let first = churn(&mut env, 20);
    let last = churn(&mut env, 200);
    println!("create_vault: {first} instructions after 20 deleted drafts, {last} after 220");
    assert!(
        last * 10 <= first * 11,
        "create_vault grew from {first} to {last} instructions"
    );
}

/// Issue #12 M2: no recovery codes on an unpaid draft (they cost a randomness call and kept a
/// record each), and a replaced code is forgotten rather than kept forever.
#[test]
fn recovery_codes_need_a_paid_vault_and_replaced_ones_are_forgotten() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family").id;
    let r: R<RecoveryCodeIssued> = env.update(owner, "issue_recovery_code", (v, false));
    assert_eq!(
        r,
        Err(VaultError::InvalidState {
            current: VaultStatus::Draft
        })
    );
    env.pay_creation(owner, v);
    let first: R<RecoveryCodeIssued> = env.update(owner, "issue_recovery_code", (v, false));
    let first = first.unwrap();
    let second: R<RecoveryCodeIssued> = env.update(owner, "issue_recovery_code", (v, false));
    second.unwrap();
    let used: R<VaultView> = env.update(user("thief"), "use_recovery_code", (first.code,));
    assert_eq!(used, Err(VaultError::TokenInvalid));
}

// ---------------------------------------------------------------- L4

/// Issue #12 L4: a member reading the audit log sees the owner's and its own principal, but
/// not another member's (`list_members` hides them too): those read as the anonymous
/// principal; details name members by id.
#[test]
fn members_do_not_read_each_others_principals_in_the_audit_log() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let (bob, carol) = (user("bob"), user("carol"));
    let v = env.create_vault(owner, "Family").id;
    env.pay_creation(owner, v);
    env.join(owner, v, MemberRole::Heir, bob);
    env.join(owner, v, MemberRole::Heir, carol);
    let seen_by_bob: Vec<Principal> = env.audit_log(bob, v).into_iter().map(|e| e.actor).collect();
    assert!(seen_by_bob.contains(&bob));
    assert!(seen_by_bob.contains(&owner));
    assert!(
        !seen_by_bob.contains(&carol),
        "bob must not learn carol's principal"
    );
    assert!(seen_by_bob.contains(&Principal::anonymous()));
    let seen_by_owner: Vec<Principal> = env
        .audit_log(owner, v)
        .into_iter()
        .map(|e| e.actor)
        .collect();
    assert!(seen_by_owner.contains(&carol), "the owner sees everything");
    let text: String = env
        .audit_log(bob, v)
        .into_iter()
        .map(|e| e.details)
        .collect();
    assert!(!text.contains(&carol.to_text()));
}

// ---------------------------------------------------------------- L6

/// Issue #12 L6: the public `/metrics` page shows no revenue and no cycle balance (admins
/// read them in `get_metrics`).
#[test]
fn public_metrics_show_no_revenue_or_cycles() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family").id;
    env.pay_creation(owner, v);
    let req = HttpRequest {
        method: "GET".into(),
        url: "/metrics".into(),
        headers: vec![],
        body: serde_bytes::ByteBuf::new(),
    };
    let resp: HttpResponse = env.query(Principal::anonymous(), "http_request", (req,));
    assert_eq!(resp.status_code, 200);
    let text = String::from_utf8(resp.body.into_vec()).unwrap();
    assert!(text.contains("livault_vaults"), "{text}");
    for hidden in ["treasury", "refunded_e8s", "cycles"] {
        assert!(!text.contains(hidden), "/metrics shows {hidden}:\n{text}");
    }
    let m = metrics(&mut env);
    assert!(m.billing_treasury_e8s > 0 && m.cycles_balance > 0);
}

/// Issue #12 L6: a chunk size so small that the largest tier needs more chunks than a blob's
/// index holds is refused, at install, upgrade and `set_pricing` alike.
#[test]
fn chunk_sizes_that_overflow_the_chunk_index_are_refused() {
    let tiny = Limits {
        max_chunk_bytes: 1024,
        ..Default::default()
    };
    let arg = candid::encode_one(Some(LiVaultArgs::Init(InitArgs {
        limits: Some(tiny.clone()),
        ..Default::default()
    })))
    .unwrap();
    let mut host = local_replica::Host::new(local_replica::HostConfig::default());
    let err = host.install(wasm(), arg, user("controller"));
    assert!(
        format!("{:?}", err.expect_err("install must fail")).contains("max_chunk_bytes"),
        "the refusal names the field"
    );
    let mut env = TestEnv::new();
    let r = env.upgrade(Some(LiVaultArgs::Upgrade(UpgradeArgs {
        limits: Some(tiny),
        ..Default::default()
    })));
    assert!(r.is_err(), "upgrade with 1 KiB chunks must fail");
    // 16 KiB chunks fit 250 MiB (16 000 chunks)... but not a 2 TiB-per-item price table.
    let mut p = livault_backend::model::config::Pricing::default();
    p.tiers[4].storage_bytes = 1 << 40;
    let admin = env.admin;
    let r: R<()> = env.update(admin, "set_pricing", (p,));
    assert!(matches!(r, Err(VaultError::InvalidInput { .. })), "{r:?}");
}

// ---------------------------------------------------------------- capacity

/// Issue #12 item 4: past the capacity high-water mark new vaults and uploads get a typed
/// refusal, while existing vaults keep working (check-in, downloads); the metrics show the
/// headroom.
#[test]
fn past_the_high_water_mark_new_data_is_refused_and_existing_vaults_work() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family").id;
    env.pay_creation(owner, v);
    let item = env.upload_letter(owner, v, b"before the mark", None);
    let m = metrics(&mut env);
    assert!(m.stable_memory_headroom_bytes > 0);
    assert_eq!(
        m.stable_memory_headroom_bytes,
        m.stable_memory_high_water_bytes - m.stable_memory_bytes
    );
    // The operator lowers the mark below what the canister holds.
    env.upgrade(Some(LiVaultArgs::Upgrade(UpgradeArgs {
        limits: Some(Limits {
            stable_memory_high_water_bytes: Some(m.stable_memory_bytes),
            ..Default::default()
        }),
        ..Default::default()
    })))
    .unwrap();
    let m = metrics(&mut env);
    assert_eq!(m.stable_memory_headroom_bytes, 0);
    let full = |limit| VaultError::PlanLimit {
        resource: "canister_storage".into(),
        limit,
    };
    let r = create_draft(&mut env, user("newcomer"), None);
    assert_eq!(r, Err(full(m.stable_memory_high_water_bytes)));
    let up: R<UploadView> = env.update(
        owner,
        "begin_upload",
        (BeginUploadArgs {
            vault_id: v,
            kind: ItemKind::Letter,
            size: 3,
            sha256: serde_bytes::ByteBuf::from(vec![0; 32]),
            encrypted_meta: serde_bytes::ByteBuf::new(),
            recipients: None,
            replaces: None,
            idempotency_key: None,
        },),
    );
    assert_eq!(up, Err(full(m.stable_memory_high_water_bytes)));
    // Existing vaults: check-in and downloads work.
    let r: R<VaultView> = env.update(owner, "check_in", (v,));
    r.unwrap();
    let t: R<DownloadTicket> = env.update(owner, "request_download", (v, item));
    t.unwrap();
}

// ---------------------------------------------------------------- refund destination

/// Issue #12 item 5: the owner names the account refunds go to (the wallet that paid); an
/// overpayment's excess goes there, and only the owner may set it.
#[test]
fn the_owner_names_where_refunds_go() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family").id;
    let wallet = Account {
        owner: user("wallet"),
        subaccount: Some(serde_bytes::ByteBuf::from(vec![9u8; 32])),
    };
    let denied: R<()> = env.update(
        user("stranger"),
        "set_refund_account",
        (v, Some(wallet.clone())),
    );
    assert_eq!(denied, Err(VaultError::NotAuthorized));
    let bad: R<()> = env.update(
        owner,
        "set_refund_account",
        (
            v,
            Some(Account {
                owner: user("wallet"),
                subaccount: Some(serde_bytes::ByteBuf::from(vec![1u8; 5])),
            }),
        ),
    );
    assert!(matches!(bad, Err(VaultError::InvalidInput { .. })));
    let ok: R<()> = env.update(owner, "set_refund_account", (v, Some(wallet.clone())));
    ok.unwrap();
    assert_eq!(
        env.get_vault(owner, v).unwrap().refund_account,
        Some(wallet)
    );
    let s: R<PaymentSession> = env.update(owner, "init_payment", (v, PaymentPurpose::Create));
    let s = s.unwrap();
    let payer = user("payer");
    env.host
        .fund(AccountId::new(&payer, None), s.amount_e8s + 1_000_000);
    env.host
        .ledger_transfer_as(
            &payer,
            AccountId::from_hex(&s.account_identifier).unwrap(),
            s.amount_e8s + 500_000,
        )
        .unwrap();
    let r: R<PaymentReceipt> = env.update(owner, "verify_payment", (s.id,));
    assert_eq!(r.unwrap().billing.refund_e8s, 500_000 - LEDGER_FEE);
    assert_eq!(
        env.host
            .ledger()
            .balance(&AccountId::new(&user("wallet"), Some([9u8; 32]))),
        500_000 - LEDGER_FEE
    );
}

// ---------------------------------------------------------------- daily download counters

/// Issue #14 (found while making the per-day counters a repository): the tick's collector
/// of past days' download counters walked the `(principal, day)` map from its start until it
/// had found its batch of past ones, so on a day when none is past it read **every counter of
/// the day**, each tick: the heirs downloading that day made every tick dearer. Keyed
/// `(day, principal)` (layout 7) the past days are a prefix and the collector reads one key.
/// Here 40 heirs download on one day: the next tick costs what the tick before them cost.
#[test]
fn a_tick_does_not_read_the_days_download_counters() {
    const VAULTS: usize = 20;
    let mut env = TestEnv::with_manual_ticks();
    let tick = |env: &mut TestEnv| env.run_maintenance().1;
    let now = env.now();
    let mut readers = Vec::new();
    for i in 0..VAULTS {
        let owner = user(&format!("owner-{i}"));
        let v = env.create_vault(owner, "Family").id;
        env.pay_creation(owner, v);
        set_rules(
            &mut env,
            owner,
            v,
            UnlockRules {
                unlock_after: Some(now + 2 * DAY_NS),
                inactivity_days: None,
                request_wait_days: 0,
                required_heirs: 0,
                required_witness: false,
            },
        );
        let heirs = [user(&format!("heir-{i}-a")), user(&format!("heir-{i}-b"))];
        for h in heirs {
            env.join(owner, v, MemberRole::Heir, h);
        }
        let item = env.upload_letter(owner, v, b"ciphertext", None);
        let r: R<VaultView> = env.update(owner, "finalize_setup", (v,));
        assert_eq!(r.unwrap().status, VaultStatus::Active);
        readers.extend(heirs.map(|h| (h, v, item)));
    }
    env.advance_days(3);
    tick(&mut env);
    for &(h, v, _) in &readers {
        assert_eq!(env.get_vault(h, v).unwrap().status, VaultStatus::Unlockable);
    }
    // A quiet tick, then one download per heir (40 counters of today), then a tick.
    tick(&mut env);
    let before = tick(&mut env);
    for &(h, v, item) in &readers {
        let t: R<DownloadTicket> = env.update(h, "request_download", (v, item));
        t.expect("request_download");
    }
    let after = tick(&mut env);
    println!(
        "tick before {} downloads today: {before} instructions; after: {after}",
        readers.len()
    );
    assert!(
        after <= before + 20_000,
        "a tick after {} downloads today: {after} instructions, {before} before",
        readers.len()
    );
    // The next day the 40 counters are past: one tick collects them all (memory 38,
    // `DOWNLOAD_COUNTERS_BY_DAY`).
    let counters = |env: &TestEnv| {
        livault_tests::stable_usage::StableUsage::read(env.host.stable_memory().unwrap())
            .entries(38)
    };
    assert_eq!(counters(&env), readers.len() as u64);
    env.advance_days(1);
    tick(&mut env);
    assert_eq!(counters(&env), 0);
}

/// Lines of the canister log that start with `prefix`.
fn log_lines(env: &TestEnv, prefix: &str) -> Vec<String> {
    env.host
        .canister_logs()
        .filter(|l| l.content.starts_with(prefix))
        .map(|l| l.content.clone())
        .collect()
}

/// The owner index's hash key comes from the subnet's randomness, not from what a caller
/// could narrow down (the time of the first create_vault): the install's timer re-keys the
/// empty index at once, vaults created afterwards are listed, and an upgrade finds it done
/// and does not re-key again.
#[test]
fn the_owner_index_is_keyed_from_the_subnets_randomness_once() {
    let mut env = TestEnv::new();
    env.advance(Duration::from_secs(1));
    assert_eq!(
        log_lines(&env, "event=owner_index.rekeyed"),
        vec!["event=owner_index.rekeyed entries=0".to_string()]
    );
    // Keyed before its first entry, the index still holds no memory: the key waits in the
    // heap (an install allocates nothing for it).
    let m = metrics(&mut env);
    let owner_index = m.stable_memories.iter().find(|u| u.id == 36).unwrap();
    assert_eq!(
        (owner_index.bytes, owner_index.allocated_bytes),
        (0, 0),
        "{owner_index:?}"
    );
    let owners: Vec<Principal> = (0..5).map(|i| user(&format!("rekey-owner-{i}"))).collect();
    for (i, o) in owners.iter().enumerate() {
        for _ in 0..=i {
            env.create_vault(*o, "Mine");
        }
    }
    env.upgrade(None).expect("upgrade");
    env.advance(Duration::from_secs(3_600));
    assert_eq!(log_lines(&env, "event=owner_index.rekeyed").len(), 1);
    for (i, o) in owners.iter().enumerate() {
        let mine: R<Page<VaultSummary>> = env.query(
            *o,
            "list_my_vaults",
            (PageArgs {
                start_after: None,
                limit: Some(100),
            },),
        );
        assert_eq!(mine.unwrap().items.len(), i + 1);
    }
}
