#!/usr/bin/env bash
# The TypeScript side of the interface, as a frontend developer meets it (clients/ts/):
#
#   1. installs clients/ts's pinned npm packages (`npm ci`, into clients/ts/node_modules/);
#   2. checks that each official interface kept in candid/reference/ is byte for byte the file
#      inside the package and version its provenance names (candid/reference/provenance.txt);
#   3. generates the bindings from candid/livault_backend.did with the official generator
#      (@icp-sdk/bindgen) into clients/ts/generated/;
#   4. type-checks the bindings and the client module clients/ts/src/livault.ts with
#      `tsc --strict` for the browser (tsconfig.json);
#   5. compiles the round trip test and runs it with Node's test runner: arguments encoded by
#      the generated IDL go through the real wasm on livault-local (raw Candid bytes in and
#      out) and the replies are decoded by the same IDL.
#
# Needs the wasm (scripts/build.sh; LIVAULT_WASM overrides the default path).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CLIENT="$ROOT/clients/ts"
WASM="${LIVAULT_WASM:-$ROOT/target/livault/livault_backend.wasm}"

step() { printf '==> %s\n' "$*"; }

if [ ! -f "$WASM" ]; then
  echo "error: $WASM not found; run scripts/build.sh first" >&2
  exit 1
fi

# 1. Pinned packages (package-lock.json); reinstalled when the lock file changed.
if ! cmp -s "$CLIENT/package-lock.json" "$CLIENT/node_modules/.livault-lock" 2>/dev/null; then
  step "installing clients/ts's npm packages (npm ci)"
  (cd "$CLIENT" && npm ci --silent --no-audit --no-fund >/dev/null)
  cp "$CLIENT/package-lock.json" "$CLIENT/node_modules/.livault-lock"
fi

# 2. Provenance of the vendored official interfaces.
step "candid/reference/ equals the files in the pinned packages"
grep -v '^#' candid/reference/provenance.txt | while read -r file package version path sha; do
  [ -n "${file:-}" ] || continue
  pkg="$CLIENT/node_modules/$package"
  installed=$(node -p "require('$pkg/package.json').version")
  if [ "$installed" != "$version" ]; then
    echo "error: candid/reference/provenance.txt names $package $version, clients/ts installs $installed" >&2
    exit 1
  fi
  upstream=$(sha256sum "$pkg/$path" | cut -d' ' -f1)
  ours=$(sha256sum "candid/reference/$file" | cut -d' ' -f1)
  if [ "$upstream" != "$sha" ] || [ "$ours" != "$sha" ]; then
    echo "error: candid/reference/$file ($ours), $package@$version/$path ($upstream) and the recorded $sha differ" >&2
    exit 1
  fi
  echo "    candid/reference/$file = $package@$version/$path (sha256 $sha)"
done

# 3. Bindings, generated fresh from the .did.
step "generating the TypeScript bindings (@icp-sdk/bindgen)"
rm -rf "$CLIENT/generated" "$CLIENT/dist"
(cd "$CLIENT" && npx --no-install icp-bindgen --did-file ../../candid/livault_backend.did \
  --out-dir generated --declarations-typescript --force >/dev/null)

# 4. Type-check for the browser.
step "tsc --strict: bindings and the client module (browser libraries only)"
(cd "$CLIENT" && npx --no-install tsc -p tsconfig.json)

# 5. Round trip through the wasm.
step "round trip: generated IDL in Node <-> the real wasm on livault-local"
cargo build --quiet --locked -p livault_local --bin livault-local
(cd "$CLIENT" && npx --no-install tsc -p tsconfig.test.json)
(cd "$CLIENT" && LIVAULT_LOCAL_BIN="$ROOT/target/debug/livault-local" LIVAULT_WASM="$WASM" \
  node --import ./test/register-resolver.mjs --test dist/test/)
