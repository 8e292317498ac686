//! The cost-of-attack table of `docs/security.md` (issue #12 item 2): for every endpoint of
//! `candid/livault_backend.did` (and the hidden update entry points), what an anonymous caller
//! and a new, unpaid principal can make the canister do, measured on the compiled wasm.
//!
//! Per row: the worst call such a caller can make (the most expensive valid arguments, or
//! the largest arguments ingress inspection lets through when a refusal costs more), run
//! `n` times on one canister that keeps the state of every row before it (the attacker's
//! drafts, sessions and logs accumulate as a real attacker's would). Measured per call:
//! - instructions: the most any of the calls took (updates: the whole call context, ledger
//!   callbacks included; anonymous updates: ingress inspection, which refuses them);
//! - ledger calls and management-canister calls (`raw_rand`, `vetkd_*`) the calls caused;
//! - stable bytes: live bytes after the `n` calls minus before, divided by `n`
//!   ([`crate::stable_usage`]; B-tree nodes and slab blocks are allocated in units, the
//!   average over `n` calls is what a call costs over time).
//!
//! Per principal and day and for the whole canister the table states the bound that holds
//! each figure (the rate limit, a cap, a budget) and computes what it allows. Every measured
//! figure has a documented limit in its row; `tests/e2e/attack_costs.rs` asserts them.

use std::collections::BTreeSet;
use std::time::Duration;

use candid::{CandidType, Principal};
use livault_backend::domain::keys::DeriveVetKeyArgs;
use livault_backend::model::config::{Durations, Pricing, VetKdConfig};
use livault_backend::model::member_types::{GenerateInviteArgs, Relation};
use livault_backend::model::records::MemberRole;
use local_replica::ic0::ExecKind;
use serde_bytes::ByteBuf;

use crate::stable_usage::StableUsage;
use crate::*;

/// Updates one principal gets through the rate limit in a day: the bucket of 20, then one a
/// second (SPEC §13).
pub const UPDATES_PER_DAY: u64 = 20 + 86_400;
/// Maintenance ticks a day at the default timer interval (60 s).
pub const TICKS_PER_DAY: u64 = 1_440;

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Caller {
    /// `2vxsx-fae`.
    Anonymous,
    /// A principal that never paid: it may own drafts (and their payment sessions).
    Unpaid,
}

impl Caller {
    /// Table label.
    pub fn label(self) -> &'static str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Unpaid => "unpaid",
        }
    }
}

/// How often a row's call can happen per principal and day, and how often its effects.
#[derive(Clone, Copy, Debug)]
pub enum Day {
    /// A query: not rate-limited, not charged to the canister, changes nothing.
    Query,
    /// An anonymous update: ingress inspection refuses it; the canister never executes it.
    Inspected,
    /// An update: [`UPDATES_PER_DAY`] calls, each with the measured effects.
    Rate,
    /// An update: [`UPDATES_PER_DAY`] calls (instructions), but the measured effects (stable
    /// bytes, ledger and management calls) happen at most this many times a day, because of
    /// the bound named.
    Capped(u64, &'static str),
}

/// Documented limits of one call (asserted by the test).
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// Most instructions of one call.
    pub instructions: u64,
    /// Most ledger calls per call.
    pub ledger: u64,
    /// Most management-canister calls per call.
    pub mgmt: u64,
    /// Most stable bytes one call adds (average over the row's calls).
    pub bytes: i64,
}

/// What a row's calls did.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// Calls made.
    pub calls: u64,
    /// Outcomes seen (`Ok`, an error case, `rejected: ...`).
    pub outcomes: BTreeSet<String>,
    /// Most instructions of one call.
    pub max_instructions: u64,
    /// Ledger calls, all calls together.
    pub ledger_calls: u64,
    /// Management-canister calls, all calls together.
    pub mgmt_calls: u64,
    /// Change of the live stable bytes over all calls.
    pub stable_bytes: i64,
}

impl Measured {
    /// Stable bytes per call (rounded up).
    pub fn bytes_per_call(&self) -> i64 {
        if self.calls == 0 {
            return 0;
        }
        let n = self.calls as i64;
        if self.stable_bytes >= 0 {
            (self.stable_bytes + n - 1) / n
        } else {
            self.stable_bytes / n
        }
    }

    /// Ledger calls per call (rounded up).
    pub fn ledger_per_call(&self) -> u64 {
        self.ledger_calls.div_ceil(self.calls.max(1))
    }

    /// Management calls per call (rounded up).
    pub fn mgmt_per_call(&self) -> u64 {
        self.mgmt_calls.div_ceil(self.calls.max(1))
    }
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Endpoint.
    pub method: &'static str,
    /// Who calls.
    pub caller: Caller,
    /// The call measured (the worst such a caller can make).
    pub call: &'static str,
    /// Calls measured.
    pub n: u64,
    /// Documented limits.
    pub limit: Limit,
    /// Per principal and day.
    pub day: Day,
    /// Whole canister: the bound that holds.
    pub canister: &'static str,
    /// Filled by [`measure_all`].
    pub measured: Measured,
}

