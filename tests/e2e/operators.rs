//! Issue #15 part 5 on the real wasm: what an operator sees. `/metrics` and `get_metrics`
//! report the canister's real stable memory with its per-memory breakdown, counters since
//! install (update calls and errors by endpoint and case, ledger call outcomes, rate-limit
//! and capacity refusals, scheduler failures, upgrades) and the module's version and commit;
//! the admin trail records every admin action for admins only; the canister log tells the
//! story in `event=… key=value` lines (docs/operations.md).

use std::time::Duration;

use candid::Principal;
use livault_backend::domain::admin_trail::AdminTrailEntry;
use livault_backend::model::config::{Limits, Pricing};
use livault_tests::*;
use local_replica::RejectCode;

type R<T> = Result<T, VaultError>;

fn metrics(env: &mut TestEnv) -> Metrics {
    let admin = env.admin;
    let m: R<Metrics> = env.query(admin, "get_metrics", ());
    m.expect("get_metrics")
}

/// The anonymous `/metrics` page.
fn public_metrics(env: &mut TestEnv) -> String {
    let req = HttpRequest {
        method: "GET".into(),
        url: "/metrics".into(),
        headers: vec![],
        body: serde_bytes::ByteBuf::new(),
    };
    let resp: HttpResponse = env.query(Principal::anonymous(), "http_request", (req,));
    assert_eq!(resp.status_code, 200);
    String::from_utf8(resp.body.into_vec()).unwrap()
}

/// The value of the sample `series` (name with its labels, exactly as written) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn trail(env: &mut TestEnv, who: Principal, args: PageArgs) -> R<Page<AdminTrailEntry>> {
    env.query(who, "list_admin_trail", (args,))
}

fn whole_trail(env: &mut TestEnv) -> Vec<AdminTrailEntry> {
    let admin = env.admin;
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = trail(
            env,
            admin,
            PageArgs {
                start_after: cursor,
                limit: Some(100),
            },
        )
        .expect("list_admin_trail");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn logs(env: &TestEnv) -> Vec<String> {
    env.host
        .canister_logs()
        .map(|l| l.content.clone())
        .collect()
}

fn errors_of(m: &Metrics, endpoint: &str, error: &str) -> u64 {
    m.ops
        .errors
        .iter()
        .find(|e| e.endpoint == endpoint && e.error == error)
        .map_or(0, |e| e.count)
}

fn ledger_calls(m: &Metrics, method: &str, outcome: &str) -> u64 {
    m.ops
        .ledger_calls
        .iter()
        .find(|l| l.method == method && l.outcome == outcome)
        .map_or(0, |l| l.count)
}

// ---------------------------------------------------------------- memory

/// `livault_stable_memory_bytes` is the canister's stable memory (what the IC charges for,
/// here the host's own count), not the sum of the virtual memories; the breakdown by memory
/// adds up to it with the memory manager's header.
#[test]
fn stable_memory_is_the_real_size_and_its_breakdown_adds_up() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family").id;
    env.pay_creation(owner, v);
    env.upload_letter(owner, v, &[7u8; 3000], None);
    let m = metrics(&mut env);
    let real = env.host.status().unwrap().stable_memory_bytes;
    assert_eq!(m.stable_memory_bytes, real);
    let allocated: u64 = m.stable_memories.iter().map(|x| x.allocated_bytes).sum();
    assert_eq!(allocated + 65_536, real, "{:?}", m.stable_memories);
    let virtual_sum: u64 = m.stable_memories.iter().map(|x| x.bytes).sum();
    assert!(
        virtual_sum < real,
        "the virtual memories ({virtual_sum}) are not the stable memory ({real})"
    );
    let content = m
        .stable_memories
        .iter()
        .find(|x| x.name == "content_pages")
        .expect("content_pages listed");
    assert!(content.bytes > 0 && content.allocated_bytes >= content.bytes);
    assert_eq!(content.allocated_bytes % (1 << 20), 0, "whole buckets");
    let ids: Vec<u8> = m.stable_memories.iter().map(|x| x.id).collect();
    assert_eq!(ids, (0..ids.len() as u8).collect::<Vec<_>>());

    let text = public_metrics(&mut env);
    assert_eq!(
        sample(&text, "livault_stable_memory_bytes"),
        Some(real as f64)
    );
    assert_eq!(
        sample(
            &text,
            "livault_stable_memory_virtual_bytes{memory=\"content_pages\"}"
        ),
        Some(content.bytes as f64)
    );
    assert_eq!(
        sample(
            &text,
            "livault_stable_memory_allocated_bytes{memory=\"content_pages\"}"
        ),
        Some(content.allocated_bytes as f64)
    );
    assert!(sample(&text, "livault_heap_memory_bytes").unwrap() > 0.0);
    // Cycles stay admin-only (issue #12 L6).
    assert!(!text.contains("cycles"));
    assert!(m.cycles_balance > 0);
}

