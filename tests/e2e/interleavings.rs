//! Interleavings of the payment flows (issue #12, item 1): the bounded run of the explorer in
//! `tests/src/interleave/` (the long run is the `explore_payments` binary, see
//! docs/interleavings.md). Every interleaving of up to three flows (verify of one session
//! twice, two sessions of one vault, the scheduler's session check, `refund_session`,
//! `delete_vault`, renewals and upgrades), with at most one ledger fault per path, must keep
//! the books and apply each purpose at most once.
//!
//! `LIVAULT_INTERLEAVE_FAULTS=N` changes the fault bound, `LIVAULT_INTERLEAVE_SETUPS=a,b`
//! selects setups, `LIVAULT_INTERLEAVE_REPLAY='setup;flows;path'` replays one path.

use livault_tests::interleave::{
    explore, parse_path, replay_key, scenarios, Bounds, Choice, Fault, Flow, Outcomes,
};

fn bounds() -> Bounds {
    let mut b = Bounds::bounded();
    if let Ok(n) = std::env::var("LIVAULT_INTERLEAVE_FAULTS") {
        let n = n.parse().expect("LIVAULT_INTERLEAVE_FAULTS=N");
        b.max_faults = [0, n, n, n];
    }
    if let Ok(s) = std::env::var("LIVAULT_INTERLEAVE_SETUPS") {
        b.setups = s.split(',').map(str::to_string).collect();
    }
    b
}

#[test]
fn every_interleaving_of_the_payment_flows_keeps_the_books_and_applies_each_purpose_once() {
    if let Ok(key) = std::env::var("LIVAULT_INTERLEAVE_REPLAY") {
        let c = replay_key(&key);
        println!("{c}");
        assert!(
            c.violations.is_empty(),
            "the replayed path violates an invariant"
        );
        return;
    }
    let bounds = bounds();
    println!("exploring: {}", bounds.describe());
    // One line per setup and per violating scenario (the explore_payments binary prints
    // every scenario).
    let report = explore(&bounds, threads(), &|line| {
        if line.starts_with("setup") || line.contains("VIOLATING") {
            println!("{line}");
        }
    });
    print!("{}", report.counterexamples_text());
    println!("{}", report.summary());
    assert!(
        report.paths() >= 1_000,
        "the bounded run must explore thousands of interleavings, explored {}",
        report.paths()
    );
    // Every outcome of the bounds was tried on some path (the faults are not vacuous).
    let outcomes = report.outcomes();
    assert!(outcomes.fault_free_paths > 0, "{outcomes}");
    for f in &bounds.faults {
        assert!(
            outcomes.paths_with[*f as usize] > 0,
            "no path released a call with {f:?}: {outcomes}"
        );
    }
    assert!(
        report.counterexamples.is_empty(),
        "{} interleavings violate the payment invariants; counterexamples above (replay one \
         with LIVAULT_INTERLEAVE_REPLAY='<key>')",
        report.violating_paths()
    );
}

#[test]
fn scenarios_are_every_multiset_of_up_to_three_flows() {
    let pool = [(Flow::Verify(0), 2), (Flow::Tick, 1), (Flow::Delete, 1)];
    let all = scenarios(&pool, 3);
    // {v}, {vv}, {t}, {d}, {vt}, {vd}, {td}, {vvt}, {vvd}, {vtd}
    assert_eq!(all.len(), 10);
    assert!(all.contains(&vec![Flow::Verify(0), Flow::Verify(0), Flow::Tick]));
    assert!(!all.iter().any(|s| s.len() > 3));
    assert_eq!(scenarios(&pool, 1).len(), 3);
}

#[test]
fn printed_paths_parse_back() {
    let path = vec![
        Choice::Start(0),
        Choice::Release(1, Fault::Deliver),
        Choice::Release(0, Fault::TooOld),
        Choice::Start(2),
        Choice::Release(0, Fault::Unknown),
    ];
    let text: Vec<String> = path.iter().map(|c| c.to_string()).collect();
    assert_eq!(text.join(" "), "s0 r1:deliver r0:too-old s2 r0:unknown");
    assert_eq!(parse_path(&text.join(" ")), Some(path));
    assert_eq!(parse_path("s0 r1:sometimes"), None);
}

#[test]
fn outcomes_count_releases_and_paths_by_fault() {
    let mut o = Outcomes::default();
    o.add_path(&[
        Choice::Start(0),
        Choice::Release(0, Fault::Deliver),
        Choice::Release(0, Fault::Deliver),
    ]);
    o.add_path(&[
        Choice::Start(0),
        Choice::Release(0, Fault::Reject),
        Choice::Release(0, Fault::Reject),
        Choice::Release(0, Fault::TooOld),
    ]);
    assert_eq!(o.releases, [2, 2, 0, 0, 1]);
    assert_eq!(o.fault_free_paths, 1);
    assert_eq!(o.paths_with, [0, 1, 0, 0, 1]);
    let mut twice = o;
    twice.merge(&o);
    assert_eq!(twice.releases, [4, 4, 0, 0, 2]);
    assert_eq!(twice.fault_free_paths, 2);
    assert_eq!(
        o.to_string(),
        "released calls: deliver 2, reject 2, unknown 0, trap 0, too-old 1; paths: 1 \
         fault-free, with reject 1, unknown 0, trap 0, too-old 1"
    );
}

