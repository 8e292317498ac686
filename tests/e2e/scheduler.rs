//! End-to-end tests of the scheduler on the compiled wasm: timers driven by the host's clock,
//! draft purge, bounded batches over a backlog, trap isolation, timers after an upgrade, the
//! admin endpoints (`run_maintenance`, `list_vaults`, `set_pricing`, metrics) and
//! `http_request` (`/health`, `/metrics` checked by a strict Prometheus text parser).
//!
//! Lifecycle duties past `Draft` (GraceMaster, GraceHeir, Expired, compaction) need paid
//! vaults; until payments are merged they are covered natively in `domain::scheduler`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use candid::Principal;
use livault_backend::model::config::{Durations, Pricing};
use livault_tests::*;

type R<T> = Result<T, VaultError>;

const HOUR: Duration = Duration::from_secs(3600);

/// A canister whose maintenance timer fires every `interval_secs`.
fn env_with_interval(interval_secs: u64) -> TestEnv {
    TestEnv::with_init(InitArgs {
        admins: vec![user("admin")],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(Durations {
            timer_interval_secs: interval_secs,
            ..Durations::default()
        }),
        ..Default::default()
    })
}

/// A canister whose timer never fires within a test: ticks run through `run_maintenance`.
fn env_manual() -> TestEnv {
    env_with_interval(365 * 86_400)
}

fn metrics(env: &mut TestEnv) -> Metrics {
    let admin = env.admin;
    env.query::<_, R<Metrics>>(admin, "get_metrics", ())
        .expect("metrics")
}

fn run_maintenance(env: &mut TestEnv) -> TickReport {
    let admin = env.admin;
    env.update::<_, R<TickReport>>(admin, "run_maintenance", ())
        .expect("run_maintenance")
}

fn count(m: &Metrics, status: VaultStatus) -> u64 {
    m.vaults_by_status
        .iter()
        .find(|c| c.status == status)
        .unwrap()
        .count
}

/// `n` drafts, created by several owners (per-owner limits), returned as (owner, id).
fn drafts(env: &mut TestEnv, n: usize) -> Vec<(Principal, VaultId)> {
    (0..n)
        .map(|i| {
            let owner = user(&format!("owner-{}", i / 10));
            (owner, env.create_vault(owner, &format!("Vault {i}")).id)
        })
        .collect()
}

/// An unpaid draft purged by the scheduler is erased: nothing left to read (issue #12 M2,
/// docs/decisions.md); the metrics count how often the scheduler applied a purge.
fn assert_erased(env: &mut TestEnv, owner: Principal, id: VaultId) {
    assert_eq!(
        env.get_vault(owner, id),
        Err(VaultError::NotFound),
        "vault {id}"
    );
    let log: R<Page<AuditEventView>> = env.query(owner, "get_audit_log", (id, PageArgs::default()));
    assert_eq!(log, Err(VaultError::NotFound), "vault {id}: no log left");
}

// ---------------------------------------------------------------- duties on timers

#[test]
fn unpaid_draft_is_purged_by_the_timer_after_seven_days() {
    let mut env = env_with_interval(3600);
    let owner = user("owner");
    let id = env.create_vault(owner, "Family").id;
    let head_before: R<AuditHead> = env.query(owner, "get_audit_head", (id,));

    env.advance_days(6);
    env.advance(Duration::from_secs(23 * 3600));
    assert_eq!(env.get_vault(owner, id).unwrap().status, VaultStatus::Draft);
    let m = metrics(&mut env);
    assert!(
        m.scheduler.runs >= 6 * 24,
        "the timer ran: {:?}",
        m.scheduler
    );
    assert_eq!(m.scheduler.processed_total, 0);

    env.advance(2 * HOUR);
    assert_erased(&mut env, owner, id);
    assert!(head_before.is_ok());
    let m = metrics(&mut env);
    assert_eq!(count(&m, VaultStatus::Draft), 0);
    assert_eq!(
        count(&m, VaultStatus::Deleted),
        0,
        "no tombstone of an unpaid draft"
    );
    assert_eq!(m.vaults_total, 1, "its id stays used");
    assert_eq!(m.scheduler.processed_total, 1);
    let last = m.scheduler.last_run.expect("a last run");
    assert!(!last.manual);
    // Its audit compaction went with it: nothing is queued any more.
    assert_eq!(m.scheduler.due_now, 0);
    assert_eq!(m.scheduler.queue_len, 0);
    // The owner's slot is free again: the deleted vault does not count.
    let again = env.create_vault(owner, "Family again");
    assert_eq!(again.status, VaultStatus::Draft);
}