// ---------------------------------------------------------------- counters

/// Update calls and their errors are counted by endpoint and `VaultError` case, rate-limit
/// refusals apart; the counters are carried across upgrades (since install), and upgrades
/// are counted.
#[test]
fn errors_by_endpoint_and_case_and_refusals_count_since_install() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family").id;
    let r: R<VaultView> = env.update(owner, "check_in", (v + 100,));
    assert_eq!(r, Err(VaultError::NotFound));
    let stranger = user("stranger");
    let r: R<VaultView> = env.update(stranger, "delete_vault", (v,));
    assert_eq!(r, Err(VaultError::NotAuthorized));
    // A chatty client: 20 calls burst, then refusals.
    let chatty = user("chatty");
    let mut limited = 0;
    for _ in 0..25 {
        let r: R<VaultView> = env.update(chatty, "check_in", (v + 100,));
        if matches!(r, Err(VaultError::RateLimited { .. })) {
            limited += 1;
        }
    }
    assert!(limited >= 4, "{limited}");

    let m = metrics(&mut env);
    assert_eq!(errors_of(&m, "check_in", "NotFound"), 1 + 25 - limited);
    assert_eq!(errors_of(&m, "check_in", "RateLimited"), limited);
    assert_eq!(errors_of(&m, "delete_vault", "NotAuthorized"), 1);
    assert_eq!(m.ops.rate_limit_refusals, limited);
    let create = m
        .ops
        .update_calls
        .iter()
        .find(|c| c.endpoint == "create_vault")
        .unwrap();
    assert_eq!((create.ok, create.errors), (1, 0));
    assert_eq!(m.ops.upgrades, 0);
    assert!(m.ops.installed_at.is_some());
    assert_eq!(m.ops.series_dropped, 0);

    let text = public_metrics(&mut env);
    assert_eq!(
        sample(
            &text,
            "livault_update_errors_total{endpoint=\"check_in\",error=\"NotFound\"}"
        ),
        Some((1 + 25 - limited) as f64)
    );
    assert_eq!(
        sample(
            &text,
            "livault_update_calls_total{endpoint=\"create_vault\",result=\"ok\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "livault_rate_limit_refusals_total"),
        Some(limited as f64)
    );

    // Two upgrades later everything is still there.
    env.upgrade(None).unwrap();
    env.upgrade(None).unwrap();
    let after = metrics(&mut env);
    assert_eq!(after.ops.upgrades, 2);
    assert!(after.ops.last_upgraded_at >= after.ops.installed_at);
    assert!(after.ops.last_upgraded_at.is_some());
    assert_eq!(after.ops.installed_at, m.ops.installed_at);
    assert_eq!(after.ops.errors, m.ops.errors);
    assert_eq!(after.ops.update_calls, m.ops.update_calls);
    assert_eq!(after.ops.rate_limit_refusals, limited);
    let text = public_metrics(&mut env);
    assert_eq!(sample(&text, "livault_upgrades_total"), Some(2.0));
}

/// ICP ledger calls are counted by method and outcome: answered, rejected (certainly not
/// executed), unknown (may have executed).
#[test]
fn ledger_call_outcomes_are_counted() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Family").id;
    env.pay_creation(owner, v);
    let m = metrics(&mut env);
    assert_eq!(ledger_calls(&m, "account_balance", "ok"), 1);
    assert_eq!(ledger_calls(&m, "transfer", "ok"), 1, "the sweep");

    let v2 = env.create_vault(owner, "Second").id;
    let s: R<PaymentSession> = env.update(owner, "init_payment", (v2, PaymentPurpose::Create));
    let s = s.unwrap();
    env.host.fail_next_calls(
        "account_balance",
        1,
        RejectCode::SysTransient,
        "ledger unreachable",
    );
    let r: R<PaymentReceipt> = env.update(owner, "verify_payment", (s.id,));
    assert!(matches!(r, Err(VaultError::LedgerUnavailable { .. })));
    let m = metrics(&mut env);
    assert_eq!(ledger_calls(&m, "account_balance", "rejected"), 1);
    assert_eq!(errors_of(&m, "verify_payment", "LedgerUnavailable"), 1);

    // Paid; the sweep's first answer is lost (outcome unknown).
    let wallet = TestEnv::wallet_of(owner);
    env.host
        .fund(AccountId::new(&wallet, None), s.amount_e8s + LEDGER_FEE);
    let to = AccountId::from_hex(&s.account_identifier).unwrap();
    env.host
        .ledger_transfer_as(&wallet, to, s.amount_e8s)
        .unwrap();
    env.host.unknown_outcome_next_calls("transfer", 1);
    let r: R<PaymentReceipt> = env.update(owner, "verify_payment", (s.id,));
    r.unwrap();
    let m = metrics(&mut env);
    assert_eq!(ledger_calls(&m, "transfer", "unknown"), 1);
    // The retry with the same dedup key learns that the transfer happened.
    assert_eq!(ledger_calls(&m, "transfer", "TxDuplicate"), 1);
    let text = public_metrics(&mut env);
    assert_eq!(
        sample(
            &text,
            "livault_ledger_calls_total{method=\"transfer\",outcome=\"unknown\"}"
        ),
        Some(1.0)
    );
    assert!(logs(&env).iter().any(
        |l| l.starts_with("event=ledger.call method=account_balance outcome=rejected detail=")
    ));
    assert!(logs(&env)
        .iter()
        .any(|l| l.starts_with("event=ledger.call method=transfer outcome=unknown")));
}

