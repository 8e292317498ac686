//! The randomized model run (issue #12, item 7) on the compiled wasm: several seeds, each
//! with at least 100 canister upgrades, every answer and every vault's audit chain compared
//! with the plain model of the SPEC in `tests/src/model.rs`. Longer runs: the `model_run`
//! binary (docs/model-run.md).

use livault_tests::model::Defects;
use livault_tests::model_run::{run, RunConfig};

fn seed_run(seed: u64) {
    let stats = run(RunConfig {
        seed,
        steps: 600,
        min_upgrades: 100,
        defects: Defects::main(),
        verbose: false,
        progress: false,
    });
    eprintln!("model run seed {seed}: {}", stats.summary());
    assert!(stats.upgrades >= 100, "only {} upgrades", stats.upgrades);
}

#[test]
fn model_run_seed_1() {
    seed_run(1);
}

#[test]
fn model_run_seed_2() {
    seed_run(2);
}

#[test]
fn model_run_seed_3() {
    seed_run(3);
}
