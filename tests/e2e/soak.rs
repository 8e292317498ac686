//! Issue #12 item 3, the short run (`SoakConfig::short`: 40 busy days + 40 quiet days, 50
//! throw-away principals, 400 create → delete cycles, a chatty owner, failing heirs, daily
//! tickets) on the compiled wasm. The one-year run is `cargo run --release -p livault_tests
//! --bin soak` (its result is in BENCHMARKS.md).

use livault_tests::soak::{self, SoakConfig};
use livault_tests::stable_usage::Category;

#[test]
fn a_busy_season_leaves_every_queue_at_its_baseline_and_memory_bounded() {
    let cfg = SoakConfig::short();
    let report = soak::run(cfg.clone(), |_, _| {});
    println!("{}", report.markdown());
    assert_eq!(report.traps, Vec::<String>::new(), "no trap");
    let bad = report.violations();
    assert!(bad.is_empty(), "soak properties:\n{}", bad.join("\n"));
    // The run did what it claims.
    assert_eq!(report.cycles, cfg.cycles);
    assert_eq!(report.abandoned_sessions, cfg.cycles / 2);
    assert!(report.chatty_events >= cfg.days * (2 * cfg.chatty_updates_per_day + 1));
    assert_eq!(report.tickets, cfg.days);
    assert_eq!(report.failed_attempts, cfg.days * 2 * 5);
    assert!(report.after.rate_limited_principals <= 10_000);
    // Retention compacted the chatty log to its last 30 days (and the quiet days' check-ins).
    assert!(
        report.chatty_kept < report.chatty_events / 2,
        "{} of {} events kept",
        report.chatty_kept,
        report.chatty_events
    );
    // The financial records stay: the abandoned sessions' bytes are there.
    assert!(report.growth(Category::Payments) > 0);
}
