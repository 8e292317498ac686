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
//! `alice`, `bob` exist).
//!
//! ## Adding steps
//! Later features add their steps to [`steps`] (one `Step::new(...)` each), in journey
//! order, after "Create a vault":
//! * payment via the ledger model: `ledger fund` alice, open the payment session, transfer,
//!   confirm → NeedSetup (balance of the treasury checked);
//! * invites and claims: invite an heir and the witness, claim as `bob` → heir joined;
//! * content: upload an encrypted item in chunks with a progress bar
//!   ([`crate::progress`]), download it back and compare hashes; finalize_setup → Active;
//! * unlock: advance time past the rules, unlock request / approvals → Unlockable, heir
//!   download;
//! * scheduler: advance time past `access_until` / draft TTL and show the timers moving
//!   vaults to Expired / Deleted.

use super::identity::principal_of;
use super::{Args, Context};
use crate::host::Host;
use anyhow::{anyhow, bail, ensure, Context as _, Result};
use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use livault_backend::domain::config::{InitArgs, LiVaultArgs};
use livault_backend::domain::error::VaultError;
use livault_backend::domain::types::*;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Default path of the canister wasm (built by `scripts/build.sh`).
pub const DEFAULT_WASM: &str = "target/livault/livault_backend.wasm";

const E8S: u64 = 100_000_000;
const DAY_NS: u64 = 86_400 * 1_000_000_000;

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
    /// A stranger (later: an heir).
    pub bob: Principal,
    /// The vault created by "Create a vault".
    pub vault_id: Option<VaultId>,
    /// Instructions used by the messages of the current step.
    instructions: u64,
    /// Messages executed in the current step.
    messages: u64,
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
        Step::new("Upgrade keeps every answer", upgrade),
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
        let bytes = candid::encode_args(args)?;
        let reply = self
            .host
            .update(who, method, bytes)
            .map_err(|r| anyhow!("{method} was rejected: {:?}: {}", r.code, r.message))?;
        self.instructions += reply.total_instructions;
        self.messages += 1;
        candid::decode_one(&reply.bytes).with_context(|| format!("decoding {method}'s reply"))
    }

    /// Typed query call; a system reject is an error.
    pub fn query<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        who: Principal,
        method: &str,
        args: A,
    ) -> Result<R> {
        let bytes = candid::encode_args(args)?;
        let reply = self
            .host
            .query(who, method, bytes)
            .map_err(|r| anyhow!("{method} was rejected: {:?}: {}", r.code, r.message))?;
        self.instructions += reply.total_instructions;
        self.messages += 1;
        candid::decode_one(&reply.bytes).with_context(|| format!("decoding {method}'s reply"))
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
        ledger_canister_id: Some(crate::ledger_principal()),
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
            "ledger = {} (the host's ICP ledger model)",
            crate::LEDGER_ID
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
    d.host.advance_time(Duration::from_secs(3 * 86_400));
    let now = d.host.now();
    ensure!(now >= before + 3 * DAY_NS, "the clock did not advance");
    let v: Result<VaultView, VaultError> = d.query(d.alice, "get_vault", (id,))?;
    let v = ok("get_vault", v)?;
    expect_eq("status", v.status, VaultStatus::Draft)?;
    Ok(vec![
        format!("clock {} -> {}", day(before), day(now)),
        format!(
            "vault still {:?} (an unpaid draft is purged after 7 days once the scheduler lands)",
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
    let drafts = m
        .vaults_by_status
        .iter()
        .find(|c| c.status == VaultStatus::Draft)
        .map(|c| c.count);
    expect_eq("drafts", drafts, Some(1))?;
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
    for name in ["admin", "alice", "bob"] {
        ctx.identities.add(name)?;
    }
    let mut demo = Demo {
        host: &mut ctx.host,
        wasm,
        admin: principal_of("admin"),
        alice: principal_of("alice"),
        bob: principal_of("bob"),
        vault_id: None,
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