#[test]
fn the_default_timer_ticks_every_minute() {
    let mut env = TestEnv::new();
    env.advance(Duration::from_secs(300));
    let m = metrics(&mut env);
    assert_eq!(m.scheduler.interval_secs, 60);
    assert_eq!(m.scheduler.runs, 5);
    let last = m.scheduler.last_run.unwrap();
    assert_eq!(last.taken, 0);
    assert_eq!(last.skipped, None);
}

#[test]
fn the_timer_waits_while_paused_and_catches_up_after() {
    let mut env = env_with_interval(3600);
    let owner = user("owner");
    let id = env.create_vault(owner, "Family").id;
    let admin = env.admin;
    env.update::<_, R<()>>(admin, "set_paused", (true,))
        .unwrap();
    env.advance_days(8);
    assert_eq!(env.get_vault(owner, id).unwrap().status, VaultStatus::Draft);
    let m = metrics(&mut env);
    assert_eq!(m.scheduler.due_now, 1);
    env.update::<_, R<()>>(admin, "set_paused", (false,))
        .unwrap();
    env.advance(HOUR);
    assert_erased(&mut env, owner, id);
}

#[test]
fn timers_fire_again_after_an_upgrade() {
    let mut env = env_with_interval(3600);
    let owner = user("owner");
    let a = env.create_vault(owner, "Before").id;
    env.advance_days(8);
    assert_erased(&mut env, owner, a);

    let b = env.create_vault(owner, "Queued across the upgrade").id;
    let runs_before = metrics(&mut env).scheduler.runs;
    assert!(runs_before >= 8 * 24);
    env.upgrade(None).expect("upgrade");
    let m = metrics(&mut env);
    assert_eq!(
        m.scheduler.runs, runs_before,
        "run counters count since install (issue #15)"
    );
    assert_eq!(m.scheduler.last_run, None, "the last run lives in the heap");
    assert_eq!(
        m.scheduler.queue_len, 2,
        "the queue (b's purge and compaction) survives in stable memory"
    );
    env.advance_days(8);
    assert_erased(&mut env, owner, b);
    let runs_before = metrics(&mut env).scheduler.runs;
    assert!(runs_before >= 2 * 8 * 24);

    // An upgrade that changes the interval re-arms the timer with the new period.
    env.upgrade(Some(LiVaultArgs::Upgrade(UpgradeArgs {
        durations: Some(Durations {
            timer_interval_secs: 600,
            ..Durations::default()
        }),
        ..Default::default()
    })))
    .expect("upgrade");
    env.advance(HOUR);
    let m = metrics(&mut env);
    assert_eq!(m.scheduler.interval_secs, 600);
    assert_eq!(m.scheduler.runs, runs_before + 6);
}

// ---------------------------------------------------------------- batches and traps

