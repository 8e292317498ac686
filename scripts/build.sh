#!/usr/bin/env bash
# Builds the LiVault canister wasm for the Internet Computer.
#
#   scripts/build.sh              -> target/livault/livault_backend.wasm (+ .wasm.gz)
#   scripts/build.sh --bench-seed -> target/livault-bench/livault_backend.wasm: the same canister
#                                    plus the benchmark-only `bench_seed_drafts`,
#                                    `bench_seed_audit`, `bench_storage_ops` and `bench_reply_parts` endpoints (cargo
#                                    feature `bench-seed`); never deploy it. The default build's
#                                    endpoint check guarantees the shipped wasm lacks it.
#
# Steps: ensure the wasm32 target, cargo release build, then with ic-wasm (installed from npm
# into .tools/ at a pinned version) embed the .did as `candid:service` metadata, shrink,
# check that the exported endpoints equal the .did (lifecycle hooks listed in
# candid/hidden_endpoints.txt), gzip, print sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

IC_WASM_VERSION=0.11.1
TOOLS="$ROOT/.tools"
IC_WASM="$TOOLS/node_modules/@icp-sdk/ic-wasm-linux-x64/bin/ic-wasm"
OUT="$ROOT/target/livault"
DID="$ROOT/candid/livault_backend.did"
HIDDEN="$ROOT/candid/hidden_endpoints.txt"
FEATURES=()
case "${1:-}" in
  "") ;;
  --bench-seed)
    OUT="$ROOT/target/livault-bench"
    FEATURES=(--features bench-seed)
    mkdir -p "$OUT"
    { cat "$HIDDEN"; echo "canister_update:bench_seed_drafts"; echo "canister_update:bench_seed_audit"; echo "canister_update:bench_storage_ops"; echo "canister_update:bench_reply_parts"; } > "$OUT/hidden_endpoints.txt"
    HIDDEN="$OUT/hidden_endpoints.txt"
    ;;
  *) echo "usage: $0 [--bench-seed]" >&2; exit 2 ;;
esac

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "==> installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ ! -x "$IC_WASM" ] || [ "$("$IC_WASM" --version 2>/dev/null)" != "ic-wasm $IC_WASM_VERSION" ]; then
  echo "==> installing ic-wasm $IC_WASM_VERSION into .tools/"
  mkdir -p "$TOOLS"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" "@icp-sdk/ic-wasm-linux-x64@$IC_WASM_VERSION" >/dev/null
fi

# The commit the module reports (livault_build_info in /metrics, ops.git_commit in
# get_metrics): 12 hex digits of HEAD, "-dirty" with uncommitted changes to tracked files;
# "unknown" outside a git checkout (the same sources then always build the same wasm). A
# caller may set LIVAULT_GIT_COMMIT itself (CI, release builds).
if [ -z "${LIVAULT_GIT_COMMIT:-}" ]; then
  if LIVAULT_GIT_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null); then
    git diff --quiet HEAD -- 2>/dev/null || LIVAULT_GIT_COMMIT="$LIVAULT_GIT_COMMIT-dirty"
  else
    LIVAULT_GIT_COMMIT=unknown
  fi
fi
export LIVAULT_GIT_COMMIT
echo "==> module commit: $LIVAULT_GIT_COMMIT"

echo "==> cargo build (profile canister: release + LTO, wasm32)"
cargo build --quiet --profile canister --locked --target wasm32-unknown-unknown -p livault_backend \
  ${FEATURES[@]+"${FEATURES[@]}"}

mkdir -p "$OUT"
RAW="$ROOT/target/wasm32-unknown-unknown/canister/livault_backend.wasm"
WASM="$OUT/livault_backend.wasm"
"$IC_WASM" "$RAW" -o "$WASM" shrink
"$IC_WASM" "$WASM" -o "$WASM" metadata candid:service -f "$DID" -v public
"$IC_WASM" "$WASM" check-endpoints --candid "$DID" --hidden "$HIDDEN"
gzip -9 -n -c "$WASM" > "$WASM.gz"

size() { stat -c %s "$1"; }
echo "==> built $WASM"
printf '    raw wasm     %9d bytes\n' "$(size "$RAW")"
printf '    shrunk wasm  %9d bytes\n' "$(size "$WASM")"
printf '    gzipped      %9d bytes (limit for this project: 1048576)\n' "$(size "$WASM.gz")"
if [ "$(size "$WASM.gz")" -gt 1048576 ]; then
  echo "error: gzipped wasm exceeds 1 MiB" >&2
  exit 1
fi