// ------------------------------------------------------------------ the laboratory

/// The canister under attack: a paid victim vault with an heir and a letter, and the
/// attackers' principals.
pub struct Lab {
    /// The canister.
    pub env: TestEnv,
    /// Owner of the victim vault.
    pub victim: Principal,
    /// The victim vault (`Active`, one heir, one letter).
    pub victim_vault: VaultId,
    /// The letter in the victim vault.
    pub victim_item: u64,
    /// The unpaid attacker.
    pub attacker: Principal,
    /// The attacker's drafts (created by the `create_vault` row).
    pub drafts: Vec<VaultId>,
    /// The attacker's payment sessions (opened by the `init_payment` row).
    pub sessions: Vec<u64>,
}

/// Ledger methods the canister calls.
const LEDGER_METHODS: [&str; 4] = [
    "account_balance",
    "transfer",
    "icrc1_transfer",
    "icrc1_balance_of",
];
/// Management-canister methods the canister calls.
const MGMT_METHODS: [&str; 3] = ["raw_rand", "vetkd_derive_key", "vetkd_public_key"];

/// A string of `n` four-byte characters (the most bytes a character-counted text holds).
pub fn wide(n: usize) -> String {
    "\u{1F600}".repeat(n)
}

/// Bytes of the largest query argument measured (the IC takes up to 2 MiB per message).
pub const QUERY_ARG_BYTES: usize = 1_900_000;
/// Bytes of the largest update argument ingress inspection admits for most methods.
pub const UPDATE_ARG_BYTES: usize = 16 * 1024 - 200;

fn enc<T: candid::utils::ArgumentEncoder>(args: T) -> Vec<u8> {
    candid::encode_args(args).expect("encode")
}

/// The decoded outcome of a reply: `Ok`, the error case, or `reply` for non-`Result` replies.
fn outcome(bytes: &[u8]) -> String {
    if let Ok(r) = candid::decode_one::<Result<candid::Reserved, VaultError>>(bytes) {
        return match r {
            Ok(_) => "Ok".into(),
            Err(e) => {
                let s = format!("{e:?}");
                s.split([' ', '(', '{']).next().unwrap_or("").to_string()
            }
        };
    }
    "reply".into()
}

impl Lab {
    /// Installs the shipped wasm (maintenance timer: 30 days, so no tick runs while
    /// measuring; vetKD key `test_key_1`) and sets the victim vault up.
    pub fn new() -> Lab {
        let mut env = TestEnv::with_init(InitArgs {
            admins: vec![user("admin")],
            ledger_canister_id: Some(local_replica::ledger_principal()),
            durations: Some(Durations {
                timer_interval_secs: 30 * 86_400,
                ..Durations::default()
            }),
            vetkd: Some(VetKdConfig {
                key_name: "test_key_1".into(),
                ..VetKdConfig::default()
            }),
            ..Default::default()
        });
        let victim = user("victim");
        let v = env.create_vault(victim, "Family").id;
        env.pay_creation(victim, v);
        let rules = UnlockRules {
            unlock_after: None,
            inactivity_days: Some(365),
            request_wait_days: 7,
            required_heirs: 1,
            required_witness: false,
        };
        let r: Result<VaultView, VaultError> = env.update(
            victim,
            "update_vault",
            (UpdateVaultArgs {
                vault_id: v,
                name: None,
                unlock_rules: Some(rules),
                post_unlock_days: None,
                audit_retention_days: None,
            },),
        );
        r.expect("rules");
        env.join(victim, v, MemberRole::Heir, user("victim-heir"));
        let item = env.upload_letter(victim, v, b"ciphertext of a letter", None);
        let r: Result<VaultView, VaultError> = env.update(victim, "finalize_setup", (v,));
        r.expect("finalize");
        Lab {
            env,
            victim,
            victim_vault: v,
            victim_item: item,
            attacker: user("attacker"),
            drafts: Vec::new(),
            sessions: Vec::new(),
        }
    }

    fn usage(&self) -> StableUsage {
        StableUsage::read(self.env.host.stable_memory().unwrap_or_default())
    }

    fn counts(&self) -> (u64, u64) {
        let l = LEDGER_METHODS
            .iter()
            .map(|m| self.env.host.ledger().call_count(m))
            .sum();
        let m = MGMT_METHODS
            .iter()
            .map(|m| self.env.host.management_call_count(m))
            .sum();
        (l, m)
    }

