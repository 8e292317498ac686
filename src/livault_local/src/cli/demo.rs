//! `demo`: the SPEC journey on the real canister wasm, narrated, every step checked.
//!
//! `livault-local --state DIR demo [--wasm PATH]` installs the wasm into a fresh state
//! directory and runs [`steps`] in order. Each [`Step`] has a name, what it shows, and a
//! closure that makes typed Candid calls (types from the `livault_backend` crate) and
//! *asserts* the answers (status, price, error variant, ...). Every step prints the
//! instructions its messages used (from the host's counters). The first step whose result
//! differs from what is expected stops the demo with an error, so the process exits
//! non-zero; `scripts/demo.sh` builds everything and runs it.
//!
//! The state is saved afterwards, so the demo's canister can be explored further with
//! `livault-local --state DIR call --as alice get_vault '(1)'` etc. (identities `admin`,
//! `alice`, `bob`, `carol`, `dave` exist).
//!
//! ## The journey
//! Foundation (install, plans, quote, create, rules, rejected inputs, audit log), then the
//! creation payment through the host's ICP ledger model (session, wallet transfer to the
//! hex account identifier, `verify_payment` → `NeedSetup`, treasury balance), invites for
//! two heirs and a witness claimed by `bob`, `carol` and `dave`, a file of a few MiB uploaded
//! in chunks with a progress bar ([`crate::progress`]) and a letter for bob →
//! `SetupComplete` → `finalize_setup` → `Active`, heirs refused before the unlock, an
//! upgrade, 181 days of time travel (the daily maintenance timer fires), an unlock request
//! and approvals → `Unlockable`, heir downloads compared byte for byte and by SHA-256, and
//! the audit log's tail.
//!
//! ## Adding steps
//! Add one `Step::new(...)` to [`steps`] in journey order; state later steps need goes into
//! [`Journey`].

use super::identity::principal_of;
use super::{Args, Context};
use crate::progress::ProgressBar;
use crate::vetkeys_client as client;
use anyhow::{anyhow, bail, ensure, Context as _, Result};
use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use livault_backend::domain::error::VaultError;
use livault_backend::domain::keys::{DeriveVetKeyArgs, EncryptedVetKeyReply};
use livault_backend::model::config::{Durations, InitArgs, LiVaultArgs};
use livault_backend::model::keys::VetKdPublicKey;
use livault_backend::model::member_types::*;
use livault_backend::model::payments::*;
use livault_backend::model::records::MemberRole;
use livault_backend::model::types::*;
use local_replica::host::Host;
use local_replica::AccountId;
use local_replica::CallKind;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Default path of the canister wasm (built by `scripts/build.sh`).
pub const DEFAULT_WASM: &str = "target/livault/livault_backend.wasm";

const E8S: u64 = 100_000_000;
const DAY_NS: u64 = 86_400 * 1_000_000_000;
/// The demo's maintenance timer interval (init arg `durations.timer_interval_secs`).
const TIMER_SECS: u64 = 86_400;
/// Size of the demo's file: a few MiB, uploaded in the canister's chunk size (1 MiB).
const FILE_BYTES: usize = 3 * 1024 * 1024 + 123_456;
/// The ICP ledger fee.
const FEE: u64 = local_replica::ledger::FEE;

/// Everything the steps share: the host, the wasm, identities and what earlier steps found.
pub struct Demo<'a> {
    /// The host (the CLI's, saved afterwards).
    pub host: &'a mut Host,
    /// The canister wasm.
    pub wasm: Vec<u8>,
    /// Admin and controller.
    pub admin: Principal,
    /// The vault owner.
    pub alice: Principal,
    /// A stranger at first, then an heir.
    pub bob: Principal,
    /// The second heir.
    pub carol: Principal,
    /// The witness.
    pub dave: Principal,
    /// The vault created by "Create a vault".
    pub vault_id: Option<VaultId>,
    /// What the journey's later steps need from the earlier ones.
    pub journey: Journey,
    /// Instructions used by the messages of the current step.
    instructions: u64,
    /// Messages executed in the current step.
    messages: u64,
}

/// Ids, tokens and payloads found by earlier steps of the journey.
#[derive(Default)]
pub struct Journey {
    /// The creation payment session.
    pub session: Option<PaymentSession>,
    /// Invite tokens: bob's, carol's, dave's (in that order).
    pub tokens: Vec<String>,
    /// Member ids of bob, carol, dave.
    pub members: Vec<u32>,
    /// The uploaded file: item id and payload.
    pub file: Option<(u64, Vec<u8>)>,
    /// The letter for bob: item id and payload (ciphertext).
    pub letter: Option<(u64, Vec<u8>)>,
    /// The letter's plaintext, sealed in alice's client (only its ciphertext left it).
    pub letter_plain: Vec<u8>,
    /// bob's share index (his vetKD identity is `vault ‖ share`).
    pub bob_share: u8,
}

/// Result of a step: lines describing what was observed.
pub type StepResult = Result<Vec<String>>;

/// One step of the demo.
pub struct Step {
    /// Short title.
    pub name: &'static str,
    /// Runs the step and checks its answers (an `Err` fails the demo).
    pub run: fn(&mut Demo) -> StepResult,
}

impl Step {
    /// A step named `name` running `run`.
    pub const fn new(name: &'static str, run: fn(&mut Demo) -> StepResult) -> Self {
        Step { name, run }
    }
}

/// The demo's steps, in journey order. Features add theirs here (see the module docs).
pub fn steps() -> Vec<Step> {
    vec![
        Step::new("Install the canister with init args", install),
        Step::new("Plans (anyone, query)", plans),
        Step::new("Quote: Standard, 2 heirs, witness, age 45", quote),
        Step::new("Create a vault as alice", create_vault),
        Step::new("Set unlock rules", set_rules),
        Step::new("Read the vault back", get_vault),
        Step::new("List alice's vaults", list_vaults),
        Step::new("Rejected inputs: typed errors, nothing changes", rejected),
        Step::new("Audit log (hash-chained)", audit_log),
        Step::new("Advance time by 3 days", advance_time),
        Step::new("Open a payment session (Create)", init_payment),
        Step::new("Wallet transfer on the ICP ledger", wallet_transfer),
        Step::new("Verify the payment -> NeedSetup", verify_payment),
        Step::new("Invite 2 heirs and a witness", invites),
        Step::new("Invite info (anonymous, query)", invite_info),
        Step::new("Claims: bob, carol (heirs), dave (witness)", claims),
        Step::new("Upload a 3 MiB file in chunks: SetupComplete", upload_file),
        Step::new("Upload a letter addressed to bob", upload_letter),
        Step::new("Finalize the setup -> Active", finalize),
        Step::new("Before unlock: heirs are refused", before_unlock),
        Step::new("Upgrade keeps every answer", upgrade),
        Step::new("Advance 181 days: owner inactive, timers fire", inactivity),
        Step::new("Unlock request by bob", trigger_unlock),
        Step::new("Approvals: bob, then dave -> Unlockable", approvals),
        Step::new("Heir downloads: bytes and SHA-256 equal", heir_download),
        Step::new(
            "bob's vetKey opens the letter; nobody else's does",
            heir_decrypts,
        ),
        Step::new("Audit log tail", audit_tail),
        Step::new("Metrics (admin)", metrics),
        Step::new("Canister status", status),
    ]
}

