#!/usr/bin/env bash
# A stand-in for the `icp` command (icp-cli 1.5) over the local runner, so scripts/test.sh can
# run the QA script's BACKEND=icp lines without an icp-cli network (which cannot run here):
#
#   ICP=scripts/qa/icp-on-local.sh BACKEND=icp scripts/qa/happy_path.sh   (run-local.sh icp)
#
# It accepts exactly the icp-cli command forms happy_path.sh uses, with icp-cli's syntax, and
# refuses anything else (exit 2), so a line the real icp would not understand fails here too.
# The runner's clock moves 1 ms per message, not like a network's: run-local.sh sets
# ADVANCE_CLOCK so the script lets time pass before bursts of updates, as it does on the runner.
#
#   icp canister call livault_backend METHOD ARGS  -> livault-local call METHOD ARGS
#   icp identity new NAME --storage plaintext      -> livault-local identity new NAME
#   icp identity default [NAME]                    -> livault-local identity use NAME / whoami
#   icp token transfer ICP ACCOUNT_HEX --identity NAME
#                                                  -> the ledger model: mint ICP + fee to NAME's
#                                                     wallet (icp-cli's network seeds it), then
#                                                     a transfer from it to ACCOUNT_HEX
set -euo pipefail
: "${LIVAULT_LOCAL:?set LIVAULT_LOCAL, e.g. \"livault-local --state DIR\" (see run-local.sh)}"

refuse() { echo "icp-on-local: not an icp-cli command form happy_path.sh uses: icp $*" >&2; exit 2; }

case "${1:-} ${2:-}" in
  "canister call")
    [ $# -eq 5 ] && [ "$3" = livault_backend ] || refuse "$@"
    exec $LIVAULT_LOCAL call "$4" "$5"
    ;;
  "identity new")
    [ $# -eq 5 ] && [ "$4" = --storage ] && [ "$5" = plaintext ] || refuse "$@"
    exec $LIVAULT_LOCAL identity new "$3"
    ;;
  "identity default")
    if [ $# -eq 2 ]; then
      $LIVAULT_LOCAL identity whoami | cut -d' ' -f1
      exit 0
    fi
    [ $# -eq 3 ] || refuse "$@"
    exec $LIVAULT_LOCAL identity use "$3"
    ;;
  "token transfer")
    [ $# -eq 6 ] && [ "$5" = --identity ] || refuse "$@"
    amount=$3 to=$4 who=$6
    # icp-cli takes a token amount (ICP, at most 8 decimals), not e8s.
    [[ $amount =~ ^([0-9]+)(\.([0-9]{1,8}))?$ ]] || refuse "$@"
    frac="${BASH_REMATCH[3]}00000000"
    e8s=$(( 10#${BASH_REMATCH[1]} * 100000000 + 10#${frac:0:8} ))
    [[ $to =~ ^[0-9a-f]{64}$ ]] || refuse "$@"
    $LIVAULT_LOCAL ledger fund "$who" $(( e8s + 10000 )) >/dev/null
    exec $LIVAULT_LOCAL ledger transfer --as "$who" --to "$to" --amount "$e8s"
    ;;
  *) refuse "$@" ;;
esac