#[test]
fn a_backlog_larger_than_a_batch_completes_over_ticks_without_repeats() {
    let mut env = env_manual();
    let vaults = drafts(&mut env, 120);
    env.advance_days(8);
    assert_eq!(metrics(&mut env).scheduler.due_now, 120);

    let mut reports = Vec::new();
    loop {
        let r = run_maintenance(&mut env);
        assert!(r.manual);
        assert_eq!(r.failed, 0);
        let done = !r.more_due;
        reports.push(r);
        if done {
            break;
        }
    }
    let taken: Vec<u32> = reports.iter().map(|r| r.taken).collect();
    assert_eq!(taken, vec![50, 50, 20]);
    assert!(reports.iter().all(|r| r.processed == r.taken));
    assert_eq!(reports.iter().map(|r| r.applied).sum::<u32>(), 120);
    for (owner, id) in &vaults {
        assert_erased(&mut env, *owner, *id);
    }
    // Nothing left: a further tick is empty, and does nothing twice.
    let r = run_maintenance(&mut env);
    assert_eq!((r.taken, r.processed, r.more_due), (0, 0, false));
    let m = metrics(&mut env);
    assert_eq!(count(&m, VaultStatus::Draft), 0);
    assert_eq!(m.vaults_total, 120);
    assert_eq!(m.scheduler.processed_total, 120);
    assert_eq!(m.scheduler.queue_len, 0);
}

#[test]
fn a_trap_in_one_entry_does_not_stop_the_others_and_loses_nothing() {
    let mut env = env_manual();
    let vaults = drafts(&mut env, 5);
    env.advance_days(8);
    let traps_before = env.host.executions().filter(|e| e.trap.is_some()).count();

    // The batch message reads the instruction counter once at its start and once before each
    // entry: trapping on its 3rd read traps while it processes the 2nd entry, so the whole
    // batch message rolls back.
    env.host.trap_on_ic0("performance_counter", 3);
    let msg = env.host.submit_update(
        env.admin,
        "run_maintenance",
        candid::encode_args(()).unwrap(),
    );
    while env.host.executions().filter(|e| e.trap.is_some()).count() == traps_before {
        assert!(env.host.step(), "the batch message should have trapped");
    }
    // The tick now processes the entries one message each. Make the first of those trap
    // too (its 2nd counter read is before its only entry): that entry alone fails.
    env.host.trap_on_ic0("performance_counter", 2);
    let reply = env.host.await_reply(msg).expect("run_maintenance replies");
    let report: R<TickReport> = candid::decode_one(&reply.bytes).unwrap();
    let report = report.unwrap();
    assert_eq!(report.taken, 5);
    assert_eq!(report.failed, 1);
    assert_eq!(report.processed, 4);
    assert_eq!(
        env.host.executions().filter(|e| e.trap.is_some()).count(),
        traps_before + 2
    );

    // The failed entry is kept (moved to a retry time), its vault untouched.
    let (first_owner, first) = vaults[0];
    assert_eq!(
        env.get_vault(first_owner, first).unwrap().status,
        VaultStatus::Draft
    );
    for (owner, id) in &vaults[1..] {
        assert_erased(&mut env, *owner, *id);
    }
    let m = metrics(&mut env);
    assert_eq!(m.scheduler.due_now, 0, "retried later, not at once");
    assert_eq!(m.scheduler.parked, 0);
    assert_eq!(
        m.scheduler.queue_len, 2,
        "the retry and its vault's compaction (erased drafts leave none)"
    );

    // After the retry delay it is processed, once.
    env.advance(Duration::from_secs(11 * 60));
    let r = run_maintenance(&mut env);
    assert_eq!((r.taken, r.processed, r.failed), (1, 1, 0));
    for (owner, id) in &vaults {
        assert_erased(&mut env, *owner, *id);
    }
}

#[test]
fn the_internal_batch_method_is_not_callable_from_outside() {
    let mut env = env_manual();
    let owner = user("owner");
    env.create_vault(owner, "Family");
    env.advance_days(8);
    let keys: Vec<(u64, u8, u64)> = vec![(0, 1, 1)];
    // Ingress is refused by inspect_message.
    let r = env.try_update::<_, R<()>>(owner, "scheduler_run_batch", (keys,));
    assert!(r.is_err());
    assert_eq!(env.get_vault(owner, 1).unwrap().status, VaultStatus::Draft);
}

// ---------------------------------------------------------------- admin endpoints

