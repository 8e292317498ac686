#!/usr/bin/env bash
# Content benchmark on the canister wasm (see tests/src/bin/bench_content.rs):
# instructions per byte of upload_chunk / get_download_chunk, dirty stable bytes per byte,
# storage overhead, next to a raw stable-memory baseline (tests/bench/raw_stable.wat).
#
#   scripts/bench.sh
#
# Until the payment flow is merged the vault is marked paid through a benchmark-only hook,
# so this builds a separate wasm with `--features bench-hooks` (never shipped), copied to
# target/bench-wasm/ (run scripts/build.sh again before the E2E tests). Once `TestEnv::pay_creation` exists, run with BENCH_PAYMENTS=1 to
# measure the shipped target/livault/livault_backend.wasm instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${BENCH_PAYMENTS:-0}" = 1 ]; then
  scripts/build.sh
  LIVAULT_WASM="$(pwd)/target/livault/livault_backend.wasm" \
    cargo run --quiet --locked -p livault_tests --features payments --bin bench_content
else
  cargo build --quiet --release --locked --target wasm32-unknown-unknown \
    -p livault_backend --features bench-hooks
  mkdir -p target/bench-wasm
  cp target/wasm32-unknown-unknown/release/livault_backend.wasm target/bench-wasm/
  LIVAULT_WASM="$(pwd)/target/bench-wasm/livault_backend.wasm" \
    cargo run --quiet --locked -p livault_tests --bin bench_content
fi