impl Demo<'_> {
    fn vault(&self) -> Result<VaultId> {
        self.vault_id
            .ok_or_else(|| anyhow!("no vault yet (the create step did not run)"))
    }

    /// Typed update call; a system reject is an error.
    pub fn update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> Result<R> {
        self.call(CallKind::Update, who, method, args)
    }

    /// Typed query call; a system reject is an error.
    pub fn query<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> Result<R> {
        self.call(CallKind::Query, who, method, args)
    }

    /// A typed call (the host's typed call API) counted in the step's figures.
    fn call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        kind: CallKind,
        who: Principal,
        method: &str,
        args: A,
    ) -> Result<R> {
        let reply = super::call_typed(self.host, kind, who, method, args)?;
        self.instructions += reply.total_instructions;
        self.messages += 1;
        Ok(reply.value)
    }

    /// Advances the host clock by `days`; the maintenance timer fires on the way. Adds the
    /// executions that ran meanwhile (timer ticks and their callbacks) to the step's counts
    /// and returns how many timer executions there were.
    fn advance_days(&mut self, days: u64) -> u64 {
        let before = self.host.now();
        self.host.advance_time(Duration::from_secs(days * 86_400));
        let mut timers = 0;
        for r in self.host.executions().filter(|r| r.time_ns > before) {
            self.instructions += r.instructions;
            self.messages += 1;
            if r.kind == local_replica::ic0::ExecKind::Timer {
                timers += 1;
            }
        }
        timers
    }

    /// The caller's unlock status.
    fn unlock_status(&mut self, who: Principal) -> Result<UnlockStatus> {
        let id = self.vault()?;
        let s: Result<UnlockStatus, VaultError> = self.query(who, "get_unlock_status", (id,))?;
        ok("get_unlock_status", s)
    }

    /// Instructions of the executions the host recorded since `since` (install, upgrade).
    fn add_recorded_since(&mut self, since: usize) {
        for r in self.host.executions().skip(since) {
            self.instructions += r.instructions;
            self.messages += 1;
        }
    }

    /// Answers of every query endpoint for alice's vault, as text (for the upgrade check).
    fn snapshot(&mut self) -> Result<Vec<String>> {
        let id = self.vault()?;
        let (alice, admin, bob) = (self.alice, self.admin, self.bob);
        let page = PageArgs::default();
        Ok(vec![
            format!("{:?}", self.query::<_, PlansInfo>(alice, "get_plans", ())?),
            format!(
                "{:?}",
                self.query::<_, Result<Quote, VaultError>>(
                    alice,
                    "quote",
                    (QuoteArgs {
                        plan: demo_plan(),
                        owner_age: 45
                    },)
                )?
            ),
            format!(
                "{:?}",
                self.query::<_, Result<VaultView, VaultError>>(alice, "get_vault", (id,))?
            ),
            format!(
                "{:?}",
                self.query::<_, Result<VaultView, VaultError>>(bob, "get_vault", (id,))?
            ),
            format!(
                "{:?}",
                self.query::<_, Result<Page<VaultSummary>, VaultError>>(
                    alice,
                    "list_my_vaults",
                    (page.clone(),)
                )?
            ),
            format!(
                "{:?}",
                self.query::<_, Result<Page<AuditEventView>, VaultError>>(
                    alice,
                    "get_audit_log",
                    (id, page)
                )?
            ),
            format!(
                "{:?}",
                self.query::<_, Result<AuditHead, VaultError>>(alice, "get_audit_head", (id,))?
            ),
            format!(
                "{:?}",
                self.query::<_, Result<Vec<Principal>, VaultError>>(admin, "list_admins", ())?
            ),
        ])
    }
}

fn demo_plan() -> PlanSelection {
    PlanSelection {
        tier: Tier::Standard,
        heir_slots: 2,
        witness_slot: true,
    }
}

fn icp(e8s: u64) -> String {
    let frac = format!("{:08}", e8s % E8S);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{} ICP", e8s / E8S)
    } else {
        format!("{}.{} ICP", e8s / E8S, frac)
    }
}

fn day(ns: u64) -> String {
    super::time::format_time(ns)
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<()> {
    ensure!(got == want, "{what}: expected {want:?}, got {got:?}");
    Ok(())
}

fn ok<T: std::fmt::Debug>(what: &str, r: Result<T, VaultError>) -> Result<T> {
    r.map_err(|e| anyhow!("{what}: expected Ok, got Err({e:?})"))
}

// ---------------------------------------------------------------- steps

fn install(d: &mut Demo) -> StepResult {
    let args = Some(LiVaultArgs::Init(InitArgs {
        admins: vec![d.admin],
        ledger_canister_id: Some(local_replica::ledger_principal()),
        durations: Some(Durations {
            timer_interval_secs: TIMER_SECS,
            ..Durations::default()
        }),
        ..Default::default()
    }));
    let since = d.host.executions().count();
    let id = d
        .host
        .install(&d.wasm, candid::encode_one(args)?, d.admin)
        .context("install")?;
    d.add_recorded_since(since);
    let admins: Result<Vec<Principal>, VaultError> = d.query(d.admin, "list_admins", ())?;
    expect_eq("admins", ok("list_admins", admins)?, vec![d.admin])?;
    Ok(vec![
        format!("canister {id}, {} bytes of wasm", d.wasm.len()),
        format!("admin = {} (also the controller)", d.admin),
        format!(
            "ledger = {} (the host's ICP ledger model), treasury = the admin's account",
            local_replica::LEDGER_ID
        ),
        format!(
            "maintenance timer every {} h (default 60 s; daily keeps 6 months of time travel fast)",
            TIMER_SECS / 3600
        ),
    ])
}

fn plans(d: &mut Demo) -> StepResult {
    let p: PlansInfo = d.query(Principal::anonymous(), "get_plans", ())?;
    expect_eq("number of tiers", p.tiers.len(), 5)?;
    let std = &p.tiers[1];
    expect_eq("Standard tier", std.tier, Tier::Standard)?;
    expect_eq("Standard price", std.storage_price_e8s, 6 * E8S)?;
    expect_eq("validity days", p.validity_days, 3650)?;
    let mut lines: Vec<String> = p
        .tiers
        .iter()
        .map(|t| {
            format!(
                "{:<9} {:>4} MiB  up to {:>2} heirs  {}",
                format!("{:?}", t.tier),
                t.storage_bytes / (1 << 20),
                t.max_heirs,
                icp(t.storage_price_e8s)
            )
        })
        .collect();
    lines.push(format!(
        "heir slot {}, witness {}, valid {} days",
        icp(p.heir_slot_fee_e8s),
        icp(p.witness_fee_e8s),
        p.validity_days
    ));
    Ok(lines)
}

fn quote(d: &mut Demo) -> StepResult {
    let q: Result<Quote, VaultError> = d.query(
        d.alice,
        "quote",
        (QuoteArgs {
            plan: demo_plan(),
            owner_age: 45,
        },),
    )?;
    let q = ok("quote", q)?;
    expect_eq("total", q.total_e8s, 715_000_000)?;
    Ok(vec![format!(
        "storage {} + heir slots {} + witness {}, age uplift {} % = {}",
        icp(q.storage_e8s),
        icp(q.heir_slots_e8s),
        icp(q.witness_e8s),
        q.age_uplift_percent,
        icp(q.total_e8s)
    )])
}

fn create_vault(d: &mut Demo) -> StepResult {
    let v: Result<VaultView, VaultError> = d.update(
        d.alice,
        "create_vault",
        (CreateVaultArgs {
            name: "Family documents".into(),
            plan: demo_plan(),
            owner_age: 45,
            idempotency_key: Some("demo-1".into()),
        },),
    )?;
    let v = ok("create_vault", v)?;
    expect_eq("status", v.status, VaultStatus::Draft)?;
    expect_eq("price", v.price_e8s, 715_000_000)?;
    expect_eq("owner", v.owner, d.alice)?;
    d.vault_id = Some(v.id);
    Ok(vec![
        format!("vault #{} \"{}\" owned by alice", v.id, v.name),
        format!(
            "status {:?}, price frozen at {} (pay next)",
            v.status,
            icp(v.price_e8s)
        ),
    ])
}

fn set_rules(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let rules = UnlockRules {
        unlock_after: None,
        inactivity_days: Some(180),
        request_wait_days: 7,
        required_heirs: 1,
        required_witness: true,
    };
    let v: Result<VaultView, VaultError> = d.update(
        d.alice,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: id,
            name: None,
            unlock_rules: Some(rules.clone()),
            post_unlock_days: Some(90),
            audit_retention_days: None,
        },),
    )?;
    let v = ok("update_vault", v)?;
    expect_eq("unlock rules", v.unlock_rules.as_ref(), Some(&rules))?;
    expect_eq("post-unlock days", v.post_unlock_days, 90)?;
    expect_eq("status", v.status, VaultStatus::Draft)?;
    Ok(vec![
        "unlock after 180 days of owner inactivity (or 7 days after a request),".into(),
        "with 1 heir's and the witness's approval; heirs keep access 90 days".into(),
    ])
}