#[test]
fn list_vaults_pages_are_stable_while_vaults_arrive_and_hold_no_names() {
    let mut env = env_manual();
    let admin = env.admin;
    drafts(&mut env, 5);
    let page = |env: &mut TestEnv, after: Option<u64>| -> Page<AdminVaultSummary> {
        env.query::<_, R<Page<AdminVaultSummary>>>(
            admin,
            "list_vaults",
            (PageArgs {
                start_after: after,
                limit: Some(2),
            },),
        )
        .unwrap()
    };
    let mut seen = Vec::new();
    let first = page(&mut env, None);
    seen.extend(first.items.iter().map(|v| v.id));
    assert_eq!(first.next_cursor, Some(2));
    // New vaults arrive between pages.
    drafts(&mut env, 3);
    let mut cursor = first.next_cursor;
    while let Some(c) = cursor {
        let p = page(&mut env, Some(c));
        seen.extend(p.items.iter().map(|v| v.id));
        cursor = p.next_cursor;
    }
    assert_eq!(seen, (1..=8).collect::<Vec<_>>());
    let one = &page(&mut env, None).items[0];
    assert_eq!(one.status, VaultStatus::Draft);
    assert_eq!(one.storage_used_bytes, 0);
    assert_eq!(one.storage_limit_bytes, 10 * 1024 * 1024);

    // The raw reply never carries a vault name.
    let raw = env
        .host
        .query(
            admin,
            "list_vaults",
            candid::encode_one(PageArgs::default()).unwrap(),
        )
        .unwrap();
    assert!(!raw.bytes.windows(6).any(|w| w == b"Vault "));

    // Bad page size: typed error.
    let bad: R<Page<AdminVaultSummary>> = env.query(
        admin,
        "list_vaults",
        (PageArgs {
            start_after: None,
            limit: Some(101),
        },),
    );
    assert!(matches!(bad, Err(VaultError::InvalidInput { .. })));
    // Non-admins: refused.
    let owner = user("owner-0");
    let denied: R<Page<AdminVaultSummary>> =
        env.query(owner, "list_vaults", (PageArgs::default(),));
    assert_eq!(denied, Err(VaultError::NotAuthorized));
    let denied: R<TickReport> = env.update(owner, "run_maintenance", ());
    assert_eq!(denied, Err(VaultError::NotAuthorized));
}

fn pricing_of(plans: &PlansInfo) -> Pricing {
    Pricing {
        tiers: plans.tiers.clone(),
        heir_slot_fee_e8s: plans.heir_slot_fee_e8s,
        witness_fee_e8s: plans.witness_fee_e8s,
    }
}

#[test]
fn set_pricing_changes_new_quotes_only() {
    let mut env = env_manual();
    let admin = env.admin;
    let owner = user("owner");
    let before = env.create_vault(owner, "Family");
    let plans: PlansInfo = env.query(admin, "get_plans", ());
    let old = pricing_of(&plans);

    // Invalid tables are refused and change nothing.
    let mut bad = old.clone();
    bad.tiers.pop();
    let r: R<()> = env.update(admin, "set_pricing", (bad,));
    assert!(matches!(r, Err(VaultError::InvalidInput { .. })));
    let mut bad = old.clone();
    bad.tiers[0].storage_price_e8s = 0;
    let r: R<()> = env.update(admin, "set_pricing", (bad,));
    assert!(matches!(r, Err(VaultError::InvalidInput { .. })));
    let r: R<()> = env.update(owner, "set_pricing", (old.clone(),));
    assert_eq!(r, Err(VaultError::NotAuthorized));
    let plans_now: PlansInfo = env.query(admin, "get_plans", ());
    assert_eq!(pricing_of(&plans_now), old);

    let mut doubled = old.clone();
    for t in &mut doubled.tiers {
        t.storage_price_e8s *= 2;
    }
    let r: R<()> = env.update(admin, "set_pricing", (doubled.clone(),));
    assert_eq!(r, Ok(()));
    let plans_now: PlansInfo = env.query(admin, "get_plans", ());
    assert_eq!(pricing_of(&plans_now), doubled);
    let after = env.create_vault(owner, "Second");
    assert!(after.price_e8s > before.price_e8s);
    assert_eq!(
        env.get_vault(owner, before.id).unwrap().price_e8s,
        before.price_e8s,
        "frozen prices do not change"
    );
}

