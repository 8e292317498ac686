//! Interleavings of the payment flows (issue #12, item 1): the bounded run of the explorer in
//! `tests/src/interleave.rs` (the long run is the `explore_payments` binary, see
//! docs/interleavings.md). Every interleaving of up to three flows (verify of one session
//! twice, two sessions of one vault, the scheduler's session check, `refund_session`,
//! `delete_vault`, renewals and upgrades), with at most one ledger fault per path, must keep
//! the books and apply each purpose at most once.
//!
//! `LIVAULT_INTERLEAVE_FAULTS=N` changes the fault bound, `LIVAULT_INTERLEAVE_SETUPS=a,b`
//! selects setups, `LIVAULT_INTERLEAVE_REPLAY='setup;flows;path'` replays one path.

use livault_tests::interleave::{
    explore, parse_path, replay_key, scenarios, Bounds, Choice, Fault, Flow,
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
    let report = explore(&bounds, threads(), &|line| println!("{line}"));
    print!("{}", report.counterexamples_text());
    println!("{}", report.summary());
    assert!(
        report.paths() >= 1_000,
        "the bounded run must explore thousands of interleavings, explored {}",
        report.paths()
    );
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

/// Worker threads: `LIVAULT_INTERLEAVE_THREADS`, else the machine's parallelism.
fn threads() -> usize {
    std::env::var("LIVAULT_INTERLEAVE_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
