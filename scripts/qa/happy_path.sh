#!/usr/bin/env bash
# QA happy path of LiVault: plans, quote, vaults, audit log, admin, then the whole journey —
# creation payment through the ICP ledger, invites and claims (heirs bob and carol, witness
# dave), an upload with its download compared byte for byte and by SHA-256, finalize, heirs
# refused before the unlock, and (local runner only, see below) 31 days of time travel, an
# unlock request, approvals -> Unlockable and the heir's download; vetKeys answers (public key,
# no key for heirs before the unlock or for the witness, bob's key after it).
# The same lines run on two backends; only how a call is made, how the identity is switched,
# how a wallet pays and how time passes differ:
#
#   * dfx replica (real IC semantics, manual QA):
#       dfx start --background --clean
#       # the local ICP ledger at ryjl3-tyaaa-aaaaa-aaaba-cai, as in README.md "Deploying with
#       # dfx" step 1: its initial_values must fund YOUR identity's default account (the one
#       # you start this script with) with at least 7.2 ICP (the README gives it 1000 ICP)
#       dfx deploy icp_ledger --specified-id ryjl3-tyaaa-aaaaa-aaaba-cai --argument '(...)'
#       dfx deploy livault_backend      # dfx.json's init_arg: the deploying identity becomes admin
#       BACKEND=dfx scripts/qa/happy_path.sh
#     CALL defaults to "dfx canister call livault_backend"; `$AS NAME` creates (plaintext,
#     test-only) and uses the dfx identity NAME (`anonymous` is dfx's built-in one). The
#     identity you start with is the admin, pays as a wallet
#     (`$PAY ACCOUNT_HEX E8S` = `dfx --identity ADMIN ledger transfer ACCOUNT_HEX --e8s E8S
#     --memo 1`) and is selected again at the end. A replica's clock cannot be advanced, so the
#     unlock part prints "SKIPPED on dfx: needs time travel" (a documented limitation; the
#     local runner and tests/e2e/journey.rs cover it).
#
#   * icp-cli local network (icp-cli is the successor of dfx; README "Deploying with icp-cli"):
#       icp identity new qa-admin --storage plaintext && icp identity default qa-admin
#       icp network start -d            # after creating the identity: icp-cli funds every
#                                       # identity that exists when the network starts
#       icp deploy livault_backend      # icp.yaml's init_args: the deploying identity is admin
#       BACKEND=icp scripts/qa/happy_path.sh
#     CALL defaults to "icp canister call livault_backend" (ICP overrides the `icp` command,
#     e.g. ICP=scripts/icp.sh); `$AS NAME` creates (plaintext, test-only) and selects the icp
#     identity NAME (`anonymous` is built in); the identity you start with is the admin and
#     pays as a wallet with `icp token transfer ICP ACCOUNT_HEX` from the ICP the network
#     seeded it with. Like dfx, the unlock part is skipped: the network's clock is real.
#
#   * local runner (embedded IC host, what scripts/test.sh runs):
#       scripts/qa/run-local.sh
#     which installs the wasm into a fresh state dir and runs this file with BACKEND=local
#     and LIVAULT_LOCAL="livault-local --state DIR"; CALL defaults to "$LIVAULT_LOCAL call",
#     `$AS NAME` is `livault-local identity new NAME; identity use NAME`, `$PAY ACCOUNT_HEX E8S`
#     mints E8S + fee to the admin identity's wallet on the host's ledger model (`ledger fund`)
#     and transfers E8S from it (`ledger transfer --as ADMIN --to ACCOUNT_HEX --amount E8S`);
#     time passes with `livault-local time advance` (the canister's timers fire on the way).
#
# Every `$CALL method '(args)'` line prints the answer as Candid text (dfx's format) and keeps
# it in $OUT; `expect TEXT` fails the script unless $OUT contains TEXT (whitespace runs,
# newlines included, compare as one space, so `variant { Ok = record {` matches the
# pretty-printed multi-line answer); `nat_field NAME` / `text_field NAME` / `blob_value` read a
# value out of $OUT. To run the lines by hand, set CALL to the backend's raw command and paste
# them.
#
# Works on a replica that already has vaults: it only asserts on what it creates itself.
set -euo pipefail

