#!/usr/bin/env bash
# The JavaScript vetKeys client check (docs/keys.md): the Rust fixture binary runs the real
# wasm on the embedded host and writes what the canister returned to bob after the unlock;
# node decrypts it with @dfinity/vetkeys and compares with the Rust client byte for byte.
# Installs the pinned npm packages of tests/js/package.json into tests/js/node_modules
# (git-ignored) on first use. scripts/test.sh runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

VETKEYS_VERSION=0.4.0
JS=tests/js
installed() {
  node -e "process.exit(require('./$JS/node_modules/@dfinity/vetkeys/package.json').version === '$VETKEYS_VERSION' ? 0 : 1)" 2>/dev/null
}
if ! installed; then
  echo "==> installing @dfinity/vetkeys $VETKEYS_VERSION into $JS/node_modules"
  npm install --silent --no-audit --no-fund --no-package-lock --prefix "$JS" >/dev/null
fi

FIXTURE=target/vetkeys-js/fixture.json
LIVAULT_WASM="${LIVAULT_WASM:-$(pwd)/target/livault/livault_backend.wasm}" \
  cargo run --quiet --locked -p livault_tests --bin vetkeys_js_fixture -- "$FIXTURE"
VETKEYS_FIXTURE="$FIXTURE" node --test "$JS/vetkeys.test.mjs"
