//! Long randomized model runs (docs/model-run.md):
//!
//! ```text
//! cargo run -p livault_tests --release --bin model_run -- --seed 7 --steps 5000
//! cargo run -p livault_tests --release --bin model_run -- --seeds 1..20 --steps 2000
//! ```
//!
//! `--spec` predicts the SPEC also where main has known defects being fixed elsewhere
//! (`Defects::spec()`); `--fixed h2,m1` only for the named ones (once their fix is merged);
//! `--verbose` prints every step. Exit status 0 = every seed agreed.

use livault_tests::model::Defects;
use livault_tests::model_run::{run, RunConfig};

fn main() {
    let mut seeds: Vec<u64> = vec![1];
    let mut steps = 2000;
    let mut min_upgrades = 100;
    let mut defects = Defects::main();
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--seed" => seeds = vec![value().parse().expect("--seed N")],
            "--seeds" => {
                let v = value();
                let (lo, hi) = v.split_once("..").expect("--seeds A..B");
                seeds = (lo.parse().expect("A")..hi.parse().expect("B")).collect();
            }
            "--steps" => steps = value().parse().expect("--steps N"),
            "--min-upgrades" => min_upgrades = value().parse().expect("--min-upgrades N"),
            "--spec" => defects = Defects::spec(),
            "--fixed" => {
                for name in value().split(',') {
                    match name {
                        "h2" => defects.h2_both_sessions_charged = false,
                        "m1" => defects.m1_stale_session_applies = false,
                        "m3" => defects.m3_grace_heir_no_auto_unlock = false,
                        "l1" => defects.l1_idempotent_owner_update_not_activity = false,
                        "f1" => defects.f1_compaction_feeds_itself = false,
                        other => panic!("unknown defect {other} (h2, m1, m3, l1, f1)"),
                    }
                }
            }
            "--verbose" => verbose = true,
            other => panic!("unknown argument {other}; see the module docs"),
        }
    }
    for seed in seeds {
        let stats = run(RunConfig {
            seed,
            steps,
            min_upgrades,
            defects,
            verbose,
            progress: true,
        });
        println!("seed {seed}: {}", stats.summary());
    }
}
