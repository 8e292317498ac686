//! Long fuzz run of every endpoint of the `.did` on the compiled wasm (see docs/fuzzing.md).
//!
//!     scripts/build.sh && cargo run --release -p livault_tests --bin fuzz_endpoints -- \
//!         --seed 1 --calls-per-endpoint 10000
//!
//! Options: `--seed N` (default 1), `--calls-per-endpoint N` (default 10000), `--epoch-calls N`
//! (calls between two returns to the populated checkpoint, default 300), `--progress N`
//! (a progress line every N calls, default 10000). Prints the per-endpoint table and every
//! oracle violation; exits with status 1 if there is any. The same options and wasm give the
//! same run.

use livault_tests::fuzz::runner::{run, Config};

fn main() {
    let mut cfg = Config {
        calls_per_endpoint: 10_000,
        progress_every: 10_000,
        ..Config::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match flag.as_str() {
            "--seed" => cfg.seed = value("--seed"),
            "--calls-per-endpoint" => cfg.calls_per_endpoint = value("--calls-per-endpoint"),
            "--epoch-calls" => cfg.epoch_calls = value("--epoch-calls").max(1),
            "--progress" => cfg.progress_every = value("--progress"),
            other => {
                eprintln!(
                    "unknown option {other}; use --seed N --calls-per-endpoint N \
                     [--epoch-calls N] [--progress N]"
                );
                std::process::exit(2);
            }
        }
    }
    let report = run(&cfg);
    print!("{}", report.render());
    if !report.failures.is_empty() {
        std::process::exit(1);
    }
}