// ---------------------------------------------------------------- http_request

fn http(env: &mut TestEnv, method: &str, url: &str) -> HttpResponse {
    env.query(
        Principal::anonymous(),
        "http_request",
        (HttpRequest {
            method: method.into(),
            url: url.into(),
            headers: vec![],
            body: serde_bytes::ByteBuf::new(),
        },),
    )
}

/// A strict parser of the Prometheus text exposition format (0.0.4): every line is a
/// `# HELP`, a `# TYPE` or a sample of a declared metric; names and label names are valid;
/// label values are quoted; values are floats; timestamps integers. Returns
/// `metric{labels} → value`.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    fn valid_name(n: &str) -> bool {
        let mut c = n.chars();
        matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
    }
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name) && !help.is_empty(), "{line}");
            assert!(helps.insert(name.to_string()), "duplicate HELP {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("TYPE name type");
            assert!(valid_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "{line}"
            );
            assert!(
                types.insert(name.to_string(), ty.to_string()).is_none(),
                "duplicate TYPE {name}"
            );
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{line}");
            let (series, rest) = match line.find('{') {
                Some(open) => {
                    let close = line.find('}').expect("closing brace");
                    let labels = &line[open + 1..close];
                    for pair in labels.split(',').filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once('=').expect("label=value");
                        assert!(valid_name(k), "{line}");
                        assert!(v.len() >= 2 && v.starts_with('"') && v.ends_with('"'));
                    }
                    (&line[..=close], line[close + 1..].trim_start())
                }
                None => line.split_once(' ').expect("name value"),
            };
            let name = series.split('{').next().unwrap();
            assert!(valid_name(name), "{line}");
            assert!(types.contains_key(name), "sample of undeclared {name}");
            let mut parts = rest.split(' ');
            let value: f64 = parts.next().unwrap().parse().expect("float value");
            if let Some(ts) = parts.next() {
                ts.parse::<i64>().expect("integer timestamp");
            }
            assert!(parts.next().is_none(), "{line}");
            assert!(samples.insert(series.to_string(), value).is_none());
        }
    }
    samples
}