BACKEND="${BACKEND:-dfx}"
case "$BACKEND" in
  dfx)
    RAW_CALL="${CALL:-dfx canister call livault_backend}"
    AS=as_dfx
    PAY=pay_dfx
    whoami() { dfx identity whoami; }
    ;;
  icp)
    ICP="${ICP:-icp}"
    RAW_CALL="${CALL:-$ICP canister call livault_backend}"
    AS=as_icp
    PAY=pay_icp
    whoami() { $ICP identity default; }
    ;;
  local)
    : "${LIVAULT_LOCAL:?set LIVAULT_LOCAL, e.g. \"livault-local --state DIR\" (see run-local.sh)}"
    RAW_CALL="${CALL:-$LIVAULT_LOCAL call}"
    AS=as_local
    PAY=pay_local
    whoami() { $LIVAULT_LOCAL identity whoami | cut -d' ' -f1; }
    ;;
  *) echo "unknown BACKEND=$BACKEND (dfx, icp or local)" >&2; exit 2 ;;
esac

as_dfx() {
  dfx identity new "$1" --storage-mode plaintext >/dev/null 2>&1 || true
  dfx identity use "$1" 2>/dev/null
  echo "--- as $1"
}
as_icp() {
  if [ "$1" != anonymous ]; then
    $ICP identity new "$1" --storage plaintext >/dev/null 2>&1 || true
  fi
  $ICP identity default "$1" >/dev/null 2>&1
  echo "--- as $1"
}
as_local() {
  $LIVAULT_LOCAL identity new "$1" >/dev/null
  $LIVAULT_LOCAL identity use "$1"
  echo "--- as $1"
}

