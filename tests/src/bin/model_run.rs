//! Long randomized model runs (docs/model-run.md):
//!
//! ```text
//! cargo run -p livault_tests --release --bin model_run -- --seed 7 --steps 5000
//! cargo run -p livault_tests --release --bin model_run -- --seeds 1..20 --steps 2000
//! ```
//!
//! `--verbose` prints every step. Exit status 0 = every seed agreed (a disagreement panics
//! with the seed, the step and the command that replays it).

use livault_tests::model_run::{run, RunConfig};

fn main() {
    let mut seeds: Vec<u64> = vec![1];
    let mut steps = 2000;
    let mut min_upgrades = 100;
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
            "--verbose" => verbose = true,
            other => panic!("unknown argument {other}; see the module docs"),
        }
    }
    for seed in seeds {
        let stats = run(RunConfig {
            seed,
            steps,
            min_upgrades,
            verbose,
            progress: true,
        });
        print!("seed {seed}, 0 disagreements: {}", stats.summary());
    }
}
