//! The payment interleaving explorer, long run (see `tests/src/interleave/`; the bounded
//! run is `tests/e2e/interleavings.rs`, part of `scripts/test.sh`).
//!
//!     scripts/build.sh && cargo run -p livault_tests --bin explore_payments -- \
//!         [--bounded] [--faults N] [--faults-3 N] [--no-balance-faults] [--flows N]
//!         [--setup NAME]... [--first | --all-paths] [--replay 'KEY'] [--measure]
//!
//! Defaults ([`Bounds::exhaustive`]): every setup, up to 3 flows, at most 2 faults per path
//! (1 with 3 flows), faults on balance calls too, every path of every scenario. `--bounded`
//! starts from the bounds of the test instead; `--flows N` explores up to N flows in every
//! setup; `--faults N` sets the fault bound for every scenario size, `--faults-3 N` for three
//! flows; `--first` stops a scenario at its first violating path, `--all-paths` explores
//! every path even after a violation. `--replay` replays one path printed by a counterexample
//! (`setup;flows;path`). `--measure` prints the cost of the host operations. Exits with 1 if
//! an invariant was violated. `LIVAULT_INTERLEAVE_THREADS` sets the worker threads.

use livault_tests::interleave::{explore, measure_host_costs, replay_key, Bounds};

fn main() {
    let mut bounds = Bounds::exhaustive();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().unwrap_or_else(|| panic!("{a} needs {what}"));
        match a.as_str() {
            "--faults" => {
                let n = value("a number").parse().expect("--faults N");
                bounds.max_faults = [0, n, n, n];
            }
            "--faults-3" => bounds.max_faults[3] = value("a number").parse().expect("--faults-3 N"),
            "--bounded" => bounds = Bounds::bounded(),
            "--no-balance-faults" => bounds.balance_faults = false,
            "--flows" => {
                bounds.max_flows = value("a number").parse().expect("--flows N");
                bounds.three_flow_setups = None;
            }
            "--setup" => bounds.setups.push(value("a setup name")),
            "--first" => bounds.stop_scenario_at_first_violation = true,
            "--all-paths" => bounds.stop_scenario_at_first_violation = false,
            "--measure" => {
                for (what, ms) in measure_host_costs(20) {
                    println!("{ms:>8.2} ms  {what}");
                }
                return;
            }
            "--replay" => {
                let c = replay_key(&value("a key"));
                println!("{c}");
                std::process::exit(i32::from(!c.violations.is_empty()));
            }
            other => panic!("unknown argument {other}"),
        }
    }
    println!("exploring: {}", bounds.describe());
    let report = explore(&bounds, threads(), &|line| println!("{line}"));
    print!("{}", report.counterexamples_text());
    println!("{}", report.summary());
    std::process::exit(i32::from(!report.counterexamples.is_empty()));
}

/// Worker threads: `LIVAULT_INTERLEAVE_THREADS`, else the machine's parallelism.
fn threads() -> usize {
    std::env::var("LIVAULT_INTERLEAVE_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