/// Refusals at the capacity high-water mark are counted and logged.
#[test]
fn capacity_refusals_are_counted_and_logged() {
    let mut env = TestEnv::new();
    let before = metrics(&mut env).stable_memory_bytes;
    env.upgrade(Some(LiVaultArgs::Upgrade(UpgradeArgs {
        limits: Some(Limits {
            stable_memory_high_water_bytes: Some(before),
            ..Default::default()
        }),
        ..Default::default()
    })))
    .unwrap();
    let r: R<VaultView> = env.update(
        user("newcomer"),
        "create_vault",
        (CreateVaultArgs {
            name: "Late".into(),
            plan: PlanSelection {
                tier: Tier::Basic,
                heir_slots: 1,
                witness_slot: false,
            },
            owner_age: 30,
            idempotency_key: None,
        },),
    );
    assert!(
        matches!(r, Err(VaultError::PlanLimit { ref resource, .. }) if resource == "canister_storage")
    );
    let m = metrics(&mut env);
    assert_eq!(m.ops.capacity_refusals, 1);
    assert_eq!(errors_of(&m, "create_vault", "PlanLimit"), 1);
    let text = public_metrics(&mut env);
    assert_eq!(sample(&text, "livault_capacity_refusals_total"), Some(1.0));
    assert!(logs(&env).iter().any(|l| l.starts_with(&format!(
        "event=capacity.refused endpoint=create_vault stable_memory_bytes={} high_water_bytes={before}",
        m.stable_memory_bytes
    ))));
}

/// A scheduler entry whose processing traps is counted (since install, across upgrades)
/// and logged with its key.
#[test]
fn scheduler_failures_are_counted_since_install_and_logged() {
    let mut env = TestEnv::with_manual_ticks();
    for i in 0..3 {
        env.create_vault(user("owner"), &format!("Vault {i}"));
    }
    env.advance_days(8);
    let traps_before = env.host.executions().filter(|e| e.trap.is_some()).count();
    // As in scheduler.rs: the batch message traps on its 3rd counter read, then the first
    // one-entry message on its 2nd: one entry fails.
    env.host.trap_on_ic0("performance_counter", 3);
    let msg = env.host.submit_update(
        env.admin,
        "run_maintenance",
        candid::encode_args(()).unwrap(),
    );
    while env.host.executions().filter(|e| e.trap.is_some()).count() == traps_before {
        assert!(env.host.step(), "the batch message should have trapped");
    }
    env.host.trap_on_ic0("performance_counter", 2);
    let reply = env.host.await_reply(msg).expect("run_maintenance replies");
    let report: R<TickReport> = candid::decode_one(&reply.bytes).unwrap();
    assert_eq!(report.unwrap().failed, 1);

    env.upgrade(None).unwrap();
    let m = metrics(&mut env);
    assert_eq!(m.scheduler.failed_total, 1);
    assert_eq!(m.scheduler.parked_total, 0);
    assert_eq!(m.scheduler.runs, 1);
    assert_eq!(m.scheduler.processed_total, 2);
    let text = public_metrics(&mut env);
    assert_eq!(sample(&text, "livault_scheduler_failures_total"), Some(1.0));
    let logs = logs(&env);
    assert!(logs
        .iter()
        .any(|l| l.starts_with("event=scheduler.batch_trapped entries=3 error=")));
    assert!(
        logs.iter()
            .any(|l| l.starts_with("event=scheduler.entry_failed kind=")
                && l.contains(" parked=false error=")),
        "{logs:#?}"
    );
    assert!(logs.iter().any(|l| l
        .starts_with("event=scheduler.tick manual=true taken=3 processed=2 ")
        && l.contains(" failed=1 ")));
}

