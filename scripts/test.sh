#!/usr/bin/env bash
# The project's test command (README): build the canister wasm, check formatting and lints
# (host and wasm32, warnings denied), run every test, run the QA script on the local runner,
# build with icp-cli, and check the TypeScript bindings against the real wasm.
# CI (.ci/run) calls exactly this on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "build the canister wasm"
scripts/build.sh

# Right after the shipped build, so icp.yaml's scripts/build.sh finds it up to date (the
# benchmark build, another feature set, makes cargo relink the canister).
step "icp-cli: icp build (icp.yaml) produces the canister wasm"
scripts/icp.sh build
cmp .icp/cache/artifacts/livault_backend target/livault/livault_backend.wasm
echo "icp build: .icp/cache/artifacts/livault_backend = target/livault/livault_backend.wasm"

step "build the benchmark wasm (tests/e2e/bench_endpoints.rs and audit_growth.rs run on it)"
scripts/build.sh --bench-seed

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (host, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo clippy (wasm32 canister)"
cargo clippy -p livault_backend --target wasm32-unknown-unknown --locked -- -D warnings
cargo clippy -p livault_backend --target wasm32-unknown-unknown --locked --features bench-seed -- -D warnings

step "cargo test (unit, host semantics, end-to-end on the wasm)"
# The long-running explorations are the next steps, each with its numbers printed.
LIVAULT_WASM="$(pwd)/target/livault/livault_backend.wasm" cargo test --workspace --locked \
  -- --skip every_interleaving_of_the_payment_flows --skip model_run_seed \
  --skip every_endpoint_survives_a_short_fuzz_run

step "payment interleavings, bounded run (docs/interleavings.md)"
start=$(date +%s)
LIVAULT_WASM="$(pwd)/target/livault/livault_backend.wasm" cargo test --locked -p livault_tests \
  --test interleavings every_interleaving_of_the_payment_flows -- --nocapture
echo "bounded interleaving run: $(( $(date +%s) - start )) s"

step "randomized model run (issue #12 item 7): seed, steps, upgrades (>= 100), duration"
model_run_started=$(date +%s)
LIVAULT_WASM="$(pwd)/target/livault/livault_backend.wasm" cargo test -p livault_tests --locked --test model_run -- --nocapture
echo "model run step: $(( $(date +%s) - model_run_started )) s"

step "fuzz every endpoint of the .did (short seeded run; the long run: docs/fuzzing.md)"
fuzz_start=$SECONDS
LIVAULT_WASM="$(pwd)/target/livault/livault_backend.wasm" cargo test -p livault_tests --locked \
  --test fuzz every_endpoint_survives_a_short_fuzz_run -- --nocapture
echo "short fuzz run: $((SECONDS - fuzz_start)) s"

step "vetKeys JavaScript client (@dfinity/vetkeys in node) on the canister's bytes"
scripts/vetkeys-js.sh

if [ -x scripts/qa/run-local.sh ]; then
  step "QA happy path on the local runner"
  scripts/qa/run-local.sh
fi

step "QA happy path, icp-cli lines (BACKEND=icp) on the local runner"
scripts/qa/run-local.sh icp

step "TypeScript: official ledger .did provenance, bindings (@icp-sdk/bindgen), tsc --strict, round trip through the wasm"
LIVAULT_WASM="$(pwd)/target/livault/livault_backend.wasm" scripts/ts-client.sh

step "all checks passed"
