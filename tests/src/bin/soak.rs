//! The one-year soak of issue #12 item 3 on the shipped wasm (`scripts/build.sh`;
//! `LIVAULT_WASM` for another artifact), printed as Markdown for BENCHMARKS.md:
//!
//! ```text
//! cargo run --release -p livault_tests --bin soak            # 365 days (see BENCHMARKS.md)
//! cargo run --release -p livault_tests --bin soak -- short   # the short run of the tests
//! ```
//!
//! Exit status 1 when a property fails (a trap, a queue off its baseline, a category past its
//! bound). The short run is also `tests/e2e/soak.rs` (part of `scripts/test.sh`).

use livault_tests::soak::{self, SoakConfig};

fn main() {
    let cfg = match std::env::args().nth(1).as_deref() {
        Some("short") => SoakConfig::short(),
        None | Some("year") => SoakConfig::year(),
        Some(other) => {
            eprintln!("usage: soak [year|short] (got {other})");
            std::process::exit(2);
        }
    };
    eprintln!("soak: {cfg:?}");
    let report = soak::run(cfg, |day, r| {
        if day % 10 == 9 {
            eprintln!(
                "day {}: {} updates, {} cycles, {} traps",
                day + 1,
                r.updates,
                r.cycles,
                r.traps.len()
            );
        }
    });
    print!("{}", report.markdown());
    let bad = report.violations();
    if !bad.is_empty() {
        for v in &bad {
            eprintln!("SOAK PROPERTY FAILED: {v}");
        }
        std::process::exit(1);
    }
}