    /// An update outside the measurement (setup), one second after the previous one.
    pub fn setup_update<
        A: candid::utils::ArgumentEncoder,
        R: CandidType + serde::de::DeserializeOwned,
    >(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> R {
        self.env.advance(Duration::from_secs(1));
        self.env.update(who, method, args)
    }

    /// Runs `calls` (method, encoded argument) as `who` and measures them. Updates run one
    /// second apart, so a principal stays within its rate limit.
    pub fn measure(
        &mut self,
        who: Principal,
        query: bool,
        calls: Vec<(&str, Vec<u8>)>,
    ) -> Measured {
        let before = self.usage();
        let (l0, m0) = self.counts();
        let mut out = Measured::default();
        for (method, arg) in calls {
            out.calls += 1;
            if query {
                match self.env.host.query(who, method, arg) {
                    Ok(r) => {
                        out.max_instructions = out.max_instructions.max(r.instructions);
                        out.outcomes.insert(outcome(&r.bytes));
                    }
                    Err(r) => {
                        out.max_instructions = out.max_instructions.max(r.total_instructions);
                        out.outcomes.insert(format!("rejected: {:?}", r.code));
                    }
                }
                continue;
            }
            self.env.advance(Duration::from_secs(1));
            match self.env.host.update(who, method, arg) {
                Ok(r) => {
                    out.max_instructions = out.max_instructions.max(r.total_instructions);
                    out.outcomes.insert(outcome(&r.bytes));
                }
                Err(r) => {
                    // Refused by ingress inspection: its instructions are the inspection's.
                    let inspect = self
                        .env
                        .host
                        .executions()
                        .filter(|e| e.kind == ExecKind::Inspect)
                        .last()
                        .map_or(0, |e| e.instructions);
                    out.max_instructions =
                        out.max_instructions.max(r.total_instructions).max(inspect);
                    let why = if r.message.contains("inspect_message") {
                        "inspect"
                    } else {
                        "trap"
                    };
                    out.outcomes.insert(format!("rejected ({why})"));
                }
            }
        }
        let after = self.usage();
        let (l1, m1) = self.counts();
        out.ledger_calls = l1 - l0;
        out.mgmt_calls = m1 - m0;
        out.stable_bytes = after.used() as i64 - before.used() as i64;
        out
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

// ------------------------------------------------------------------ worst arguments

fn page() -> PageArgs {
    PageArgs {
        start_after: None,
        limit: Some(100),
    }
}

fn titan() -> PlanSelection {
    PlanSelection {
        tier: Tier::Titan,
        heir_slots: 10,
        witness_slot: true,
    }
}

fn create_args(i: u64) -> CreateVaultArgs {
    let mut name = wide(63);
    name.push(char::from(b'a' + (i % 26) as u8));
    let mut key = wide(63);
    key.push(char::from(b'a' + (i % 26) as u8));
    CreateVaultArgs {
        name,
        plan: titan(),
        owner_age: 120,
        idempotency_key: Some(key),
    }
}

/// Rename, new rules and new settings at once: three audit events.
fn update_args(v: VaultId, i: u64, now: u64) -> UpdateVaultArgs {
    let mut name = wide(63);
    name.push(char::from(b'a' + (i % 26) as u8));
    UpdateVaultArgs {
        vault_id: v,
        name: Some(name),
        unlock_rules: Some(UnlockRules {
            unlock_after: Some(now + 300 * DAY_NS + i),
            inactivity_days: Some(3650),
            request_wait_days: 365,
            required_heirs: 10,
            required_witness: true,
        }),
        post_unlock_days: Some(1 + (i % 365) as u16),
        audit_retention_days: Some(30 + (i % 3000) as u16),
    }
}

fn account() -> Account {
    Account {
        owner: user("wallet"),
        subaccount: Some(ByteBuf::from(vec![7u8; 32])),
    }
}

fn invite_args(v: VaultId) -> GenerateInviteArgs {
    GenerateInviteArgs {
        vault_id: v,
        role: MemberRole::Witness,
        name: wide(64),
        relation: Relation::Notary,
        email_hint: Some(wide(128)),
        can_trigger_unlock: true,
        count_as_approver: true,
    }
}

fn begin_args(v: VaultId) -> BeginUploadArgs {
    BeginUploadArgs {
        vault_id: v,
        kind: ItemKind::File,
        size: 250 * 1024 * 1024,
        sha256: ByteBuf::from(vec![1u8; 32]),
        encrypted_meta: ByteBuf::from(vec![2u8; 4096]),
        recipients: Some((1..=64).collect()),
        replaces: Some(1),
        idempotency_key: Some(wide(64)),
    }
}

/// A well-formed token or code nobody was given (`lvi1_` / `lvr1_` + 64 hex digits).
fn unknown_secret(prefix: &str, i: u64) -> String {
    format!("{prefix}{:064x}", 0xdead_beef_u64 + i)
}

fn http(url: &str, body: usize) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: vec![("x".into(), "y".repeat(1024))],
        body: ByteBuf::from(vec![0u8; body]),
    }
}

// ------------------------------------------------------------------ rows

const REFUSED: &str =
    "refused before any write: per admitted message only (the IC's ingress capacity)";
const QUERY: &str = "queries are not charged to the canister; read-only";
const INSPECT: &str = "never executed (ingress inspection)";

fn row(
    method: &'static str,
    caller: Caller,
    call: &'static str,
    n: u64,
    limit: Limit,
    day: Day,
    canister: &'static str,
) -> Row {
    Row {
        method,
        caller,
        call,
        n,
        limit,
        day,
        canister,
        measured: Measured::default(),
    }
}

const fn lim(instructions: u64, ledger: u64, mgmt: u64, bytes: i64) -> Limit {
    Limit {
        instructions,
        ledger,
        mgmt,
        bytes,
    }
}

/// Every row, in the order they are measured (later rows use what earlier ones made).
pub fn rows() -> Vec<Row> {
    use Caller::*;
    let mut rows = vec![
        // ---- vaults (first: the attacker's drafts are made here)
        row("create_vault", Unpaid, "20 Titan drafts, 64-char (4-byte) names and idempotency keys", 20,
            lim(6_500_000, 0, 0, 2_600),
            Day::Capped(20, "20 vault creations a day, deleted ones included; 20 live vaults"),
            "new drafts stop at the capacity mark; a draft is erased after 7 days unpaid (16 B of its id's directory entry stay)"),
        row("update_vault", Unpaid, "own draft: new name, rules and settings (3 audit events) until the 64-event cap", 22,
            lim(5_000_000, 0, 0, 1_000),
            Day::Capped(840, "64 events per draft: 21 writing calls × (20 live + 20 new drafts)"),
            "erased with the draft (≤ 7 days); held at once: 20 drafts × 64 events per principal"),
        row("check_in", Unpaid, "own draft", 3, lim(4_000_000, 0, 0, 0), Day::Rate, REFUSED),
        row("finalize_setup", Unpaid, "own draft", 3, lim(4_000_000, 0, 0, 0), Day::Rate, REFUSED),
        row("get_vault", Unpaid, "own draft", 3, lim(4_000_000, 0, 0, 0), Day::Query, QUERY),
        row("list_my_vaults", Unpaid, "20 own drafts, limit 100", 3, lim(4_000_000, 0, 0, 0), Day::Query, QUERY),
        row("get_audit_log", Unpaid, "own draft's full log (64 events), limit 100", 3, lim(4_000_000, 0, 0, 0), Day::Query, QUERY),
        row("get_audit_head", Unpaid, "own draft", 3, lim(2_500_000, 0, 0, 0), Day::Query, QUERY),
        // ---- payments
        row("init_payment", Unpaid, "Create session for each of 10 own drafts (the first opening writes it)", 10,
            lim(4_500_000, 0, 0, 1_600),
            Day::Capped(20, "one Create session per draft (init_payment reuses it), 20 drafts created a day"),
            "sessions are kept (financial records): ≤ 20 per principal a day; the scheduler checks each (re)opened session 3 times, ≤ 10 checks per tick (14 400 a day)"),
        row("verify_payment", Unpaid, "own open session, nothing paid (NotYetPaid)", 10,
            lim(6_500_000, 1, 0, 0),
            Day::Rate,
            "one balance call per admitted verify_payment (no amplification; ≤ 2 payment flows in flight per principal)"),
        row("get_payment_session", Unpaid, "own session", 3, lim(4_000_000, 0, 0, 0), Day::Query, QUERY),
        row("list_payment_sessions", Unpaid, "own draft", 3, lim(4_500_000, 0, 0, 0), Day::Query, QUERY),
        row("set_refund_account", Unpaid, "own drafts, an account with a 32-byte subaccount", 10,
            lim(3_000_000, 0, 0, 800),
            Day::Capped(40, "one refund account per draft; its audit event counts against the 64-event cap"),
            "erased with the draft (≤ 7 days)"),
        row("list_billing", Unpaid, "limit 100", 3, lim(3_500_000, 0, 0, 0), Day::Query, QUERY),
        row("refund_session", Unpaid, "own session", 3, lim(3_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("set_treasury", Unpaid, "own account", 3, lim(2_500_000, 0, 0, 0), Day::Rate, REFUSED),
        // ---- keys
        row("get_vetkd_public_key", Unpaid, "", 3, lim(500_000, 0, 0, 0), Day::Query, QUERY),
        row("derive_vetkey", Unpaid, "own draft, share 0, a valid transport key", 5,
            lim(2_500_000, 0, 1, 600),
            Day::Capped(20, "unpaid_derivations_per_day: 20 for all drafts together"),
            "20 vetKD derivations a day for all drafts together (key_1: 0.52 T cycles)"),
        // ---- members and unlock
        row("generate_invite", Unpaid, "own draft, witness, 64-char name, 128-char hint", 3, lim(3_500_000, 0, 0, 0), Day::Rate,
            "refused before the randomness call: per admitted message only"),
        row("get_invite_info", Unpaid, "a 1.9 MB token / a well-formed unknown token", 2, lim(17_500_000, 0, 0, 0), Day::Query, QUERY),
        row("claim_invite", Unpaid, "a 16 KiB token / a well-formed unknown token", 4, lim(3_000_000, 0, 0, 0), Day::Rate, REFUSED),
        row("revoke_invite", Unpaid, "the victim's invite 1", 3, lim(3_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("regenerate_invite", Unpaid, "the victim's invite 1", 3, lim(2_500_000, 0, 0, 0), Day::Rate,
            "refused before the randomness call: per admitted message only"),
        row("list_invites", Unpaid, "own draft, limit 100", 3, lim(3_500_000, 0, 0, 0), Day::Query, QUERY),
        row("list_members", Unpaid, "own draft, limit 100", 3, lim(3_500_000, 0, 0, 0), Day::Query, QUERY),
        row("remove_member", Unpaid, "the victim's member 1", 3, lim(4_000_000, 0, 0, 0), Day::Rate, REFUSED),
        row("get_unlock_status", Unpaid, "own draft", 3, lim(3_500_000, 0, 0, 0), Day::Query, QUERY),
        row("trigger_unlock", Unpaid, "the victim's vault", 3, lim(3_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("approve_unlock", Unpaid, "the victim's vault", 3, lim(3_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("approve_unlock_with_recovery", Unpaid, "the victim's vault, a 16 KiB code", 3, lim(3_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("issue_recovery_code", Unpaid, "own draft", 3, lim(2_500_000, 0, 0, 0), Day::Rate,
            "refused before the randomness call: per admitted message only"),
        row("revoke_recovery_code", Unpaid, "own draft", 3, lim(2_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("use_recovery_code", Unpaid, "a 16 KiB code / a well-formed unknown code", 4, lim(4_000_000, 0, 0, 0), Day::Rate, REFUSED),
        // ---- content
        row("begin_upload", Unpaid, "own draft, 250 MiB, 4 KiB meta, 64 recipients", 3, lim(3_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("upload_chunk", Unpaid, "a 1 MiB chunk for an upload that is not the caller's", 3, lim(2_000_000, 0, 0, 0), Day::Rate, REFUSED),
        row("finish_upload", Unpaid, "an upload that is not the caller's", 3, lim(2_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("abort_upload", Unpaid, "an upload that is not the caller's", 3, lim(2_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("delete_item", Unpaid, "the victim's item", 3, lim(2_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("update_item_meta", Unpaid, "own draft, 4 KiB meta, 64 recipients", 3, lim(3_000_000, 0, 0, 0), Day::Rate, REFUSED),
        row("list_items", Unpaid, "own draft, limit 100", 3, lim(3_000_000, 0, 0, 0), Day::Query, QUERY),
        row("request_download", Unpaid, "the victim's item", 3, lim(2_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("get_download_chunk", Unpaid, "a ticket that is not the caller's", 3, lim(500_000, 0, 0, 0), Day::Query, QUERY),
        // ---- plans
        row("get_plans", Unpaid, "", 3, lim(1_500_000, 0, 0, 0), Day::Query, QUERY),
        row("quote", Unpaid, "Titan, 10 heirs, witness, age 120", 3, lim(3_000_000, 0, 0, 0), Day::Query, QUERY),
        row("quote_upgrade", Unpaid, "the victim's vault", 3, lim(3_000_000, 0, 0, 0), Day::Query, QUERY),
        // ---- admin
        row("get_metrics", Unpaid, "", 3, lim(4_000_000, 0, 0, 0), Day::Query, QUERY),
        row("list_admins", Unpaid, "", 3, lim(2_500_000, 0, 0, 0), Day::Query, QUERY),
        row("list_vaults", Unpaid, "limit 100", 3, lim(3_500_000, 0, 0, 0), Day::Query, QUERY),
        row("list_admin_trail", Unpaid, "limit 100", 3, lim(3_500_000, 0, 0, 0), Day::Query, QUERY),
        row("set_paused", Unpaid, "true", 3, lim(2_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("set_admins", Unpaid, "itself", 3, lim(2_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("set_pricing", Unpaid, "the default price table", 3, lim(3_000_000, 0, 0, 0), Day::Rate, REFUSED),
        row("run_maintenance", Unpaid, "", 3, lim(2_500_000, 0, 0, 0), Day::Rate, REFUSED),
        row("http_request", Unpaid, "GET /metrics with a 1.9 MB body", 2, lim(9_500_000, 0, 0, 0), Day::Query, QUERY),
        // ---- hidden update entry points (candid/hidden_endpoints.txt)
        row("scheduler_run_batch", Unpaid, "50 queue keys", 3, lim(500_000, 0, 0, 0), Day::Rate,
            "refused by ingress inspection (internal method)"),
        row("<ic-cdk internal> timer_executor", Unpaid, "a timer id", 3, lim(500_000, 0, 0, 0), Day::Rate,
            "traps at once (only the canister may call it): per admitted message only"),
        // ---- last: deleting the attacker's drafts
        row("delete_vault", Unpaid, "own drafts with full logs, sessions and refund accounts", 10,
            lim(5_000_000, 0, 0, 0),
            Day::Capped(20, "20 live drafts"),
            "frees the draft (its payment session stays, a financial record)"),
    ];
    // Anonymous: the same endpoints. Queries run (public data or NotAuthorized); updates are
    // refused by ingress inspection before the canister executes anything.
    let anonymous: Vec<Row> = rows
        .iter()
        .map(|r| {
            let query = matches!(r.day, Day::Query);
            Row {
                caller: Anonymous,
                n: if query { 2 } else { 1 },
                limit: lim(r.limit.instructions.max(1_000_000), 0, 0, 0),
                day: if query { Day::Query } else { Day::Inspected },
                canister: if query { QUERY } else { INSPECT },
                call: if query {
                    "the unpaid row's arguments"
                } else {
                    "any"
                },
                ..r.clone()
            }
        })
        .collect();
    rows.extend(anonymous);
    rows
}

/// Whether `method` is a query (by its row).
fn is_query(r: &Row) -> bool {
    matches!(r.day, Day::Query)
}

/// The calls of `r` (method and encoded argument).
fn calls(lab: &mut Lab, r: &Row) -> Vec<(&'static str, Vec<u8>)> {
    let m = r.method;
    let n = r.n;
    let now = lab.env.now();
    let d0 = lab.drafts.first().copied().unwrap_or(u64::MAX);
    let vv = lab.victim_vault;
    let same = |arg: Vec<u8>| (0..n).map(|_| (m, arg.clone())).collect::<Vec<_>>();
    match m {
        "create_vault" => (0..n).map(|i| (m, enc((create_args(i),)))).collect(),
        "update_vault" => (0..n)
            .map(|i| (m, enc((update_args(d0, i, now),))))
            .collect(),
        "check_in"
        | "finalize_setup"
        | "get_vault"
        | "get_audit_head"
        | "issue_recovery_code"
        | "revoke_recovery_code"
        | "get_unlock_status" => {
            if m == "issue_recovery_code" {
                same(enc((d0, true)))
            } else {
                same(enc((d0,)))
            }
        }
        "list_my_vaults" => same(enc((page(),))),
        "get_audit_log"
        | "list_payment_sessions"
        | "list_invites"
        | "list_members"
        | "list_items" => same(enc((d0, page()))),
        "init_payment" => lab
            .drafts
            .iter()
            .take(n as usize)
            .map(|d| (m, enc((*d, PaymentPurpose::Create))))
            .collect(),
        "verify_payment" | "get_payment_session" | "refund_session" => {
            let s = lab.sessions.first().copied().unwrap_or(1);
            same(enc((s,)))
        }
        "set_refund_account" => lab
            .drafts
            .iter()
            .skip(1)
            .take(n as usize)
            .map(|d| (m, enc((*d, Some(account())))))
            .collect(),
        "list_billing" | "list_vaults" | "list_admin_trail" => same(enc((page(),))),
        "set_treasury" => same(enc((account(),))),
        "get_vetkd_public_key"
        | "get_plans"
        | "get_metrics"
        | "list_admins"
        | "run_maintenance" => same(enc(())),
        "derive_vetkey" => {
            let tsk = client::transport_key("attacker");
            lab.drafts
                .iter()
                .skip(11)
                .take(n as usize)
                .map(|d| {
                    (
                        m,
                        enc((DeriveVetKeyArgs {
                            vault_id: *d,
                            share_index: 0,
                            transport_public_key: ByteBuf::from(tsk.public_key()),
                        },)),
                    )
                })
                .collect()
        }
        "generate_invite" => same(enc((invite_args(d0),))),
        "get_invite_info" => vec![
            (m, enc(("x".repeat(QUERY_ARG_BYTES),))),
            (m, enc((unknown_secret("lvi1_", 0),))),
        ],
        "claim_invite" | "use_recovery_code" => {
            let prefix = if m == "claim_invite" {
                "lvi1_"
            } else {
                "lvr1_"
            };
            (0..n)
                .map(|i| {
                    if i.is_multiple_of(2) {
                        (m, enc(("x".repeat(UPDATE_ARG_BYTES),)))
                    } else {
                        (m, enc((unknown_secret(prefix, i),)))
                    }
                })
                .collect()
        }
        "revoke_invite" | "regenerate_invite" => same(enc((vv, 1u64))),
        "remove_member" => same(enc((vv, 1u32))),
        "trigger_unlock" | "approve_unlock" => same(enc((vv,))),
        "approve_unlock_with_recovery" => same(enc((vv, "x".repeat(UPDATE_ARG_BYTES)))),
        "begin_upload" => same(enc((begin_args(d0),))),
        "upload_chunk" => same(enc((1u64, 0u32, ByteBuf::from(vec![9u8; 1024 * 1024])))),
        "finish_upload" | "abort_upload" => same(enc((1u64,))),
        "delete_item" => same(enc((vv, lab.victim_item))),
        "update_item_meta" => same(enc((UpdateItemMetaArgs {
            vault_id: d0,
            item_id: 1,
            encrypted_meta: ByteBuf::from(vec![3u8; 4096]),
            recipients: Some((1..=64).collect()),
        },))),
        "request_download" => same(enc((vv, lab.victim_item))),
        "get_download_chunk" => same(enc((1u64, 0u32))),
        "quote" => same(enc((QuoteArgs {
            plan: titan(),
            owner_age: 120,
        },))),
        "quote_upgrade" => same(enc((vv, titan()))),
        "set_paused" => same(enc((true,))),
        "set_admins" => same(enc((vec![lab.attacker],))),
        "set_pricing" => same(enc((Pricing::default(),))),
        "http_request" => vec![
            (m, enc((http("/metrics", QUERY_ARG_BYTES),))),
            (m, enc((http("/health", 0),))),
        ],
        "scheduler_run_batch" => same(enc((vec![(now, 1u8, 1u64); 50],))),
        "<ic-cdk internal> timer_executor" => same(enc((1u64,))),
        "delete_vault" => lab
            .drafts
            .iter()
            .rev()
            .take(n as usize)
            .map(|d| (m, enc((*d,))))
            .collect(),
        other => panic!("no calls defined for the row of {other}"),
    }
}

/// Measures every row on a fresh canister, in order. `progress` is told each row.
pub fn measure_all(mut progress: impl FnMut(&Row)) -> (Lab, Vec<Row>) {
    let mut lab = Lab::new();
    let mut rows = rows();
    for r in rows.iter_mut() {
        let who = match r.caller {
            Caller::Anonymous => Principal::anonymous(),
            Caller::Unpaid => lab.attacker,
        };
        let cs = calls(&mut lab, r);
        r.measured = lab.measure(who, is_query(r), cs);
        if r.caller == Caller::Unpaid {
            after_row(&mut lab, r);
        }
        progress(r);
    }
    (lab, rows)
}

/// What later rows need from a row: the drafts it created, the sessions it opened.
fn after_row(lab: &mut Lab, r: &Row) {
    match r.method {
        "create_vault" => {
            let attacker = lab.attacker;
            let page: Result<Page<VaultSummary>, VaultError> =
                lab.env.query(attacker, "list_my_vaults", (page(),));
            lab.drafts = page
                .expect("the attacker's drafts")
                .items
                .iter()
                .map(|v| v.id)
                .collect();
        }
        "init_payment" => {
            let attacker = lab.attacker;
            for d in lab.drafts.clone().iter().take(r.n as usize) {
                let p: Result<PaymentSessionPage, VaultError> =
                    lab.env
                        .query(attacker, "list_payment_sessions", (*d, page()));
                lab.sessions
                    .extend(p.expect("sessions").items.iter().map(|s| s.id));
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------ the table

/// `1234567` → `1 234 567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Bytes, human-readable.
pub fn bytes(n: i64) -> String {
    let a = n.unsigned_abs();
    let sign = if n < 0 { "−" } else { "" };
    if a >= 10 * 1024 * 1024 * 1024 {
        format!("{sign}{} GiB", thousands(a / (1024 * 1024 * 1024)))
    } else if a >= 10 * 1024 * 1024 {
        format!("{sign}{} MiB", thousands(a / (1024 * 1024)))
    } else if a >= 10 * 1024 {
        format!("{sign}{} KiB", thousands(a / 1024))
    } else {
        format!("{sign}{} B", thousands(a))
    }
}

/// Instructions, human-readable (`1.2 M`, `3.4 G`, `5 T`).
pub fn instr(n: u64) -> String {
    let f = n as f64;
    if n >= 1_000_000_000_000 {
        format!("{:.1} T", f / 1e12)
    } else if n >= 1_000_000_000 {
        format!("{:.1} G", f / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.2} M", f / 1e6)
    } else {
        format!("{} k", thousands(n / 1000))
    }
}

/// The per-principal-per-day cell of `r`.
pub fn per_day(r: &Row) -> String {
    let m = &r.measured;
    let effects = |n: u64| {
        let mut parts = Vec::new();
        if m.ledger_per_call() > 0 {
            parts.push(format!(
                "{} ledger calls",
                thousands(n * m.ledger_per_call())
            ));
        }
        if m.mgmt_per_call() > 0 {
            parts.push(format!("{} mgmt calls", thousands(n * m.mgmt_per_call())));
        }
        let b = m.bytes_per_call();
        if b != 0 {
            parts.push(format!("{} stable", bytes(b.saturating_mul(n as i64))));
        }
        if parts.is_empty() {
            "nothing else".to_string()
        } else {
            parts.join(", ")
        }
    };
    match r.day {
        Day::Query => "any number; each read-only".into(),
        Day::Inspected => "0 executed".into(),
        Day::Rate => format!(
            "{} calls: {} instr; {}",
            thousands(UPDATES_PER_DAY),
            instr(UPDATES_PER_DAY * m.max_instructions),
            effects(UPDATES_PER_DAY)
        ),
        Day::Capped(n, why) => format!(
            "{} calls: {} instr; ≤ {} with effects ({why}): {}",
            thousands(UPDATES_PER_DAY),
            instr(UPDATES_PER_DAY * m.max_instructions),
            thousands(n),
            effects(n)
        ),
    }
}

/// The table as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| endpoint | caller | worst call measured | outcome | instructions / call (bound) | ledger / call | mgmt / call | stable bytes / call (bound) | per principal and day | whole canister |\n|---|---|---|---|---:|---:|---:|---:|---|---|\n",
    );
    for r in rows {
        let m = &r.measured;
        let outcomes: Vec<&str> = m.outcomes.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} ({}) | {} | {} | {} ({}) | {} | {} |\n",
            r.method,
            r.caller.label(),
            if r.call.is_empty() { "—" } else { r.call },
            outcomes.join(", "),
            thousands(m.max_instructions),
            instr(r.limit.instructions),
            m.ledger_per_call(),
            m.mgmt_per_call(),
            bytes(m.bytes_per_call()),
            bytes(r.limit.bytes),
            per_day(r),
            r.canister,
        ));
    }
    out
}

/// Violations of the documented limits (empty: every row within its bounds).
pub fn violations(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows {
        let m = &r.measured;
        let who = format!("{} ({})", r.method, r.caller.label());
        if m.calls != r.n {
            out.push(format!(
                "{who}: {} calls measured, {} documented",
                m.calls, r.n
            ));
        }
        if m.max_instructions > r.limit.instructions {
            out.push(format!(
                "{who}: {} instructions > {}",
                m.max_instructions, r.limit.instructions
            ));
        }
        if m.ledger_per_call() > r.limit.ledger {
            out.push(format!(
                "{who}: {} ledger calls per call > {}",
                m.ledger_per_call(),
                r.limit.ledger
            ));
        }
        if m.mgmt_per_call() > r.limit.mgmt {
            out.push(format!(
                "{who}: {} management calls per call > {}",
                m.mgmt_per_call(),
                r.limit.mgmt
            ));
        }
        if m.bytes_per_call() > r.limit.bytes {
            out.push(format!(
                "{who}: {} stable bytes per call > {}",
                m.bytes_per_call(),
                r.limit.bytes
            ));
        }
        if m.outcomes.iter().any(|o| o.contains("trap")) && !r.method.starts_with('<') {
            out.push(format!("{who}: trapped: {:?}", m.outcomes));
        }
    }
    out
}

/// Endpoints of `candid/livault_backend.did` (name, is query), parsed.
pub fn did_endpoints() -> Vec<(String, bool)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../candid/livault_backend.did");
    let (env, actor) = candid_parser::utils::CandidSource::File(std::path::Path::new(path))
        .load()
        .expect("the .did parses");
    let actor = actor.expect("the .did has a service");
    env.as_service(&actor)
        .expect("a service")
        .iter()
        .map(|(name, ty)| {
            (
                name.clone(),
                env.as_func(ty).expect("a function").is_query(),
            )
        })
        .collect()
}

/// Hidden update entry points (`candid/hidden_endpoints.txt`, `canister_update:<name>`).
pub fn hidden_updates() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../candid/hidden_endpoints.txt"
    );
    std::fs::read_to_string(path)
        .expect("hidden_endpoints.txt")
        .lines()
        .filter_map(|l| l.strip_prefix("canister_update:"))
        .map(str::to_string)
        .collect()
}
