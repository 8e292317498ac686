#!/usr/bin/env bash
# Runs icp-cli (the successor of dfx) at a pinned version, installed from the npm package
# registry into .tools/ on first use, like scripts/build.sh installs ic-wasm:
#
#   scripts/icp.sh build             builds livault_backend as icp.yaml says (no network needed;
#                                    scripts/test.sh runs it)
#   scripts/icp.sh network start -d  then `scripts/icp.sh deploy livault_backend` (README)
#
# An `icp` already on PATH works the same with this project; this wrapper only pins the
# version the project is tested with. Usage data collection is switched off (DO_NOT_TRACK).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

ICP_CLI_VERSION=1.5.0
TOOLS="$ROOT/.tools"
ICP="$TOOLS/node_modules/@icp-sdk/icp-cli-linux-x64/bin/icp"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "scripts/icp.sh pins the linux-x64 build of icp-cli; install icp-cli $ICP_CLI_VERSION for your platform and run icp directly" >&2; exit 2 ;;
esac

if [ ! -x "$ICP" ] || [ "$("$ICP" --version 2>/dev/null)" != "icp $ICP_CLI_VERSION" ]; then
  echo "==> installing icp-cli $ICP_CLI_VERSION into .tools/" >&2
  mkdir -p "$TOOLS"
  npm install --silent --no-audit --no-fund --save-exact --prefix "$TOOLS" "@icp-sdk/icp-cli-linux-x64@$ICP_CLI_VERSION" >/dev/null
fi

export DO_NOT_TRACK=1
exec "$ICP" "$@"
