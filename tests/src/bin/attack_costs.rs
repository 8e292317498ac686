//! Prints the cost-of-attack table of `docs/security.md` (issue #12 item 2), measured on the
//! shipped wasm (`scripts/build.sh`; `LIVAULT_WASM` for another artifact):
//!
//! ```text
//! cargo run -p livault_tests --bin attack_costs
//! ```
//!
//! Each row's bound is asserted by `tests/e2e/attack_costs.rs`; this prints the same
//! measurement as Markdown, and the violations if any (exit status 1).

use livault_tests::attack::{self, Caller};

fn main() {
    let started = std::time::Instant::now();
    let (_, rows) = attack::measure_all(|r| {
        eprintln!(
            "measured {} ({}): {} calls, {} instructions max",
            r.method,
            r.caller.label(),
            r.measured.calls,
            r.measured.max_instructions
        );
    });
    for caller in [Caller::Unpaid, Caller::Anonymous] {
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r.caller == caller)
            .cloned()
            .collect();
        println!("\n### {}\n", caller.label());
        print!("{}", attack::markdown(&mine));
    }
    eprintln!("measured in {:.0?}", started.elapsed());
    let bad = attack::violations(&rows);
    if !bad.is_empty() {
        for v in &bad {
            eprintln!("BOUND EXCEEDED: {v}");
        }
        std::process::exit(1);
    }
}
