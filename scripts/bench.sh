#!/usr/bin/env bash
# Content benchmark on the shipped canister wasm (see tests/src/bin/bench_content.rs):
# instructions per byte of upload_chunk / get_download_chunk, dirty stable bytes per byte,
# storage overhead, next to a raw stable-memory baseline (tests/bench/raw_stable.wat).
#
#   scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
LIVAULT_WASM="$(pwd)/target/livault/livault_backend.wasm" \
  cargo run --quiet --locked -p livault_tests --bin bench_content