// ---------------------------------------------------------------- build

/// The module says which build it is: the crate version and the commit `scripts/build.sh`
/// passed (`unknown` without git).
#[test]
fn the_module_names_its_version_and_commit() {
    let mut env = TestEnv::new();
    let m = metrics(&mut env);
    assert_eq!(
        m.ops.version,
        livault_backend::domain::ops::VERSION,
        "the backend crate's version"
    );
    let c = &m.ops.git_commit;
    let hex12 = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit());
    assert!(
        c == "unknown" || hex12(c) || c.strip_suffix("-dirty").is_some_and(hex12),
        "{c}"
    );
    let text = public_metrics(&mut env);
    assert_eq!(
        sample(
            &text,
            &format!(
                "livault_build_info{{version=\"{}\",git_commit=\"{c}\"}}",
                m.ops.version
            )
        ),
        Some(1.0),
        "{text}"
    );
    assert!(logs(&env).iter().any(|l| l
        == &format!(
            "event=canister.installed version={} git_commit={c} layout={}",
            m.ops.version,
            livault_backend::model::records::LAYOUT_VERSION
        )));
}

// ---------------------------------------------------------------- admin trail

/// Every admin action that changed something is in the trail with its caller and
/// arguments; refused ones are not (they changed nothing) but are logged; only admins read
/// the trail.
#[test]
fn the_admin_trail_records_every_admin_action_for_admins_only() {
    let mut env = TestEnv::new();
    let (admin, controller) = (env.admin, env.controller);
    let owner = user("owner");

    // A paid session paid again, late: for an admin refund.
    let v = env.create_vault(owner, "Family").id;
    let s: R<PaymentSession> = env.update(owner, "init_payment", (v, PaymentPurpose::Create));
    let s = s.unwrap();
    let wallet = TestEnv::wallet_of(owner);
    for _ in 0..2 {
        env.host
            .fund(AccountId::new(&wallet, None), s.amount_e8s + LEDGER_FEE);
        env.host
            .ledger_transfer_as(
                &wallet,
                AccountId::from_hex(&s.account_identifier).unwrap(),
                s.amount_e8s,
            )
            .unwrap();
        let _: R<PaymentReceipt> = env.update(owner, "verify_payment", (s.id,));
    }

    let r: R<()> = env.update(admin, "set_paused", (true,));
    r.unwrap();
    let r: R<()> = env.update(admin, "set_paused", (false,));
    r.unwrap();
    let pricing = Pricing::default();
    let r: R<()> = env.update(admin, "set_pricing", (pricing,));
    r.unwrap();
    let treasury = Account {
        owner: user("treasury"),
        subaccount: None,
    };
    let r: R<()> = env.update(admin, "set_treasury", (treasury,));
    r.unwrap();
    let r: R<PaymentSession> = env.update(admin, "refund_session", (s.id,));
    let refunded = r.unwrap();
    let r: R<TickReport> = env.update(admin, "run_maintenance", ());
    r.unwrap();
    let second_admin = user("admin-2");
    let r: R<()> = env.update(controller, "set_admins", (vec![admin, second_admin],));
    r.unwrap();
    // Refused: not recorded, but counted and logged with the caller.
    let r: R<()> = env.update(owner, "set_paused", (true,));
    assert_eq!(r, Err(VaultError::NotAuthorized));
    env.upgrade(None).unwrap();

    let entries = whole_trail(&mut env);
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "install",
            "set_paused",
            "set_paused",
            "set_pricing",
            "set_treasury",
            "refund_session",
            "run_maintenance",
            "set_admins",
            "upgrade"
        ]
    );
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<u64>>()
    );
    let callers: Vec<Principal> = entries.iter().map(|e| e.caller).collect();
    assert_eq!(
        callers,
        [controller, admin, admin, admin, admin, admin, admin, controller, controller]
    );
    assert!(entries[0].args.starts_with("opt variant { Init = record {"));
    assert!(entries[0].args.contains(&admin.to_text()));
    assert_eq!(entries[1].args, "true");
    assert_eq!(entries[1].outcome, "was_paused=false");
    assert_eq!(entries[2].args, "false");
    assert!(
        entries[3].args.starts_with("record {"),
        "{}",
        entries[3].args
    );
    assert!(entries[4].args.contains(&user("treasury").to_text()));
    assert_eq!(entries[5].args, format!("{} : nat64", s.id));
    assert!(entries[5].outcome.contains(&format!(
        "refunded_e8s={} refund_block={}",
        refunded.refunded_e8s,
        refunded.refund_block.unwrap()
    )));
    assert!(entries[6].outcome.starts_with("taken="));
    assert_eq!(
        entries[7].args,
        format!("vec {{ principal \"{admin}\"; principal \"{second_admin}\"; }}")
    );
    assert_eq!(entries[8].args, "null");
    assert!(entries.windows(2).all(|w| w[0].time <= w[1].time));
    assert_eq!(metrics(&mut env).ops.admin_actions_total, 9);
    assert_eq!(
        errors_of(&metrics(&mut env), "set_paused", "NotAuthorized"),
        1
    );
    let logs = logs(&env);
    assert!(logs.iter().any(|l| l
        == &format!("event=admin.refused action=set_paused caller={owner} error=NotAuthorized")));
    assert!(logs
        .iter()
        .any(|l| l.starts_with("event=admin.action seq=2 action=set_paused caller=")));

    // Only admins read it: a member of the public, the anonymous principal, a controller
    // that is not an admin.
    for who in [owner, Principal::anonymous(), controller] {
        assert_eq!(
            trail(&mut env, who, PageArgs::default()),
            Err(VaultError::NotAuthorized),
            "{who}"
        );
    }
    // The second admin reads it too; pages are bounded like every list.
    assert_eq!(
        trail(&mut env, second_admin, PageArgs::default())
            .unwrap()
            .items
            .len(),
        9
    );
    assert!(matches!(
        trail(
            &mut env,
            admin,
            PageArgs {
                start_after: None,
                limit: Some(101)
            }
        ),
        Err(VaultError::InvalidInput { .. })
    ));
}