fn get_vault(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let v: Result<VaultView, VaultError> = d.query(d.alice, "get_vault", (id,))?;
    let v = ok("get_vault", v)?;
    expect_eq("role", v.my_role, VaultRole::Owner)?;
    expect_eq("status", v.status, VaultStatus::Draft)?;
    ensure!(v.unlock_rules.is_some(), "unlock rules missing");
    Ok(vec![
        format!(
            "#{} {:?}, role {:?}, plan {:?} {} heirs + witness, {} MiB",
            v.id,
            v.status,
            v.my_role,
            v.plan.tier,
            v.plan.heir_slots,
            v.storage_limit_bytes / (1 << 20)
        ),
        format!(
            "created {}, last owner activity {}",
            day(v.created_at),
            day(v.last_owner_activity)
        ),
    ])
}

fn list_vaults(d: &mut Demo) -> StepResult {
    let p: Result<Page<VaultSummary>, VaultError> =
        d.query(d.alice, "list_my_vaults", (PageArgs::default(),))?;
    let p = ok("list_my_vaults", p)?;
    expect_eq("vaults", p.items.len(), 1)?;
    expect_eq("next cursor", p.next_cursor, None)?;
    Ok(p.items
        .iter()
        .map(|s| format!("#{} \"{}\" {:?} ({:?})", s.id, s.name, s.status, s.role))
        .collect())
}

fn rejected(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let before: Result<VaultView, VaultError> = d.query(d.alice, "get_vault", (id,))?;
    let mut lines = vec![];
    // An empty name.
    let r: Result<VaultView, VaultError> = d.update(
        d.alice,
        "create_vault",
        (CreateVaultArgs {
            name: String::new(),
            plan: demo_plan(),
            owner_age: 45,
            idempotency_key: None,
        },),
    )?;
    match r {
        Err(VaultError::InvalidInput { ref field, .. }) if field == "name" => {}
        other => {
            bail!("empty name: expected Err(InvalidInput {{ field: \"name\" }}), got {other:?}")
        }
    }
    lines.push(format!(
        "create_vault(name = \"\")   -> {:?}",
        r.unwrap_err()
    ));
    // Too many heir slots for the tier.
    let r: Result<VaultView, VaultError> = d.update(
        d.alice,
        "update_vault",
        (UpdateVaultArgs {
            vault_id: id,
            name: None,
            unlock_rules: Some(UnlockRules {
                unlock_after: None,
                inactivity_days: Some(180),
                request_wait_days: 7,
                required_heirs: 3,
                required_witness: false,
            }),
            post_unlock_days: None,
            audit_retention_days: None,
        },),
    )?;
    ensure!(
        matches!(r, Err(VaultError::InvalidInput { .. })),
        "3 required heirs with 2 slots: expected Err(InvalidInput), got {r:?}"
    );
    lines.push(format!("required_heirs = 3 of 2 -> {:?}", r.unwrap_err()));
    // A stranger.
    let r: Result<VaultView, VaultError> = d.query(d.bob, "get_vault", (id,))?;
    expect_eq(
        "bob's get_vault",
        r.clone().err(),
        Some(VaultError::NotAuthorized),
    )?;
    lines.push(format!("get_vault as bob          -> {:?}", r.unwrap_err()));
    let after: Result<VaultView, VaultError> = d.query(d.alice, "get_vault", (id,))?;
    expect_eq("the vault after the rejected calls", after, before)?;
    let p: Result<Page<VaultSummary>, VaultError> =
        d.query(d.alice, "list_my_vaults", (PageArgs::default(),))?;
    expect_eq("alice's vaults", ok("list_my_vaults", p)?.items.len(), 1)?;
    lines.push("the vault and alice's list are unchanged".into());
    Ok(lines)
}

fn audit_log(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let p: Result<Page<AuditEventView>, VaultError> =
        d.query(d.alice, "get_audit_log", (id, PageArgs::default()))?;
    let p = ok("get_audit_log", p)?;
    let actions: Vec<&str> = p.items.iter().map(|e| e.action.as_str()).collect();
    expect_eq(
        "actions",
        actions,
        vec![
            "vault.created",
            "vault.unlock_rules_changed",
            "vault.settings_changed",
        ],
    )?;
    let head: Result<AuditHead, VaultError> = d.query(d.alice, "get_audit_head", (id,))?;
    let head = ok("get_audit_head", head)?;
    let last = p.items.last().ok_or_else(|| anyhow!("empty audit log"))?;
    expect_eq("head hash", &head.head_hash, &last.hash)?;
    let mut lines: Vec<String> = p
        .items
        .iter()
        .map(|e| {
            format!(
                "#{} {:<28} {}  {}",
                e.seq,
                e.action,
                hex::encode(&e.hash[..6]),
                e.details
            )
        })
        .collect();
    lines.push(format!(
        "head: next seq {}, hash {}…",
        head.next_seq,
        hex::encode(&head.head_hash[..6])
    ));
    Ok(lines)
}

fn advance_time(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let before = d.host.now();
    let ticks = d.advance_days(3);
    let now = d.host.now();
    ensure!(now >= before + 3 * DAY_NS, "the clock did not advance");
    expect_eq("timer executions", ticks, 3)?;
    let v: Result<VaultView, VaultError> = d.query(d.alice, "get_vault", (id,))?;
    let v = ok("get_vault", v)?;
    expect_eq("status", v.status, VaultStatus::Draft)?;
    Ok(vec![
        format!("clock {} -> {}, {ticks} timer executions", day(before), day(now)),
        format!(
            "vault still {:?}: the daily scheduler ticks ran; an unpaid draft is purged after 7 days",
            v.status
        ),
    ])
}