# A wallet payment of E8S to a legacy account identifier, from the admin identity's wallet.
pay_dfx() {
  echo "\$ (wallet $ADMIN) dfx ledger transfer $1 --e8s $2 --memo 1"
  dfx --identity "$ADMIN" ledger transfer "$1" --e8s "$2" --memo 1
}
pay_icp() {
  local icp
  icp=$(printf '%d.%08d' $(( $2 / 100000000 )) $(( $2 % 100000000 )))
  echo "\$ (wallet $ADMIN) icp token transfer $icp $1"
  $ICP token transfer "$icp" "$1" --identity "$ADMIN"
}
pay_local() {
  echo "\$ (wallet $ADMIN) livault-local ledger transfer --to $1 --amount $2"
  $LIVAULT_LOCAL ledger fund "$ADMIN" $(( $2 + 10000 )) >/dev/null
  $LIVAULT_LOCAL ledger transfer --as "$ADMIN" --to "$1" --amount "$2"
}
# Rate limit (20 updates per principal, refilled 1/s): a replica's clock runs while the calls
# go; the local runner's clock moves 1 ms per message, so let 20 s pass there before a burst
# (ADVANCE_CLOCK: the command that moves the clock, set for the local runner).
if [ "$BACKEND" = local ]; then ADVANCE_CLOCK="${ADVANCE_CLOCK:-$LIVAULT_LOCAL time advance}"; fi
breathe() {
  if [ -n "${ADVANCE_CLOCK:-}" ]; then $ADVANCE_CLOCK 20s >/dev/null; fi
}
# Local runner only: move the host clock (timers fire); the clock of a dfx replica is real.
advance_local() {
  echo "\$ livault-local time advance $1"
  $LIVAULT_LOCAL time advance "$1"
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
# The first `NAME = N : natXX` of the last answer (underscores removed).
nat_field() { sed -nE "s/(^|.*[^_a-z])$1 = ([0-9_]+) : nat.*/\2/p" <<<"$OUT" | head -1 | tr -d _; }
# The first `NAME = "TEXT"` of the last answer.
text_field() { sed -nE "s/(^|.*[^_a-z])$1 = \"([^\"]*)\".*/\2/p" <<<"$OUT" | head -1; }
# The first blob literal of the last answer, without `blob "` and `"`.
blob_value() { tr -d '\n' <<<"$OUT" | sed -nE 's/[^"]*blob "([^"]*)".*/\1/p'; }
# Hex (a7f3...) -> Candid blob escapes (\a7\f3...), and back to bytes / their SHA-256 (hex).
hex_to_escapes() { sed 's/../\\&/g' <<<"$1"; }
escapes_to_bytes() { printf '%b' "$(sed 's/\\/\\x/g' <<<"$1")"; }
sha256_of_escapes() { escapes_to_bytes "$1" | sha256sum | cut -d' ' -f1; }
need() {
  if [ -z "$2" ]; then echo "FAIL: no $1 in the answer of: $LAST" >&2; exit 1; fi
}

ADMIN=$(whoami)
RULES='record { unlock_after = null; inactivity_days = opt 30; request_wait_days = 7; required_heirs = 1; required_witness = true }'
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
expect "inactivity_days = opt (30 : nat32)"
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

# ---- payment: a session, a wallet transfer to its account identifier, verification
$AS alice
$CALL init_payment "($V, variant { Create })"
expect "variant { Ok"
expect "amount_e8s = 715_000_000"
expect "status = variant { Open }"
expect "icrc1_account"
SESSION=$(nat_field id); need "session id" "$SESSION"
ACCOUNT=$(text_field account_identifier); need account_identifier "$ACCOUNT"
echo "session $SESSION, pay to $ACCOUNT"
$CALL verify_payment "($SESSION)"
expect "NotYetPaid"
$PAY "$ACCOUNT" 100000000
$CALL verify_payment "($SESSION)"
expect "Underpaid"
expect "required = 715_000_000"
$PAY "$ACCOUNT" 615000000
$CALL verify_payment "($SESSION)"
expect "variant { Ok"
expect "vault_status = variant { NeedSetup }"
expect "status = variant { Completed }"
expect "treasury_e8s = 714_990_000"
$CALL get_vault "($V)"
expect "status = variant { NeedSetup }"

# ---- invites: two heirs and a witness (the plan has 2 heir slots and the witness slot)
invite() { # ROLE NAME RELATION
  $CALL generate_invite "(record { vault_id = $V; role = variant { $1 }; name = \"$2\"; relation = variant { $3 }; email_hint = null; can_trigger_unlock = true; count_as_approver = true })"
}
invite Heir Bob Son
expect "variant { Ok"
T_BOB=$(text_field token); need token "$T_BOB"
invite Heir Carol Daughter
expect "variant { Ok"
T_CAROL=$(text_field token); need token "$T_CAROL"
invite Witness Dave Notary
expect "variant { Ok"
expect "role = variant { Witness }"
T_DAVE=$(text_field token); need token "$T_DAVE"
invite Heir Eve Friend
expect "PlanLimit"
$CALL list_invites "($V, record { start_after = null; limit = null })"
expect "name = \"Carol\""
expect "status = variant { Open }"

# ---- invite introspection needs no login
$AS anonymous
$CALL get_invite_info "(\"$T_BOB\")"
expect "variant { Ok"
expect "role = variant { Heir }"
expect "vault_name = \"QA vault (renamed)\""
expect "status = variant { Open }"
$CALL get_invite_info '("no-such-token")'
expect "TokenInvalid"

# ---- claims: bob and carol become heirs, dave the witness; a token is single use
$AS bob
$CALL claim_invite "(\"$T_BOB\")"
expect "variant { Ok"
expect "role = variant { Heir }"
BOB_MEMBER=$(nat_field member_id); need member_id "$BOB_MEMBER"
BOB_SHARE=$(nat_field share_index); need share_index "$BOB_SHARE"
$CALL claim_invite "(\"$T_BOB\")"
expect "member_id = $BOB_MEMBER"
$CALL get_vault "($V)"
expect "my_role = variant { Heir }"
$AS carol
$CALL claim_invite "(\"$T_CAROL\")"
expect "role = variant { Heir }"
$AS dave
$CALL claim_invite "(\"$T_BOB\")"
expect "TokenAlreadyClaimed"
$CALL claim_invite "(\"$T_DAVE\")"
expect "role = variant { Witness }"

# ---- content: alice uploads a file (one chunk, bytes as a blob literal), downloads it back
# Payload: 256 bytes >= 0x80, so Candid prints every byte as an escape (\8a) on any backend.
HEX=$(for i in $(seq 0 255); do printf '%02x' $(( (i * 37 + 11) % 128 + 128 )); done)
PAYLOAD=$(hex_to_escapes "$HEX")
SHA_HEX=$(sha256_of_escapes "$PAYLOAD")
SHA=$(hex_to_escapes "$SHA_HEX")
echo "payload: 256 bytes, sha256 $SHA_HEX"
breathe
$AS alice
$CALL begin_upload "(record { vault_id = $V; kind = variant { File }; size = 256; sha256 = blob \"$SHA\"; encrypted_meta = blob \"\\e1\\e2\\e3\"; recipients = null; replaces = null; idempotency_key = null })"
expect "variant { Ok"
expect "chunk_count = 1"
UPLOAD=$(nat_field upload_id); need upload_id "$UPLOAD"
$CALL upload_chunk "($UPLOAD, 1, blob \"$PAYLOAD\")"
expect "ChunkOutOfOrder"
$CALL upload_chunk "($UPLOAD, 0, blob \"$PAYLOAD\")"
expect "variant { Ok"
expect "next_index = 1"
$CALL finish_upload "($UPLOAD)"
expect "variant { Ok"
expect "size = 256"
ITEM=$(nat_field item_id); need item_id "$ITEM"
$CALL get_vault "($V)"
expect "status = variant { SetupComplete }"
$CALL request_download "($V, $ITEM)"
expect "variant { Ok"
TICKET=$(nat_field ticket_id); need ticket_id "$TICKET"
$CALL get_download_chunk "($TICKET, 0)"
expect "variant { Ok"
GOT=$(blob_value)
if [ "$GOT" != "$PAYLOAD" ]; then echo "FAIL: downloaded bytes differ from the upload" >&2; exit 1; fi
if [ "$(sha256_of_escapes "$GOT")" != "$SHA_HEX" ]; then echo "FAIL: SHA-256 of the download differs" >&2; exit 1; fi
echo "download: 256 bytes identical, sha256 $SHA_HEX"

# ---- finalize: Active; before the unlock heirs may neither download nor approve
$CALL finalize_setup "($V)"
expect "status = variant { Active }"
$AS bob
$CALL request_download "($V, $ITEM)"
expect "NotAuthorized"
$CALL approve_unlock "($V)"
expect "UnlockConditionsNotMet"
$CALL get_unlock_status "($V)"
expect "variant { Ok"
expect "holds = false"
expect "heirs_required = 1"

# ---- vetKeys (SPEC §16, docs/keys.md): the public key for clients; bob gets no key before the
# unlock, the witness never, alice her own identity (0). A shell cannot decrypt: the demo and
# scripts/vetkeys-js.sh show the decryption; here the answers are checked. The transport key
# is the BLS12-381 G1 generator (a valid point, fine for checking answers, useless as a secret).
TPK=$(hex_to_escapes 97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb)
derive() { $CALL derive_vetkey "(record { vault_id = $V; share_index = $1; transport_public_key = blob \"$2\" })"; }
$CALL get_vetkd_public_key '()'
expect "variant { Ok"
expect "context = blob \"LiVault key release v1\""
expect "public_key = blob"
derive "$BOB_SHARE" "$TPK"
expect "InvalidState"
expect "variant { Active }"
$AS dave
derive "$BOB_SHARE" "$TPK"
expect "NotAuthorized"
derive 0 "$TPK"
expect "NotAuthorized"
$AS alice
derive 0 "$TPK"
expect "variant { Ok"
expect "encrypted_key = blob"
derive "$BOB_SHARE" "$TPK"
expect "NotAuthorized"
derive 0 "${TPK:3}"
expect "transport_public_key"
$AS bob

# ---- unlock: 31 days without owner activity, request, approvals, heir download
if [ "$BACKEND" = local ]; then
  advance_local 31d
  $CALL get_unlock_status "($V)"
  expect "holds = true"
  expect "status = variant { Active }"
  $CALL trigger_unlock "($V)"
  expect "variant { Ok"
  expect "opened_by"
  $CALL approve_unlock "($V)"
  expect "heir_approvals = 1"
  expect "quorum_met = false"
  $AS dave
  $CALL approve_unlock "($V)"
  expect "quorum_met = true"
  expect "status = variant { Unlockable }"
  $CALL request_download "($V, $ITEM)"
  expect "NotAuthorized"
  $AS bob
  $CALL get_unlock_status "($V)"
  expect "status = variant { Unlockable }"
  $CALL request_download "($V, $ITEM)"
  expect "variant { Ok"
  TICKET=$(nat_field ticket_id); need ticket_id "$TICKET"
  $CALL get_download_chunk "($TICKET, 0)"
  GOT=$(blob_value)
  if [ "$GOT" != "$PAYLOAD" ]; then echo "FAIL: bob's download differs from the upload" >&2; exit 1; fi
  if [ "$(sha256_of_escapes "$GOT")" != "$SHA_HEX" ]; then echo "FAIL: SHA-256 of bob's download differs" >&2; exit 1; fi
  echo "heir download: 256 bytes identical, sha256 $SHA_HEX"
  derive "$BOB_SHARE" "$TPK"
  expect "variant { Ok"
  expect "encrypted_key = blob"
  $AS carol
  derive "$BOB_SHARE" "$TPK"
  expect "NotAuthorized"
  $AS alice
  $CALL get_audit_log "($V, record { start_after = null; limit = opt 100 })"
  expect "payment.confirmed"
  expect "member.joined"
  expect "content.item_added"
  expect "unlock.requested"
  expect "unlock.completed"
  expect "content.download_requested"
  expect "key.derived"
else
  echo "SKIPPED on $BACKEND: needs time travel (31 days of owner inactivity, unlock request, approvals -> Unlockable, heir download); run scripts/qa/run-local.sh for this part"
  $AS alice
  $CALL get_audit_log "($V, record { start_after = null; limit = opt 100 })"
  expect "payment.confirmed"
  expect "member.joined"
  expect "content.item_added"
fi

$AS "$ADMIN"
echo "QA happy path passed ($BACKEND)"