/// Worker threads: `LIVAULT_INTERLEAVE_THREADS`, else the machine's parallelism.
fn threads() -> usize {
    std::env::var("LIVAULT_INTERLEAVE_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The invariant checker is not vacuous: a sequential, fault-free payment observed for real
/// passes, and each kind of damage done to that observation is reported.
#[test]
fn the_invariants_accept_a_sequential_payment_and_flag_each_kind_of_damage() {
    use livault_tests::interleave::{setup_upgrade_two, violations, Explorer, Observed};
    let setup = setup_upgrade_two();
    let mut ex = Explorer::new(&setup, Bounds::bounded());
    // verify(A) alone: A pays the upgrade; the settle phase refunds B (its purpose is gone).
    let run = ex.happy_path(&[Flow::Verify(0)]);
    assert!(run.violations.is_empty(), "{run}");
    let base: Observed = ex.observe();
    assert!(violations(&base).is_empty());
    let a = base
        .sessions
        .iter()
        .position(|s| s.label == "A")
        .expect("A");
    let b = base
        .sessions
        .iter()
        .position(|s| s.label == "B")
        .expect("B");
    assert!(base.sessions[b].session.refunded_e8s > 0, "B was refunded");
    type Damage = Box<dyn Fn(&mut Observed)>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "was not applied by it",
            Box::new(|o| o.bills.iter_mut().for_each(|x| x.applied = false)),
        ),
        (
            "swept 2 times",
            Box::new(move |o| {
                let acc = o.sessions[a].account;
                let sweep = o
                    .blocks
                    .iter()
                    .find(|x| {
                        matches!(&x.op, local_replica::ledger::Operation::Transfer { from, .. }
                            if *from == acc)
                    })
                    .cloned()
                    .expect("A's sweep");
                o.blocks.push(sweep);
            }),
        ),
        (
            "applied 2 times",
            Box::new(move |o| {
                let mut twice = o.bills[0].clone();
                twice.id += 1;
                twice.session_id = o.sessions[b].session.id;
                o.bills.push(twice);
            }),
        ),
        (
            "stuck on its subaccount",
            Box::new(move |o| o.sessions[b].left = 1_000_000),
        ),
        (
            "refunded on the ledger",
            Box::new(move |o| o.sessions[b].session.refunded_e8s += 1),
        ),
        (
            "payment.confirmed events",
            Box::new(|o| o.events.retain(|e| e.action != "payment.confirmed")),
        ),
        (
            "breaks the hash chain",
            Box::new(|o| o.events[1].details.push('!')),
        ),
        (
            "both swept and refunded",
            Box::new(move |o| o.sessions[a].session.refunded_e8s = 1_000_000),
        ),
        ("ledger: minted", Box::new(|o| o.minted += 1)),
    ];
    for (expected, damage) in cases {
        let mut o = base.clone();
        damage(&mut o);
        let found = violations(&o);
        assert!(
            found.iter().any(|v| v.contains(expected)),
            "damage {expected:?} not reported: {found:?}"
        );
    }
}

/// Found by the long run (two faults on one path, `create-excess`): the excess refund is
/// applied but answered `SYS_UNKNOWN`, its retry (same dedup key) comes back `TxTooOld`, and
/// the canister infers from the empty subaccount that it applied: the billing keeps the
/// refund (`refund_e8s` > 0, not pending) with no block. The checker used to count only
/// refunds with a block and reported e8s refunded on the ledger that the billing did not
/// name; the books do match.
#[test]
fn an_excess_refund_settled_by_too_old_after_an_unknown_answer_keeps_the_books() {
    use livault_tests::interleave::{setup_create_excess, Explorer};
    let path = "s0 r0:deliver r0:deliver r0:unknown r0:too-old r0:deliver";
    let setup = setup_create_excess();
    let mut ex = Explorer::new(&setup, Bounds::exhaustive());
    let run = ex.replay(&[Flow::Verify(0)], &parse_path(path).expect("path"));
    assert!(run.violations.is_empty(), "{run}");
    let o = ex.observe();
    assert_eq!(o.bills.len(), 1, "{run}");
    let b = &o.bills[0];
    assert!(
        b.applied && !b.refund_pending && b.refund_block.is_none(),
        "{b:?}"
    );
    assert!(b.refund_e8s > 0, "{b:?}");
    // The owner got the excess exactly once on the ledger; nothing is left on A.
    let to_owner = o
        .blocks
        .iter()
        .filter(|x| {
            matches!(&x.op, local_replica::ledger::Operation::Transfer { to, amount, .. }
                if *to == o.owner && *amount == b.refund_e8s)
        })
        .count();
    assert_eq!(to_owner, 1, "{run}");
    assert_eq!(o.sessions[0].left, 0, "{run}");
}

/// The host's in-memory snapshots (what the explorer replays from) carry the canister log:
/// a restore drops the lines written since, and the next line continues the snapshot's
/// numbering.
#[test]
fn a_host_snapshot_restores_the_canister_log() {
    let mut env = livault_tests::TestEnv::new();
    let before: Vec<local_replica::LogRecord> = env.host.canister_logs().cloned().collect();
    assert!(!before.is_empty(), "the install writes a line");
    let snap = env.host.snapshot().expect("quiescent");
    env.upgrade(None).unwrap();
    assert!(env.host.canister_logs().count() > before.len());
    env.host.restore(&snap).unwrap();
    let after: Vec<local_replica::LogRecord> = env.host.canister_logs().cloned().collect();
    assert_eq!(after, before);
    env.upgrade(None).unwrap();
    let next = env
        .host
        .canister_logs()
        .nth(before.len())
        .expect("a new line");
    assert_eq!(next.idx, before.last().expect("a line").idx + 1);
}