fn upgrade(d: &mut Demo) -> StepResult {
    let before = d.snapshot()?;
    let version = d.host.status().map(|s| s.version).unwrap_or(0);
    let since = d.host.executions().count();
    let wasm = d.wasm.clone();
    d.host
        .upgrade(&wasm, candid::encode_one(None::<LiVaultArgs>)?)
        .context("upgrade")?;
    d.add_recorded_since(since);
    let after = d.snapshot()?;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        ensure!(
            b == a,
            "answer {i} changed across the upgrade:\n  before {b}\n  after  {a}"
        );
    }
    let new_version = d.host.status().map(|s| s.version).unwrap_or(0);
    expect_eq("module version", new_version, version + 1)?;
    Ok(vec![
        format!("pre_upgrade + post_upgrade ran (version {version} -> {new_version})"),
        format!(
            "{} query answers identical before and after (plans, quote, vault as owner and \
             stranger, list, audit log, audit head, admins)",
            after.len()
        ),
    ])
}

fn metrics(d: &mut Demo) -> StepResult {
    let m: Result<Metrics, VaultError> = d.query(d.admin, "get_metrics", ())?;
    let m = ok("get_metrics", m)?;
    expect_eq("vaults_total", m.vaults_total, 1)?;
    let unlockable = m
        .vaults_by_status
        .iter()
        .find(|c| c.status == VaultStatus::Unlockable)
        .map(|c| c.count);
    expect_eq("unlockable vaults", unlockable, Some(1))?;
    expect_eq("admins", m.admins, 1)?;
    let denied: Result<Metrics, VaultError> = d.query(d.alice, "get_metrics", ())?;
    expect_eq(
        "get_metrics as alice",
        denied.err(),
        Some(VaultError::NotAuthorized),
    )?;
    Ok(vec![
        format!(
            "vaults total {}, by status {:?}",
            m.vaults_total,
            m.vaults_by_status
                .iter()
                .filter(|c| c.count > 0)
                .map(|c| format!("{:?}={}", c.status, c.count))
                .collect::<Vec<_>>()
        ),
        format!(
            "stable memory {:.1} MiB, heap {:.1} MiB, cycles {}",
            m.stable_memory_bytes as f64 / 1048576.0,
            m.heap_memory_bytes as f64 / 1048576.0,
            m.cycles_balance
        ),
        format!(
            "scheduler: {} ticks since the upgrade, last {} ({} instructions), {} queued",
            m.scheduler.runs,
            m.scheduler
                .last_run
                .as_ref()
                .map(|r| day(r.started_at))
                .unwrap_or_else(|| "never".into()),
            m.scheduler
                .last_run
                .as_ref()
                .map(|r| group(r.instructions))
                .unwrap_or_default(),
            m.scheduler.queue_len
        ),
        "as alice: NotAuthorized".into(),
    ])
}

fn status(d: &mut Demo) -> StepResult {
    let s = d
        .host
        .status()
        .ok_or_else(|| anyhow!("no canister installed"))?;
    expect_eq("canister id", s.id, d.host.canister_id())?;
    Ok(vec![
        format!("canister {} version {}", s.id, s.version),
        format!("module hash 0x{}", s.module_hash),
        format!(
            "heap {:.1} MiB, stable {:.1} MiB, controllers {}",
            s.heap_bytes as f64 / 1048576.0,
            s.stable_memory_bytes as f64 / 1048576.0,
            s.controllers.len()
        ),
    ])
}

fn init_payment(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let s: Result<PaymentSession, VaultError> =
        d.update(d.alice, "init_payment", (id, PaymentPurpose::Create))?;
    let s = ok("init_payment", s)?;
    expect_eq("amount", s.amount_e8s, 715_000_000)?;
    expect_eq("session status", s.status, PaymentSessionStatus::Open)?;
    ensure!(
        s.account_identifier.len() == 64,
        "account identifier {:?} is not 64 hex characters",
        s.account_identifier
    );
    // The same open (vault, purpose) returns the same session.
    let again: Result<PaymentSession, VaultError> =
        d.update(d.alice, "init_payment", (id, PaymentPurpose::Create))?;
    expect_eq(
        "the second init_payment's id",
        ok("init_payment", again)?.id,
        s.id,
    )?;
    let lines = vec![
        format!(
            "session #{}: pay {} before {}",
            s.id,
            icp(s.amount_e8s),
            day(s.expires_at)
        ),
        format!(
            "account identifier (NNS, Plug, exchanges): {}",
            s.account_identifier
        ),
        format!("ICRC-1 account (Oisy):  {}", s.icrc1_account),
        "init_payment again -> the same session".into(),
    ];
    d.journey.session = Some(s);
    Ok(lines)
}

fn wallet_transfer(d: &mut Demo) -> StepResult {
    let s = d
        .journey
        .session
        .clone()
        .ok_or_else(|| anyhow!("no payment session"))?;
    let wallet = AccountId::new(&d.alice, None);
    let mint = d.host.fund(wallet, s.amount_e8s + FEE);
    let to = AccountId::from_hex(&s.account_identifier)
        .map_err(|e| anyhow!("account identifier {:?}: {e:?}", s.account_identifier))?;
    let block = d
        .host
        .ledger_transfer_as(&d.alice, to, s.amount_e8s)
        .map_err(|e| anyhow!("wallet transfer: {e:?}"))?;
    expect_eq(
        "session balance",
        d.host.ledger().balance(&to),
        s.amount_e8s,
    )?;
    expect_eq("wallet balance", d.host.ledger().balance(&wallet), 0)?;
    Ok(vec![
        format!(
            "alice's wallet {wallet} funded with {} (block {mint})",
            icp(s.amount_e8s + FEE)
        ),
        format!(
            "transfer {} + fee {} to {} (block {block})",
            icp(s.amount_e8s),
            icp(FEE),
            s.account_identifier
        ),
    ])
}

fn verify_payment(d: &mut Demo) -> StepResult {
    let s = d
        .journey
        .session
        .clone()
        .ok_or_else(|| anyhow!("no payment session"))?;
    let r: Result<PaymentReceipt, VaultError> = d.update(d.alice, "verify_payment", (s.id,))?;
    let r = ok("verify_payment", r)?;
    expect_eq("vault status", r.vault_status, VaultStatus::NeedSetup)?;
    expect_eq(
        "session status",
        r.session.status,
        PaymentSessionStatus::Completed,
    )?;
    expect_eq("treasury share", r.billing.treasury_e8s, s.amount_e8s - FEE)?;
    let treasury = AccountId::new(&d.admin, None);
    let balance = d.host.ledger().balance(&treasury);
    expect_eq("treasury balance", balance, s.amount_e8s - FEE)?;
    let v: Result<VaultView, VaultError> = d.query(d.alice, "get_vault", (d.vault()?,))?;
    let v = ok("get_vault", v)?;
    expect_eq("status", v.status, VaultStatus::NeedSetup)?;
    ensure!(
        v.paid_at.is_some() && v.expires_at.is_some(),
        "paid_at/expires_at not set"
    );
    Ok(vec![
        format!(
            "received {}, swept {} to the treasury at block {:?} (billing #{})",
            icp(r.session.received_e8s),
            icp(r.billing.treasury_e8s),
            r.billing.sweep_block,
            r.billing.id
        ),
        format!("treasury balance on the ledger: {}", icp(balance)),
        format!(
            "vault {:?}, paid {}, valid until {}, still missing {:?}",
            v.status,
            day(v.paid_at.unwrap_or(0)),
            day(v.expires_at.unwrap_or(0)),
            v.setup_missing
        ),
    ])
}