#[test]
fn http_health_and_prometheus_metrics() {
    let mut env = env_manual();
    let owner = user("owner");
    env.create_vault(owner, "Family");
    env.create_vault(owner, "Other");
    env.advance_days(8);
    run_maintenance(&mut env);

    let health = http(&mut env, "GET", "/health");
    assert_eq!(health.status_code, 200);
    assert_eq!(&health.body[..], b"ok\n");
    assert_eq!(http(&mut env, "GET", "/nope").status_code, 404);
    assert_eq!(http(&mut env, "POST", "/metrics").status_code, 405);

    let res = http(&mut env, "GET", "/metrics?x=1");
    assert_eq!(res.status_code, 200);
    assert!(res
        .headers
        .iter()
        .any(|(k, v)| k == "Content-Type" && v.starts_with("text/plain; version=0.0.4")));
    let text = String::from_utf8(res.body.into_vec()).unwrap();
    let samples = parse_prometheus(&text);
    assert_eq!(samples[r#"livault_vaults{status="Deleted"}"#], 0.0);
    assert_eq!(samples[r#"livault_vaults{status="Draft"}"#], 0.0);
    assert_eq!(samples["livault_vaults_created_total"], 2.0);
    assert_eq!(samples["livault_scheduler_last_run_processed"], 2.0);
    assert_eq!(samples["livault_scheduler_queue_entries"], 0.0);
    assert_eq!(samples["livault_scheduler_due_entries"], 0.0);
    assert!(samples["livault_stable_memory_bytes"] > 0.0);
    assert!(samples["livault_stable_memory_headroom_bytes"] > 0.0);
    assert!(
        !samples.contains_key("livault_cycles_balance"),
        "admins only"
    );
    assert!(samples["livault_scheduler_last_run_instructions"] > 0.0);
    // The counters of SPEC §12 (exact numbers after real events:
    // `metrics_count_storage_invites_sessions_and_billing`).
    for name in [
        "livault_storage_committed_bytes",
        "livault_storage_reserved_bytes",
        "livault_invites_issued_today",
        "livault_invites_claimed_total",
        "livault_payment_sessions_open",
        "livault_billing_entries_total",
        "livault_payment_checks_queued",
    ] {
        assert_eq!(samples[name], 0.0, "{name}");
    }
    assert!(!text.contains("Family"), "no user data");
}

#[test]
fn a_paid_draft_is_not_purged() {
    let mut env = env_with_interval(3600);
    let owner = user("owner");
    let id = env.create_vault(owner, "Family").id;
    let paid = env.pay_creation(owner, id);
    assert_eq!(paid.status, VaultStatus::NeedSetup);
    env.advance_days(8);
    let v = env.get_vault(owner, id).unwrap();
    assert_eq!(v.status, VaultStatus::NeedSetup);
    assert_eq!(v.name, "Family");
    let m = metrics(&mut env);
    // The purge entry was consumed; the session's checks ended when the owner's verify
    // confirmed the payment.
    assert_eq!(
        m.scheduler.processed_total, 1,
        "the purge entry was consumed"
    );
    assert_eq!(m.scheduler.payment_checks_queued, 0);
    assert_eq!(count(&m, VaultStatus::Deleted), 0);
    assert!(!env
        .audit_log(owner, id)
        .iter()
        .any(|e| e.details.contains("DraftUnpaidTimeout")));
}

/// SPEC §12 metrics after real events: two paid vaults (one overpaid: its excess refunded),
/// an open unpaid session, two invites and one claim, a committed upload and an open one.
/// `get_metrics` and `/metrics` show exactly these numbers; the `*_today` invite counters
/// read 0 the next UTC day while the totals stay; an upgrade keeps every counter.
#[test]
fn metrics_count_storage_invites_sessions_and_billing() {
    use livault_backend::model::member_types::{
        GenerateInviteArgs, InviteCreated, MemberView, Relation,
    };
    use livault_backend::model::records::MemberRole;
    use serde_bytes::ByteBuf;
    use sha2::{Digest, Sha256};
    let mut env = env_manual();
    let (owner, heir) = (user("owner"), user("heir"));
    let v1 = env.create_vault(owner, "Family").id;
    let paid = env.pay_creation(owner, v1);
    // Vault 2: overpaid by 0.01 ICP, the excess (minus the fee) goes back to the owner.
    let v2 = env.create_vault(owner, "Second").id;
    let s2: PaymentSession = env
        .update::<_, R<PaymentSession>>(owner, "init_payment", (v2, PaymentPurpose::Create))
        .unwrap();
    let wallet = TestEnv::wallet_of(owner);
    env.host.fund(
        AccountId::new(&wallet, None),
        s2.amount_e8s + 1_000_000 + LEDGER_FEE,
    );
    env.host
        .ledger_transfer_as(
            &wallet,
            AccountId::from_hex(&s2.account_identifier).unwrap(),
            s2.amount_e8s + 1_000_000,
        )
        .unwrap();
    let r: R<PaymentReceipt> = env.update(owner, "verify_payment", (s2.id,));
    assert_eq!(r.unwrap().billing.refund_e8s, 1_000_000 - LEDGER_FEE);
    // Vault 3: a session opened, never paid.
    let v3 = env.create_vault(owner, "Third").id;
    let r: R<PaymentSession> = env.update(owner, "init_payment", (v3, PaymentPurpose::Create));
    r.unwrap();

    let mut tokens = Vec::new();
    for role in [MemberRole::Heir, MemberRole::Witness] {
        let inv: R<InviteCreated> = env.update(
            owner,
            "generate_invite",
            (GenerateInviteArgs {
                vault_id: v1,
                role,
                name: "m".into(),
                relation: Relation::Friend,
                email_hint: None,
                can_trigger_unlock: true,
                count_as_approver: true,
            },),
        );
        tokens.push(inv.unwrap().token);
    }
    let m: R<MemberView> = env.update(heir, "claim_invite", (tokens[0].clone(),));
    m.unwrap();
    // The same principal repeating the claim is not a second claim.
    let m: R<MemberView> = env.update(heir, "claim_invite", (tokens[0].clone(),));
    m.unwrap();

    let begin = |env: &mut TestEnv, payload: &[u8], size: u64| -> UploadView {
        let r: R<UploadView> = env.update(
            owner,
            "begin_upload",
            (BeginUploadArgs {
                vault_id: v1,
                kind: ItemKind::Letter,
                size,
                sha256: ByteBuf::from(Sha256::digest(payload).to_vec()),
                encrypted_meta: ByteBuf::from(b"meta".to_vec()),
                recipients: None,
                replaces: None,
                idempotency_key: None,
            },),
        );
        r.unwrap()
    };
    let letter = b"a letter of 27 bytes ......".to_vec();
    let up = begin(&mut env, &letter, letter.len() as u64);
    let r: R<UploadView> = env.update(
        owner,
        "upload_chunk",
        (up.upload_id, 0u32, ByteBuf::from(letter.clone())),
    );
    r.unwrap();
    let r: R<ItemView> = env.update(owner, "finish_upload", (up.upload_id,));
    r.unwrap();
    begin(&mut env, b"later", 500);

    let treasury = (paid.price_e8s - LEDGER_FEE) + (s2.amount_e8s - LEDGER_FEE);
    let m = metrics(&mut env);
    let got = (
        m.storage_committed_bytes,
        m.storage_reserved_bytes,
        m.invites_issued_today,
        m.invites_claimed_today,
        m.invites_issued_total,
        m.invites_claimed_total,
        m.open_payment_sessions,
        m.billing_entries,
        m.billing_treasury_e8s,
        m.billing_refunded_e8s,
    );
    assert_eq!(
        got,
        (27, 500, 2, 1, 2, 1, 1, 2, treasury, 1_000_000 - LEDGER_FEE)
    );

    let res = http(&mut env, "GET", "/metrics");
    let samples = parse_prometheus(&String::from_utf8(res.body.into_vec()).unwrap());
    for (name, value) in [
        ("livault_storage_committed_bytes", 27.0),
        ("livault_storage_reserved_bytes", 500.0),
        ("livault_invites_issued_today", 2.0),
        ("livault_invites_claimed_today", 1.0),
        ("livault_invites_issued_total", 2.0),
        ("livault_invites_claimed_total", 1.0),
        ("livault_payment_sessions_open", 1.0),
        ("livault_billing_entries_total", 2.0),
    ] {
        assert_eq!(samples[name], value, "{name}");
    }
    // Revenue is for admins (issue #12 L6).
    assert!(!samples.contains_key("livault_billing_treasury_e8s_total"));
    let m = metrics(&mut env);
    assert_eq!(m.billing_treasury_e8s, treasury);
    assert_eq!(m.billing_refunded_e8s, 1_000_000 - LEDGER_FEE);

    // The next UTC day: nothing issued or claimed yet today; totals unchanged.
    let day = env.now() / DAY_NS;
    env.advance(Duration::from_nanos((day + 1) * DAY_NS - env.now()));
    let m = metrics(&mut env);
    assert_eq!((m.invites_issued_today, m.invites_claimed_today), (0, 0));
    assert_eq!((m.invites_issued_total, m.invites_claimed_total), (2, 1));
    // An upgrade keeps every counter (stable header; no recount needed).
    env.upgrade(None).unwrap();
    let after = metrics(&mut env);
    assert_eq!(
        (
            after.storage_committed_bytes,
            after.storage_reserved_bytes,
            after.invites_issued_total,
            after.invites_claimed_total,
            after.open_payment_sessions,
            after.billing_entries,
            after.billing_treasury_e8s,
            after.billing_refunded_e8s,
        ),
        (27, 500, 2, 1, 1, 2, treasury, 1_000_000 - LEDGER_FEE)
    );
}