/// The trail keeps the newest 2 047 entries: older ones are evicted, numbers never reused,
/// and its memory stays at 8 MiB (2 047 slots of 4 KiB after a header slot: eight 1 MiB buckets).
#[test]
fn the_admin_trail_is_bounded() {
    let mut env = TestEnv::new();
    let admin = env.admin;
    let cap = livault_backend::domain::admin_trail::CAPACITY;
    for i in 0..cap + 10 {
        let r: R<()> = env.update(admin, "set_paused", (i % 2 == 0,));
        r.unwrap();
    }
    let total = cap + 11; // with the install
    let entries = whole_trail(&mut env);
    assert_eq!(entries.len() as u64, cap);
    assert_eq!(entries.first().unwrap().seq, total - cap + 1);
    assert_eq!(entries.last().unwrap().seq, total);
    let m = metrics(&mut env);
    assert_eq!(m.ops.admin_actions_total, total);
    let mem = m
        .stable_memories
        .iter()
        .find(|x| x.name == "admin_trail")
        .unwrap();
    assert_eq!(mem.allocated_bytes, 8 << 20);
    // A cursor into the evicted part starts at the oldest kept entry.
    let page = trail(
        &mut env,
        admin,
        PageArgs {
            start_after: Some(1),
            limit: Some(2),
        },
    )
    .unwrap();
    assert_eq!(page.items[0].seq, total - cap + 1);
}

// ---------------------------------------------------------------- the log

/// `dfx canister logs` tells the story of a vault: install, payment session, confirmation,
/// sweep, status changes, upgrade; by ids, never a vault's name or an owner's principal.
#[test]
fn the_canister_log_tells_the_story_without_user_data() {
    let mut env = TestEnv::new();
    let owner = user("owner");
    let v = env.create_vault(owner, "Grandma's secrets").id;
    env.pay_creation(owner, v);
    env.upload_letter(owner, v, b"ciphertext", None);
    env.advance(Duration::from_secs(120));
    env.upgrade(None).unwrap();
    let logs = logs(&env);
    let expect = [
        "event=canister.installed ".to_string(),
        "event=payment.session_opened session=".to_string(),
        format!("event=vault.status vault={v} from=Draft to=NeedSetup cause="),
        "event=payment.confirmed session=".to_string(),
        "event=payment.swept session=".to_string(),
        "event=canister.upgraded ".to_string(),
    ];
    let mut at = 0;
    for e in &expect {
        let found = logs[at..]
            .iter()
            .position(|l| l.starts_with(e.as_str()))
            .unwrap_or_else(|| panic!("no line {e:?} after line {at}:\n{logs:#?}"));
        at += found + 1;
    }
    for l in &logs {
        assert!(l.starts_with("event="), "{l}");
        assert!(!l.contains("Grandma"), "{l}");
        assert!(!l.contains(&owner.to_text()), "{l}");
        assert!(l.len() <= livault_backend::events::MAX_LINE_BYTES);
    }
}