fn invites(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let mut lines = vec![];
    let people = [
        ("Bob", MemberRole::Heir, Relation::Son),
        ("Carol", MemberRole::Heir, Relation::Daughter),
        ("Dave", MemberRole::Witness, Relation::Notary),
    ];
    let mut indexes = vec![];
    for (name, role, relation) in people {
        let r: Result<InviteCreated, VaultError> = d.update(
            d.alice,
            "generate_invite",
            (GenerateInviteArgs {
                vault_id: id,
                role,
                name: name.into(),
                relation,
                email_hint: None,
                can_trigger_unlock: true,
                count_as_approver: true,
            },),
        )?;
        let inv = ok("generate_invite", r)?;
        expect_eq("role", &inv.role, &role)?;
        ensure!(inv.token.len() >= 22, "token too short: {:?}", inv.token);
        indexes.push(inv.share_index);
        lines.push(format!(
            "{name:<5} {:?}/{:?}: invite #{}, share index {}, token {}… (shown once), expires {}",
            role,
            relation,
            inv.invite_id,
            inv.share_index,
            &inv.token[..12],
            day(inv.expires_at)
        ));
        d.journey.tokens.push(inv.token);
    }
    let mut unique = indexes.clone();
    unique.dedup();
    expect_eq("distinct share indexes", unique.len(), 3)?;
    // The plan has 2 heir slots: a third heir invite is refused.
    let r: Result<InviteCreated, VaultError> = d.update(
        d.alice,
        "generate_invite",
        (GenerateInviteArgs {
            vault_id: id,
            role: MemberRole::Heir,
            name: "Eve".into(),
            relation: Relation::Friend,
            email_hint: None,
            can_trigger_unlock: true,
            count_as_approver: true,
        },),
    )?;
    ensure!(
        matches!(r, Err(VaultError::PlanLimit { .. })),
        "a third heir: expected Err(PlanLimit), got {r:?}"
    );
    lines.push(format!("a third heir -> {:?}", r.unwrap_err()));
    Ok(lines)
}

fn invite_info(d: &mut Demo) -> StepResult {
    let mut lines = vec![];
    for token in d.journey.tokens.clone() {
        let r: Result<InviteInfo, VaultError> =
            d.query(Principal::anonymous(), "get_invite_info", (token,))?;
        let i = ok("get_invite_info", r)?;
        expect_eq("status", &i.status, &InviteStatus::Open)?;
        expect_eq("inviter", i.inviter, d.alice)?;
        lines.push(format!(
            "{:<5} {:?} of \"{}\" invited by alice, {:?} until {}",
            i.name,
            i.role,
            i.vault_name,
            i.status,
            day(i.expires_at)
        ));
    }
    let r: Result<InviteInfo, VaultError> = d.query(
        Principal::anonymous(),
        "get_invite_info",
        ("not-a-token".to_string(),),
    )?;
    expect_eq(
        "unknown token",
        r.clone().err(),
        Some(VaultError::TokenInvalid),
    )?;
    lines.push("an unknown token -> TokenInvalid".into());
    Ok(lines)
}

fn claims(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let tokens = d.journey.tokens.clone();
    ensure!(tokens.len() == 3, "expected 3 invite tokens");
    let mut lines = vec![];
    for (who, name, token) in [
        (d.bob, "bob", &tokens[0]),
        (d.carol, "carol", &tokens[1]),
        (d.dave, "dave", &tokens[2]),
    ] {
        let r: Result<MemberView, VaultError> = d.update(who, "claim_invite", (token.clone(),))?;
        let m = ok("claim_invite", r)?;
        lines.push(format!(
            "{name:<5} joined as {:?} member #{} (share index {})",
            m.role, m.member_id, m.share_index
        ));
        d.journey.members.push(m.member_id);
    }
    // Single use: dave cannot take bob's invite.
    let r: Result<MemberView, VaultError> =
        d.update(d.dave, "claim_invite", (tokens[0].clone(),))?;
    expect_eq(
        "a claimed token",
        r.err(),
        Some(VaultError::TokenAlreadyClaimed),
    )?;
    lines.push("dave with bob's token -> TokenAlreadyClaimed".into());
    let v: Result<VaultView, VaultError> = d.query(d.alice, "get_vault", (id,))?;
    let v = ok("get_vault", v)?;
    expect_eq("heirs", v.heir_count, 2)?;
    ensure!(v.witness_joined, "the witness has not joined");
    expect_eq("status", v.status, VaultStatus::NeedSetup)?;
    expect_eq(
        "missing",
        v.setup_missing.clone(),
        vec!["content".to_string()],
    )?;
    let r: Result<VaultView, VaultError> = d.query(d.bob, "get_vault", (id,))?;
    expect_eq(
        "bob's role",
        ok("get_vault as bob", r)?.my_role,
        VaultRole::Heir,
    )?;
    lines.push(format!(
        "vault {:?}: {} heirs + witness joined, still missing {:?}",
        v.status, v.heir_count, v.setup_missing
    ));
    Ok(lines)
}

