#!/usr/bin/env bash
# QA happy path of LiVault (what exists on main: plans, quote, vaults, audit log, admin).
# The same lines run on two backends; only how a call is made and how the identity is
# switched differ:
#
#   * dfx replica (real IC semantics, manual QA):
#       dfx start --background --clean
#       dfx deploy livault_backend      # dfx.json's init_arg: the deploying identity becomes admin
#       BACKEND=dfx scripts/qa/happy_path.sh
#     CALL defaults to "dfx canister call livault_backend"; `$AS NAME` creates (plaintext,
#     test-only) and uses the dfx identity NAME. The identity you start with is the admin
#     and is selected again at the end.
#
#   * local runner (embedded IC host, what scripts/test.sh runs):
#       scripts/qa/run-local.sh
#     which installs the wasm into a fresh state dir and runs this file with BACKEND=local
#     and LIVAULT_LOCAL="livault-local --state DIR"; CALL defaults to "$LIVAULT_LOCAL call",
#     `$AS NAME` is `livault-local identity new NAME; identity use NAME`.
#
# Every `$CALL method '(args)'` line prints the answer as Candid text (dfx's format) and keeps
# it in $OUT; `expect TEXT` fails the script unless $OUT contains TEXT (whitespace runs,
# newlines included, compare as one space, so `variant { Ok = record {` matches the
# pretty-printed multi-line answer). To run the lines by
# hand, set CALL to the backend's raw command and paste them.
#
# Works on a replica that already has vaults: it only asserts on what it creates itself.
set -euo pipefail

BACKEND="${BACKEND:-dfx}"
case "$BACKEND" in
  dfx)
    RAW_CALL="${CALL:-dfx canister call livault_backend}"
    AS=as_dfx
    whoami() { dfx identity whoami; }
    ;;
  local)
    : "${LIVAULT_LOCAL:?set LIVAULT_LOCAL, e.g. \"livault-local --state DIR\" (see run-local.sh)}"
    RAW_CALL="${CALL:-$LIVAULT_LOCAL call}"
    AS=as_local
    whoami() { $LIVAULT_LOCAL identity whoami | cut -d' ' -f1; }
    ;;
  *) echo "unknown BACKEND=$BACKEND (dfx or local)" >&2; exit 2 ;;
esac

as_dfx() {
  dfx identity new "$1" --storage-mode plaintext >/dev/null 2>&1 || true
  dfx identity use "$1" 2>/dev/null
  echo "--- as $1"
}
as_local() {
  $LIVAULT_LOCAL identity new "$1" >/dev/null
  $LIVAULT_LOCAL identity use "$1"
  echo "--- as $1"
}

OUT=""
LAST=""
# One call: prints and keeps the answer; a system reject (trap, refused message) fails.
call() {
  LAST="$*"
  echo "\$ $LAST"
  if ! OUT=$($RAW_CALL "$@" 2>&1); then
    printf '%s\n' "$OUT"
    echo "FAIL: the call was rejected: $LAST" >&2
    exit 1
  fi
  printf '%s\n' "$OUT"
}
CALL=call
expect() {
  if ! tr -s ' \n\t' '   ' <<<"$OUT" | grep -qF -- "$1"; then
    echo "FAIL: expected '$1' in the answer of: $LAST" >&2
    exit 1
  fi
}
# The first `id = N : nat64` of the last answer.
vault_id() { sed -nE 's/.*[^_a-z]id = ([0-9_]+) : nat64.*/\1/p' <<<"$OUT" | head -1 | tr -d _; }

ADMIN=$(whoami)
RULES='record { unlock_after = null; inactivity_days = opt 180; request_wait_days = 7; required_heirs = 1; required_witness = true }'
PLAN='record { tier = variant { Standard }; heir_slots = 2; witness_slot = true }'

# ---- plans and prices (anyone)
$CALL get_plans '()'
expect "variant { Standard }"
expect "validity_days = 3_650"
$CALL quote "(record { plan = $PLAN; owner_age = 45 })"
expect "total_e8s = 715_000_000"

# ---- alice creates a vault and sets it up
$AS alice
$CALL create_vault "(record { name = \"QA vault\"; plan = $PLAN; owner_age = 45; idempotency_key = null })"
expect "variant { Ok"
expect "status = variant { Draft }"
expect "price_e8s = 715_000_000"
V=$(vault_id)
echo "vault id: $V"
$CALL update_vault "(record { vault_id = $V; name = opt \"QA vault (renamed)\"; unlock_rules = opt $RULES; post_unlock_days = opt 90; audit_retention_days = null })"
expect "variant { Ok"
expect "inactivity_days = opt (180 : nat32)"
$CALL get_vault "($V)"
expect "QA vault (renamed)"
expect "my_role = variant { Owner }"
$CALL list_my_vaults '(record { start_after = null; limit = opt 100 })'
expect "QA vault (renamed)"
$CALL get_audit_log "($V, record { start_after = null; limit = null })"
expect "vault.created"
expect "vault.renamed"
expect "vault.unlock_rules_changed"
$CALL get_audit_head "($V)"
expect "next_seq = 4"

# ---- bad input: typed errors, nothing changes
$CALL create_vault "(record { name = \"\"; plan = $PLAN; owner_age = 45; idempotency_key = null })"
expect "InvalidInput"
$CALL create_vault "(record { name = \"too young\"; plan = $PLAN; owner_age = 12; idempotency_key = null })"
expect "owner_age"
$CALL check_in "($V)"
expect "InvalidState"
$CALL get_audit_head "($V)"
expect "next_seq = 4"

# ---- a second vault, deleted (tombstone)
$CALL create_vault "(record { name = \"QA scratch\"; plan = $PLAN; owner_age = 45; idempotency_key = null })"
expect "variant { Ok"
W=$(vault_id)
$CALL delete_vault "($W)"
expect "status = variant { Deleted }"

# ---- a stranger sees nothing
$AS bob
$CALL get_vault "($V)"
expect "NotAuthorized"
$CALL get_metrics '()'
expect "NotAuthorized"

# ---- the admin
$AS "$ADMIN"
$CALL get_metrics '()'
expect "variant { Ok"
expect "vaults_total"
$CALL list_admins '()'
expect "variant { Ok"
$CALL set_paused '(true)'
expect "variant { Ok"
$AS alice
$CALL update_vault "(record { vault_id = $V; name = opt \"paused?\"; unlock_rules = null; post_unlock_days = null; audit_retention_days = null })"
expect "Paused"
$AS "$ADMIN"
$CALL set_paused '(false)'
expect "variant { Ok"

echo "QA happy path passed ($BACKEND)"
