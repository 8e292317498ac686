//! The randomized model run (issue #12, item 7) on the compiled wasm: one seeded run of user
//! calls, wallet payments, scheduler ticks and at least 100 canister upgrades, every answer
//! and every vault's audit chain compared with the plain model of the SPEC in
//! `tests/src/model.rs`, and at every full check (after each upgrade, every 20 steps) the
//! canister's storage walk (`State::check_invariants`) run over the wasm's stable memory.
//! `scripts/test.sh` runs it as its own step with `--nocapture`, so the seed, steps, upgrades
//! and duration are printed. `LIVAULT_MODEL_SEED=N` runs another seed;
//! longer runs: the `model_run` binary (docs/model-run.md).

use livault_tests::model_run::{run, RunConfig};

#[test]
fn model_run_seed() {
    let seed = match std::env::var("LIVAULT_MODEL_SEED") {
        Ok(s) => s.parse().expect("LIVAULT_MODEL_SEED: a number"),
        Err(_) => 1,
    };
    let stats = run(RunConfig {
        seed,
        steps: 400,
        min_upgrades: 100,
        verbose: false,
        progress: false,
    });
    eprint!(
        "model run: seed {seed}, 0 disagreements: {}",
        stats.summary()
    );
    assert!(stats.upgrades >= 100, "only {} upgrades", stats.upgrades);
    assert!(stats.steps >= 400, "only {} steps", stats.steps);
    assert_eq!(
        stats.storage_walks, stats.full_checks,
        "every full check walks the storage"
    );
}