/// Deterministic bytes standing in for client-side ciphertext.
fn ciphertext(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Uploads `payload` as the owner in the canister's chunk size, with a progress bar;
/// returns the item and the number of chunks.
fn upload(
    d: &mut Demo,
    kind: ItemKind,
    payload: &[u8],
    recipients: Option<Vec<u32>>,
    label: &str,
) -> Result<(ItemView, u32)> {
    upload_with_meta(
        d,
        kind,
        payload,
        ciphertext(96, payload.len() as u64),
        recipients,
        label,
    )
}

/// [`upload`] with the given `encrypted_meta`.
fn upload_with_meta(
    d: &mut Demo,
    kind: ItemKind,
    payload: &[u8],
    encrypted_meta: Vec<u8>,
    recipients: Option<Vec<u32>>,
    label: &str,
) -> Result<(ItemView, u32)> {
    let id = d.vault()?;
    let sha = Sha256::digest(payload).to_vec();
    let r: Result<UploadView, VaultError> = d.update(
        d.alice,
        "begin_upload",
        (BeginUploadArgs {
            vault_id: id,
            kind,
            size: payload.len() as u64,
            sha256: ByteBuf::from(sha.clone()),
            encrypted_meta: ByteBuf::from(encrypted_meta),
            recipients,
            replaces: None,
            idempotency_key: None,
        },),
    )?;
    let up = ok("begin_upload", r)?;
    let mut bar = ProgressBar::new(label, payload.len() as u64);
    let mut chunks = 0u32;
    for (i, chunk) in payload.chunks(up.chunk_bytes as usize).enumerate() {
        let r: Result<UploadView, VaultError> = d.update(
            d.alice,
            "upload_chunk",
            (up.upload_id, i as u32, ByteBuf::from(chunk.to_vec())),
        )?;
        let view = ok("upload_chunk", r)?;
        expect_eq("next index", view.next_index, i as u32 + 1)?;
        bar.inc(chunk.len() as u64);
        chunks += 1;
    }
    bar.finish();
    expect_eq("chunks", chunks, up.chunk_count)?;
    let r: Result<ItemView, VaultError> = d.update(d.alice, "finish_upload", (up.upload_id,))?;
    let item = ok("finish_upload", r)?;
    expect_eq("stored SHA-256", item.sha256.to_vec(), sha)?;
    Ok((item, chunks))
}

fn upload_file(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let payload = ciphertext(FILE_BYTES, 0x5eed);
    let (item, chunks) = upload(
        d,
        ItemKind::File,
        &payload,
        None,
        "  upload family-photos.tar",
    )?;
    let v: Result<VaultView, VaultError> = d.query(d.alice, "get_vault", (id,))?;
    let v = ok("get_vault", v)?;
    expect_eq("status", v.status, VaultStatus::SetupComplete)?;
    let lines = vec![
        format!(
            "begin_upload, {chunks} upload_chunk of up to {} KiB, finish_upload (the canister checks \
             size and SHA-256)",
            item.chunk_bytes / 1024
        ),
        format!(
            "item #{} {:?}, {} bytes, sha256 {}…, for every heir",
            item.item_id,
            item.kind,
            item.size,
            hex::encode(&item.sha256[..8])
        ),
        format!(
            "vault {:?} (rules, content, heir all there); {:.1} of {} MiB used",
            v.status,
            v.storage_used_bytes as f64 / 1048576.0,
            v.storage_limit_bytes / (1 << 20)
        ),
    ];
    d.journey.file = Some((item.item_id, payload));
    Ok(lines)
}

fn upload_letter(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let bob = *d
        .journey
        .members
        .first()
        .ok_or_else(|| anyhow!("bob has not joined"))?;
    // alice's client: the canister's vetKD public key, bob's identity, seal the letter.
    let r: Result<Page<MemberView>, VaultError> =
        d.query(d.alice, "list_members", (id, PageArgs::default()))?;
    let bob_share = ok("list_members", r)?
        .items
        .iter()
        .find(|m| m.member_id == bob)
        .map(|m| m.share_index)
        .ok_or_else(|| anyhow!("bob is not listed"))?;
    let r: Result<VetKdPublicKey, VaultError> = d.query(d.alice, "get_vetkd_public_key", ())?;
    let pk = ok("get_vetkd_public_key", r)?;
    let dpk = ic_vetkeys::DerivedPublicKey::deserialize(&pk.public_key)
        .map_err(|e| anyhow!("public key: {e:?}"))?;
    let plain = LETTER.as_bytes().to_vec();
    let sealed = client::seal_item(
        &dpk,
        id,
        &[bob_share, 0],
        &plain,
        b"letter-to-bob.txt",
        "demo",
    );
    let payload = sealed.payload.clone();
    let (item, _) = upload_with_meta(
        d,
        ItemKind::Letter,
        &payload,
        sealed.envelope.encode(),
        Some(vec![bob]),
        "  upload letter",
    )?;
    expect_eq("recipients", item.recipients.clone(), Some(vec![bob]))?;
    d.journey.letter_plain = plain.clone();
    d.journey.bob_share = bob_share;
    let v: Result<VaultView, VaultError> = d.query(d.alice, "get_vault", (id,))?;
    let v = ok("get_vault", v)?;
    expect_eq("status", v.status, VaultStatus::SetupComplete)?;
    expect_eq("items", v.item_count, 2)?;
    d.journey.letter = Some((item.item_id, payload));
    Ok(vec![
        format!(
            "alice's client: {} plaintext bytes -> AES-256-GCM under a random data key; the key \
             wrapped by IBE to bob (vault {id} ‖ share {bob_share}) and to alice (share 0) with \
             the vetKD public key ({}, {}…)",
            plain.len(),
            pk.key_name,
            hex::encode(&pk.public_key[..8])
        ),
        format!(
            "item #{} {:?}, {} bytes of ciphertext, addressed to member #{bob} (bob) only",
            item.item_id, item.kind, item.size
        ),
        format!("vault {:?}, {} items", v.status, v.item_count),
    ])
}

fn finalize(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let v: Result<VaultView, VaultError> = d.update(d.alice, "finalize_setup", (id,))?;
    let v = ok("finalize_setup", v)?;
    expect_eq("status", v.status, VaultStatus::Active)?;
    Ok(vec![format!(
        "vault {:?} since {}; the owner's last activity {}",
        v.status,
        day(v.activated_at.unwrap_or(0)),
        day(v.last_owner_activity)
    )])
}

fn before_unlock(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let (file, _) = d
        .journey
        .file
        .clone()
        .ok_or_else(|| anyhow!("no file uploaded"))?;
    let r: Result<DownloadTicket, VaultError> = d.update(d.bob, "request_download", (id, file))?;
    expect_eq(
        "bob's request_download",
        r.clone().err(),
        Some(VaultError::NotAuthorized),
    )?;
    let r: Result<UnlockStatus, VaultError> = d.update(d.bob, "approve_unlock", (id,))?;
    let opens = match r {
        Err(VaultError::UnlockConditionsNotMet {
            time_gate_opens_at: Some(t),
            ..
        }) => t,
        other => bail!("bob's early approval: expected UnlockConditionsNotMet, got {other:?}"),
    };
    let tsk = client::transport_key("demo: bob's browser");
    let r: Result<EncryptedVetKeyReply, VaultError> = d.update(
        d.bob,
        "derive_vetkey",
        (DeriveVetKeyArgs {
            vault_id: id,
            share_index: d.journey.bob_share,
            transport_public_key: ByteBuf::from(tsk.public_key()),
        },),
    )?;
    expect_eq(
        "bob's derive_vetkey",
        r.err(),
        Some(VaultError::InvalidState {
            current: VaultStatus::Active,
        }),
    )?;
    let s = d.unlock_status(d.bob)?;
    ensure!(!s.time_gate.holds, "the time gate already holds");
    expect_eq("opens at", s.time_gate.opens_at, Some(opens))?;
    expect_eq("approvals", (s.heir_approvals, s.heirs_required), (0, 1))?;
    Ok(vec![
        "bob request_download -> NotAuthorized (heirs download only once Unlockable)".into(),
        "bob derive_vetkey     -> InvalidState { Active }: no key before the unlock".into(),
        format!(
            "bob approve_unlock   -> UnlockConditionsNotMet, opens {}",
            day(opens)
        ),
        format!(
            "get_unlock_status (bob): {:?}, time gate: {}; heirs {}/{}, witness needed {}",
            s.status, s.time_gate.reason, s.heir_approvals, s.heirs_required, s.witness_required
        ),
    ])
}

fn inactivity(d: &mut Demo) -> StepResult {
    let before = d.host.now();
    let ticks = d.advance_days(181);
    expect_eq("timer executions", ticks, 181)?;
    let s = d.unlock_status(d.carol)?;
    ensure!(
        s.time_gate.holds,
        "the time gate does not hold: {}",
        s.time_gate.reason
    );
    expect_eq("status", s.status, VaultStatus::Active)?;
    ensure!(!s.quorum_met, "the quorum is met without approvals");
    let m: Result<Metrics, VaultError> = d.query(d.admin, "get_metrics", ())?;
    let m = ok("get_metrics", m)?;
    ensure!(
        m.scheduler.runs >= 181,
        "scheduler runs: {}",
        m.scheduler.runs
    );
    Ok(vec![
        format!(
            "clock {} -> {}, {ticks} maintenance timer ticks",
            day(before),
            day(d.host.now())
        ),
        format!(
            "get_unlock_status (carol): {:?}, time gate holds ({}), quorum not met yet",
            s.status, s.time_gate.reason
        ),
    ])
}

fn trigger_unlock(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let r: Result<UnlockStatus, VaultError> = d.update(d.bob, "trigger_unlock", (id,))?;
    let s = ok("trigger_unlock", r)?;
    let req = s
        .request
        .clone()
        .ok_or_else(|| anyhow!("trigger_unlock opened no request"))?;
    expect_eq("opened by", req.opened_by, d.bob)?;
    expect_eq("status", s.status, VaultStatus::Active)?;
    let seen = d.unlock_status(d.alice)?;
    ensure!(seen.request.is_some(), "the owner does not see the request");
    Ok(vec![
        format!(
            "request by member #{} at {}, its own wait ends {}",
            req.member_id,
            day(req.opened_at),
            day(req.wait_until)
        ),
        "the owner sees it too (any owner activity would cancel it)".into(),
    ])
}

fn approvals(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let r: Result<UnlockStatus, VaultError> = d.update(d.bob, "approve_unlock", (id,))?;
    let s = ok("approve_unlock (bob)", r)?;
    expect_eq(
        "heir approvals",
        (s.heir_approvals, s.heirs_required),
        (1, 1),
    )?;
    expect_eq("status after bob", s.status, VaultStatus::Active)?;
    ensure!(!s.witness_approved, "witness approved already");
    let r: Result<UnlockStatus, VaultError> = d.update(d.dave, "approve_unlock", (id,))?;
    let s2 = ok("approve_unlock (dave)", r)?;
    expect_eq("status after dave", s2.status, VaultStatus::Unlockable)?;
    ensure!(s2.quorum_met && s2.witness_approved, "quorum not met");
    let v: Result<VaultView, VaultError> = d.query(d.alice, "get_vault", (id,))?;
    let v = ok("get_vault", v)?;
    expect_eq("vault status", v.status, VaultStatus::Unlockable)?;
    expect_eq(
        "access until",
        v.access_until,
        v.unlocked_at.map(|t| t + 90 * DAY_NS),
    )?;
    Ok(vec![
        format!(
            "bob  approves -> heirs {}/{}, witness pending: {:?}",
            s.heir_approvals, s.heirs_required, s.status
        ),
        format!(
            "dave approves -> quorum met: {:?} at {}",
            s2.status,
            day(s2.unlocked_at.unwrap_or(0))
        ),
        format!(
            "heirs have access until {} (90 days)",
            day(v.access_until.unwrap_or(0))
        ),
    ])
}

/// Downloads `item` as `who`: every chunk, checked against the ticket's SHA-256.
fn download(d: &mut Demo, who: Principal, item: u64) -> Result<(DownloadTicket, Vec<u8>)> {
    let id = d.vault()?;
    let r: Result<DownloadTicket, VaultError> = d.update(who, "request_download", (id, item))?;
    let t = ok("request_download", r)?;
    let mut bytes = Vec::with_capacity(t.size as usize);
    let mut bar = ProgressBar::new("  download", t.size);
    for i in 0..t.chunk_count {
        let r: Result<ByteBuf, VaultError> =
            d.query(who, "get_download_chunk", (t.ticket_id, i))?;
        let chunk = ok("get_download_chunk", r)?;
        bar.inc(chunk.len() as u64);
        bytes.extend_from_slice(&chunk);
    }
    bar.finish();
    expect_eq("downloaded size", bytes.len() as u64, t.size)?;
    expect_eq(
        "SHA-256 of the downloaded bytes",
        Sha256::digest(&bytes).to_vec(),
        t.sha256.to_vec(),
    )?;
    Ok((t, bytes))
}

fn heir_download(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let (file, file_bytes) = d.journey.file.clone().ok_or_else(|| anyhow!("no file"))?;
    let (letter, letter_bytes) = d
        .journey
        .letter
        .clone()
        .ok_or_else(|| anyhow!("no letter"))?;
    let (t, got) = download(d, d.bob, file)?;
    ensure!(
        got == file_bytes,
        "bob's file differs from what alice uploaded"
    );
    let (_, got_letter) = download(d, d.bob, letter)?;
    ensure!(got_letter == letter_bytes, "bob's letter differs");
    let r: Result<Page<ItemView>, VaultError> =
        d.query(d.carol, "list_items", (id, PageArgs::default()))?;
    let carol_items: Vec<u64> = ok("list_items (carol)", r)?
        .items
        .iter()
        .map(|i| i.item_id)
        .collect();
    expect_eq("carol's items", carol_items, vec![file])?;
    let r: Result<DownloadTicket, VaultError> =
        d.update(d.carol, "request_download", (id, letter))?;
    ensure!(r.is_err(), "carol downloaded bob's letter");
    let carol_err = r.unwrap_err();
    let r: Result<DownloadTicket, VaultError> = d.update(d.dave, "request_download", (id, file))?;
    expect_eq(
        "dave's request_download",
        r.err(),
        Some(VaultError::NotAuthorized),
    )?;
    Ok(vec![
        format!(
            "bob: ticket #{}, {} chunks, {} bytes; SHA-256 {}… equals alice's upload",
            t.ticket_id,
            t.chunk_count,
            t.size,
            hex::encode(&t.sha256[..8])
        ),
        format!(
            "bob: the letter addressed to him, {} bytes, identical",
            got_letter.len()
        ),
        format!("carol sees only the file (item #{file}); bob's letter -> {carol_err:?}"),
        "dave (witness) -> NotAuthorized: witnesses never see content".into(),
    ])
}

/// The letter alice writes to bob (sealed in her client; the canister sees ciphertext).
const LETTER: &str = "Dear Bob,\nthe key to the boat is with the notary; the photos are in the \
                      attached archive. Look after your sister.\nLove, Alice";

fn heir_decrypts(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let (letter, _) = d
        .journey
        .letter
        .clone()
        .ok_or_else(|| anyhow!("no letter"))?;
    let share = d.journey.bob_share;
    let r: Result<VetKdPublicKey, VaultError> = d.query(d.bob, "get_vetkd_public_key", ())?;
    let dpk = ic_vetkeys::DerivedPublicKey::deserialize(&ok("get_vetkd_public_key", r)?.public_key)
        .map_err(|e| anyhow!("public key: {e:?}"))?;
    let derive = |d: &mut Demo, who: Principal, share: u8, tsk: &ic_vetkeys::TransportSecretKey| {
        d.update::<_, Result<EncryptedVetKeyReply, VaultError>>(
            who,
            "derive_vetkey",
            (DeriveVetKeyArgs {
                vault_id: id,
                share_index: share,
                transport_public_key: ByteBuf::from(tsk.public_key()),
            },),
        )
    };
    // bob's client: a transport key, his vetKey through the canister, verified.
    let tsk = client::transport_key("demo: bob's browser");
    let started = std::time::Instant::now();
    let reply = ok("derive_vetkey (bob)", derive(d, d.bob, share, &tsk)?)?;
    let took = started.elapsed();
    let vetkey = client::open_vetkey(&tsk, &dpk, &reply.identity, &reply.encrypted_key)
        .map_err(|e| anyhow!("bob's vetKey does not verify: {e}"))?;
    let (_, payload) = download(d, d.bob, letter)?;
    let r: Result<Page<ItemView>, VaultError> =
        d.query(d.bob, "list_items", (id, PageArgs::default()))?;
    let meta = ok("list_items (bob)", r)?
        .items
        .into_iter()
        .find(|i| i.item_id == letter)
        .ok_or_else(|| anyhow!("bob does not see the letter"))?
        .encrypted_meta
        .into_vec();
    let envelope = client::Envelope::decode(&meta).map_err(|e| anyhow!(e))?;
    let data_key = client::unwrap_key(&vetkey, &envelope, share).map_err(|e| anyhow!(e))?;
    let plain = client::aes_decrypt(&data_key, &payload).map_err(|e| anyhow!(e))?;
    expect_eq("the decrypted letter", &plain, &d.journey.letter_plain)?;
    let file_name =
        client::aes_decrypt(&data_key, &envelope.sealed_meta).map_err(|e| anyhow!(e))?;
    // carol: her vetKey does not open bob's wrap, and she cannot ask for bob's identity.
    let r: Result<Page<MemberView>, VaultError> =
        d.query(d.alice, "list_members", (id, PageArgs::default()))?;
    let members = ok("list_members", r)?.items;
    let carol_share = members
        .iter()
        .find(|m| Some(m.member_id) == d.journey.members.get(1).copied())
        .map(|m| m.share_index)
        .ok_or_else(|| anyhow!("carol is not listed"))?;
    let tc = client::transport_key("demo: carol's browser");
    let carol = ok(
        "derive_vetkey (carol)",
        derive(d, d.carol, carol_share, &tc)?,
    )?;
    let carol_key = client::open_vetkey(&tc, &dpk, &carol.identity, &carol.encrypted_key)
        .map_err(|e| anyhow!(e))?;
    ensure!(
        client::unwrap_key(&carol_key, &envelope, share).is_err(),
        "carol's vetKey opened bob's wrap"
    );
    let r = derive(d, d.carol, share, &tc)?;
    expect_eq(
        "carol asks for bob's identity",
        r.err(),
        Some(VaultError::NotAuthorized),
    )?;
    let r = derive(d, d.dave, share, &tc)?;
    expect_eq("dave (witness)", r.err(), Some(VaultError::NotAuthorized))?;
    let first_line = String::from_utf8_lossy(&plain)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    Ok(vec![
        format!(
            "bob's client: transport key {}…; derive_vetkey(vault {id}, share {share}) -> {} \
             bytes encrypted for it ({} ms on this host), verified against the vetKD public key",
            hex::encode(&tsk.public_key()[..6]),
            reply.encrypted_key.len(),
            took.as_millis()
        ),
        format!(
            "unwrapped the data key from the letter's envelope, decrypted {} bytes of \
             ciphertext: {:?} ({:?}, …) — identical to what alice wrote",
            payload.len(),
            String::from_utf8_lossy(&file_name),
            first_line
        ),
        format!(
            "carol derives her own vetKey (share {carol_share}): it does not open bob's wrap; \
             asking for bob's identity -> NotAuthorized"
        ),
        "dave (witness) -> NotAuthorized: no key, ever".into(),
    ])
}

fn audit_tail(d: &mut Demo) -> StepResult {
    let id = d.vault()?;
    let mut events: Vec<AuditEventView> = vec![];
    let mut cursor = None;
    loop {
        let r: Result<Page<AuditEventView>, VaultError> = d.query(
            d.alice,
            "get_audit_log",
            (
                id,
                PageArgs {
                    start_after: cursor,
                    limit: Some(100),
                },
            ),
        )?;
        let p = ok("get_audit_log", r)?;
        events.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    for want in [
        "payment.confirmed",
        "member.joined",
        "content.item_added",
        "unlock.requested",
        "unlock.approved",
        "unlock.completed",
        "content.download_requested",
    ] {
        ensure!(
            events.iter().any(|e| e.action == want),
            "no {want} event in the audit log"
        );
    }
    let head: Result<AuditHead, VaultError> = d.query(d.alice, "get_audit_head", (id,))?;
    let head = ok("get_audit_head", head)?;
    let last = events.last().ok_or_else(|| anyhow!("empty audit log"))?;
    expect_eq("head hash", &head.head_hash, &last.hash)?;
    let names = [
        (d.alice, "alice"),
        (d.bob, "bob"),
        (d.carol, "carol"),
        (d.dave, "dave"),
        (d.host.canister_id(), "canister"),
    ];
    let who = |p: Principal| {
        names
            .iter()
            .find(|(q, _)| *q == p)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| p.to_text())
    };
    let mut lines = vec![format!("{} events; the last 12:", events.len())];
    for e in events.iter().rev().take(12).rev() {
        lines.push(format!(
            "#{:<3} {} {:<6} {:<27} {}",
            e.seq,
            &day(e.at)[..10],
            who(e.actor),
            e.action,
            e.details.chars().take(60).collect::<String>()
        ));
    }
    lines.push(format!(
        "head: next seq {}, hash {}… = the last event's",
        head.next_seq,
        hex::encode(&head.head_hash[..6])
    ));
    Ok(lines)
}

// ---------------------------------------------------------------- runner

fn group(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().rev().collect();
    let parts: Vec<String> = digits
        .chunks(3)
        .map(|c| c.iter().rev().collect())
        .rev()
        .collect();
    parts.join("_")
}

/// `demo [--wasm PATH]`: runs [`steps`] on a fresh state directory.
pub fn run(ctx: &mut Context, mut args: Args) -> Result<()> {
    let wasm_path = args
        .flag("--wasm")?
        .unwrap_or_else(|| DEFAULT_WASM.to_string());
    args.finish()?;
    if ctx.host.is_installed() {
        bail!(
            "the state directory {} already has a canister; run the demo with a fresh \
             --state DIR",
            ctx.state_dir.display()
        );
    }
    let wasm = std::fs::read(&wasm_path).with_context(|| {
        format!("reading the canister wasm {wasm_path} (build it with scripts/build.sh)")
    })?;
    for name in ["admin", "alice", "bob", "carol", "dave"] {
        ctx.identities.add(name)?;
    }
    let mut demo = Demo {
        host: &mut ctx.host,
        wasm,
        admin: principal_of("admin"),
        alice: principal_of("alice"),
        bob: principal_of("bob"),
        carol: principal_of("carol"),
        dave: principal_of("dave"),
        vault_id: None,
        journey: Journey::default(),
        instructions: 0,
        messages: 0,
    };
    let steps = steps();
    println!("LiVault demo: the real canister wasm ({wasm_path}) on the embedded IC host\n");
    let mut total = 0u64;
    for (i, step) in steps.iter().enumerate() {
        demo.instructions = 0;
        demo.messages = 0;
        let result = (step.run)(&mut demo);
        let head = format!("[{:>2}/{}] {}", i + 1, steps.len(), step.name);
        match result {
            Ok(lines) => {
                println!(
                    "{head:<58} ok {:>12} instr in {} msg",
                    group(demo.instructions),
                    demo.messages
                );
                for l in lines {
                    println!("        {l}");
                }
                total += demo.instructions;
            }
            Err(e) => {
                println!("{head:<60} FAILED");
                return Err(e.context(format!("demo step {} \"{}\" failed", i + 1, step.name)));
            }
        }
    }
    println!(
        "\nAll {} steps passed ({} instructions in all). State saved in {}; continue with e.g.\n  \
         livault-local --state {} call --as alice get_vault '({})'",
        steps.len(),
        group(total),
        ctx.state_dir.display(),
        ctx.state_dir.display(),
        demo.vault_id.unwrap_or(1)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_digits_like_candid() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1_000");
        assert_eq!(group(88_251_970), "88_251_970");
    }

    #[test]
    fn icp_amounts() {
        assert_eq!(icp(715_000_000), "7.15 ICP");
        assert_eq!(icp(6 * E8S), "6 ICP");
        assert_eq!(icp(1), "0.00000001 ICP");
    }
}
