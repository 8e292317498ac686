//! A plain model of the SPEC (docs: `docs/model-run.md`), for the randomized model run.
//!
//! Every rule here is written from the SPEC (and, where the SPEC is silent, from the decisions
//! recorded in `docs/`), never by calling canister code: the canister's public Candid types are
//! reused for arguments and answers only. Each operation is a *check-and-apply* function: it
//! predicts the canister's answer from the model state, compares it with the answer the real
//! wasm gave (`Err(String)` describes a disagreement), and applies the effect to the model.
//! Fresh identifiers (vault, item, upload, session, invite, member, ticket ids) are learnt from
//! the answer and checked to be fresh.
//!
//! The model predicts the SPEC only; where main's documented decisions (docs/payments.md,
//! docs/decisions.md "Hardening (issue #12)") refine it, those are modelled.

use std::collections::{BTreeMap, BTreeSet};

use candid::Principal;
use livault_backend::domain::error::VaultError;
use livault_backend::model::config::{Durations, Limits, Pricing};
use livault_backend::model::member_types::{
    InviteCreated, InviteInfo, InviteStatus, InviteView, MemberView, Relation, TimeGateView,
    UnlockRequestView, UnlockStatus,
};
use livault_backend::model::payments::{
    BillingEntry, PaymentPurpose, PaymentReceipt, PaymentSession, PaymentSessionStatus,
};
use livault_backend::model::records::MemberRole;
use livault_backend::model::types::*;
use local_replica::AccountId;
use sha2::{Digest, Sha256};

pub const SEC: u64 = 1_000_000_000;
pub const HOUR: u64 = 3600 * SEC;
pub const DAY: u64 = 86_400 * SEC;
/// ICP ledger fee (e8s).
pub const FEE: u64 = 10_000;
/// Rate limit (SPEC §13): bucket capacity and refill period.
pub const RATE_CAPACITY: u64 = 20;
/// Failed unlock attempts per principal and vault per hour (SPEC §4).
pub const MAX_FAILED_PER_HOUR: usize = 5;
/// Open uploads per vault (documented in the `.did`).
pub const MAX_OPEN_UPLOADS: usize = 8;
/// Share indices per vault (SPEC §7: 1..=255).
pub const MAX_SHARE_INDEX: u8 = 255;
/// The scheduler checks an underpaid session hourly until this long after its expiry
/// (docs/payments.md, "The scheduler's checks").
pub const SESSION_POLL_AFTER_EXPIRY: u64 = DAY;
/// An unpaid session is checked this long after it was (re)opened, and at its expiry.
pub const UNPAID_CHECK_OFFSETS: [u64; 2] = [2 * 60 * SEC, 10 * 60 * SEC];
/// Interval of the checks of an underpaid session.
pub const UNDERPAID_CHECK_INTERVAL: u64 = HOUR;
/// Most payment checks one tick runs (docs/payments.md).
pub const MAX_CHECKS_PER_TICK: usize = 10;
/// Most payment sessions one vault may have (docs/payments.md, "Bound").
pub const MAX_SESSIONS_PER_VAULT: usize = 64;
/// Newest sessions of a vault looked at for reuse (docs/payments.md, "Reuse").
pub const REUSE_SCAN: usize = 50;

/// The configuration the canister was installed with (durations, prices, limits).
#[derive(Clone, Debug)]
pub struct Cfg {
    pub d: Durations,
    pub pricing: Pricing,
    pub limits: Limits,
}

impl Cfg {
    fn days(d: impl Into<u64>) -> u64 {
        d.into() * DAY
    }
}

/// One expected audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    pub action: &'static str,
    pub actor: Principal,
    pub at: u64,
    /// The details must start with this (when set).
    pub details_prefix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InviteState {
    Open,
    Revoked,
    Claimed { by: Principal, member_id: u32 },
}

#[derive(Clone, Debug)]
pub struct MInvite {
    pub id: u64,
    pub role: MemberRole,
    pub name: String,
    pub relation: Relation,
    pub email_hint: Option<String>,
    pub can_trigger: bool,
    pub count_approver: bool,
    pub share_index: u8,
    pub created_at: u64,
    pub expires_at: u64,
    pub state: InviteState,
    pub replaced_by: Option<u64>,
    pub token: String,
}

#[derive(Clone, Debug)]
pub struct MMember {
    pub id: u32,
    pub principal: Principal,
    pub role: MemberRole,
    pub name: String,
    pub relation: Relation,
    pub email_hint: Option<String>,
    pub share_index: u8,
    pub joined_at: u64,
    pub can_trigger: bool,
    pub count_approver: bool,
}

#[derive(Clone, Debug)]
pub struct MItem {
    pub id: u64,
    pub kind: ItemKind,
    pub size: u64,
    pub sha: Vec<u8>,
    pub meta: Vec<u8>,
    pub recipients: Option<Vec<u32>>,
    pub chunk_bytes: u32,
    pub created_at: u64,
    pub updated_at: u64,
    pub version: u32,
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct MUpload {
    pub id: u64,
    pub vault: VaultId,
    pub owner: Principal,
    pub kind: ItemKind,
    pub size: u64,
    pub sha: Vec<u8>,
    pub meta: Vec<u8>,
    pub recipients: Option<Vec<u32>>,
    pub replaces: Option<u64>,
    pub chunk_bytes: u32,
    pub received: Vec<u8>,
    pub next_index: u32,
    pub last_activity: u64,
    pub idem: Option<String>,
}

#[derive(Clone, Debug)]
pub struct MTicket {
    pub id: u64,
    pub vault: VaultId,
    pub item: u64,
    pub holder: Principal,
    pub expires_at: u64,
    pub chunk_count: u32,
    pub chunk_bytes: u32,
    /// The payload the ticket was issued for, and the item version it belongs to.
    pub payload: Vec<u8>,
    pub version: u32,
}

#[derive(Clone, Debug)]
pub struct MVault {
    pub id: VaultId,
    pub owner: Principal,
    pub name: String,
    pub status: VaultStatus,
    pub plan: PlanSelection,
    pub owner_age: u8,
    pub price_e8s: u64,
    pub rules: Option<UnlockRules>,
    pub post_unlock_days: u16,
    pub audit_retention_days: u16,
    /// When the retention was last set (events older than a shortened retention go at the
    /// first tick after the change).
    pub retention_set_at: u64,
    pub created_at: u64,
    pub status_changed_at: u64,
    pub paid_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub activated_at: Option<u64>,
    pub unlocked_at: Option<u64>,
    pub access_until: Option<u64>,
    pub deleted_at: Option<u64>,
    pub last_owner_activity: u64,
    pub items: BTreeMap<u64, MItem>,
    pub members: BTreeMap<u32, MMember>,
    pub invites: BTreeMap<u64, MInvite>,
    pub shares_used: BTreeSet<u8>,
    /// (opened_by, member id, opened_at)
    pub request: Option<(Principal, u32, u64)>,
    /// (member id, at), in approval order.
    pub approvals: Vec<(u32, u64)>,
    /// (principal, at) of failed unlock attempts within the last hour (pruned on append).
    pub failed: Vec<(Principal, u64)>,
    pub events: Vec<Ev>,
    /// Renewals applied (for the late-session rules of SPEC §6).
    pub renewals: u32,
    /// Invite tokens of a tombstone (they must be unknown now).
    pub dead_tokens: Vec<String>,
}

impl MVault {
    pub fn heir_count(&self) -> u32 {
        self.members
            .values()
            .filter(|m| m.role == MemberRole::Heir)
            .count() as u32
    }

    pub fn witness_joined(&self) -> bool {
        self.members.values().any(|m| m.role == MemberRole::Witness)
    }

    pub fn committed(&self) -> u64 {
        self.items.values().map(|i| i.size).sum()
    }

    /// The member with this principal.
    pub fn member_by_principal(&self, p: &Principal) -> Option<&MMember> {
        self.members.values().find(|m| m.principal == *p)
    }

    fn ev(&mut self, action: &'static str, actor: Principal, at: u64) {
        self.events.push(Ev {
            action,
            actor,
            at,
            details_prefix: None,
        });
    }

    fn ev_d(&mut self, action: &'static str, actor: Principal, at: u64, details: String) {
        self.events.push(Ev {
            action,
            actor,
            at,
            details_prefix: Some(details),
        });
    }
}

#[derive(Clone, Debug)]
pub struct MSession {
    pub id: u64,
    pub vault: VaultId,
    pub owner: Principal,
    pub purpose: PaymentPurpose,
    pub amount: u64,
    pub created_at: u64,
    pub expires_at: u64,
    pub status: PaymentSessionStatus,
    pub received: u64,
    pub billing_id: Option<u64>,
    pub closed_at: Option<u64>,
    pub refunded: u64,
    pub account: AccountId,
    /// The session's ICRC-1 textual account, as the canister gave it.
    pub icrc1: String,
    /// When the scheduler checks this session next (`None`: no longer checked).
    pub next_poll: Option<u64>,
    /// The vault's `expires_at` when the session opened: the validity period an Upgrade or
    /// Renew price was computed for (docs/payments.md, "Period").
    pub period: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MBilling {
    pub id: u64,
    pub session: u64,
    pub vault: VaultId,
    pub owner: Principal,
    pub purpose: PaymentPurpose,
    pub amount: u64,
    pub received: u64,
    pub treasury: u64,
    pub refund: u64,
    pub dust: u64,
    pub applied: bool,
    pub recorded_at: u64,
}

/// Result of a check: `Err` describes how the canister disagreed with the model.
pub type Check = Result<(), String>;

/// The whole model.
pub struct Model {
    pub cfg: Cfg,
    pub canister: Principal,
    pub admin: Principal,
    pub treasury: AccountId,
    pub paused: bool,
    pub vaults: BTreeMap<VaultId, MVault>,
    pub sessions: BTreeMap<u64, MSession>,
    pub uploads: BTreeMap<u64, MUpload>,
    pub tickets: BTreeMap<u64, MTicket>,
    pub downloads: BTreeMap<(Principal, u64), u32>,
    pub buckets: BTreeMap<Principal, (u64, u64)>,
    pub ledger: BTreeMap<AccountId, u64>,
    pub billing: Vec<MBilling>,
    pub idem_vaults: BTreeMap<(Principal, String), VaultId>,
    /// Unpaid drafts erased (deleted or purged): their ids are never reused.
    pub erased: BTreeSet<VaultId>,
    pub invites_issued: u64,
    pub invites_claimed: u64,
    /// Ids handed out so far (freshness checks).
    pub seen_items: BTreeSet<u64>,
    pub seen_uploads: BTreeSet<u64>,
    pub seen_tickets: BTreeSet<u64>,
    /// Time of the next scheduler tick (timer interval after install / the last upgrade).
    pub next_tick: u64,
    /// Ticks modelled (skipped ones included).
    pub ticks: u64,
}

fn system_mgmt() -> Principal {
    Principal::management_canister()
}

/// SHA-256 of `b`.
pub fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// Compares an error the canister returned with the one the model predicts. Free-text
/// reasons are not compared (the field, the numbers and the variant are).
pub fn same_error(actual: &VaultError, expected: &VaultError) -> bool {
    use VaultError::*;
    match (actual, expected) {
        (InvalidInput { field: a, .. }, InvalidInput { field: b, .. }) => a == b,
        (
            UnlockConditionsNotMet {
                time_gate_opens_at: a,
                ..
            },
            UnlockConditionsNotMet {
                time_gate_opens_at: b,
                ..
            },
        ) => a == b,
        (LedgerUnavailable { .. }, LedgerUnavailable { .. }) => true,
        (a, b) => a == b,
    }
}

/// `Ok` when `actual` is the error `expected`.
pub fn expect_err<T: std::fmt::Debug>(
    what: &str,
    actual: &Result<T, VaultError>,
    expected: &VaultError,
) -> Check {
    match actual {
        Err(e) if same_error(e, expected) => Ok(()),
        other => Err(format!(
            "{what}: the model expects Err({expected:?}), the canister answered {other:?}"
        )),
    }
}

fn ok_or_mismatch<'a, T: std::fmt::Debug>(
    what: &str,
    actual: &'a Result<T, VaultError>,
) -> Result<&'a T, String> {
    match actual {
        Ok(v) => Ok(v),
        Err(e) => Err(format!(
            "{what}: the model expects Ok, the canister answered Err({e:?})"
        )),
    }
}

fn eq<T: PartialEq + std::fmt::Debug>(what: &str, actual: T, expected: T) -> Check {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: canister {actual:?}, model {expected:?}"))
    }
}

fn invalid(field: &str) -> VaultError {
    VaultError::InvalidInput {
        field: field.to_string(),
        reason: String::new(),
    }
}

/// A display text as the SPEC bounds it: trimmed non-empty, ≤ `max` chars, no control chars.
fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// Whether `to` is an upgrade of `from` (SPEC §5: higher tier and/or more slots, never down).
pub fn is_upgrade(from: &PlanSelection, to: &PlanSelection) -> bool {
    to.tier >= from.tier
        && to.heir_slots >= from.heir_slots
        && (to.witness_slot || !from.witness_slot)
        && to != from
}

pub fn status_name(s: VaultStatus) -> &'static str {
    match s {
        VaultStatus::Draft => "Draft",
        VaultStatus::NeedSetup => "NeedSetup",
        VaultStatus::SetupComplete => "SetupComplete",
        VaultStatus::Active => "Active",
        VaultStatus::GraceMaster => "GraceMaster",
        VaultStatus::GraceHeir => "GraceHeir",
        VaultStatus::Unlockable => "Unlockable",
        VaultStatus::Expired => "Expired",
        VaultStatus::Deleted => "Deleted",
    }
}

impl Model {
    pub fn new(cfg: Cfg, canister: Principal, admin: Principal, now: u64) -> Model {
        let next_tick = now + cfg.d.timer_interval_secs * SEC;
        Model {
            cfg,
            canister,
            admin,
            treasury: AccountId::new(&admin, None),
            paused: false,
            vaults: BTreeMap::new(),
            sessions: BTreeMap::new(),
            uploads: BTreeMap::new(),
            tickets: BTreeMap::new(),
            downloads: BTreeMap::new(),
            buckets: BTreeMap::new(),
            ledger: BTreeMap::new(),
            billing: Vec::new(),
            idem_vaults: BTreeMap::new(),
            erased: BTreeSet::new(),
            invites_issued: 0,
            invites_claimed: 0,
            seen_items: BTreeSet::new(),
            seen_uploads: BTreeSet::new(),
            seen_tickets: BTreeSet::new(),
            next_tick,
            ticks: 0,
        }
    }

    pub fn interval(&self) -> u64 {
        self.cfg.d.timer_interval_secs * SEC
    }

    // ------------------------------------------------------------------ pricing (SPEC §5)

    /// `(storage + heirs·fee + witness·fee) · (100 + uplift) / 100`.
    pub fn price(&self, plan: &PlanSelection, age: u8) -> Result<u64, VaultError> {
        let tier = &self.cfg.pricing.tiers[plan.tier as usize];
        if plan.heir_slots == 0 || plan.heir_slots > tier.max_heirs {
            return Err(invalid("plan.heir_slots"));
        }
        if !(18..=120).contains(&age) {
            return Err(invalid("owner_age"));
        }
        let uplift: u64 = match age {
            0..=30 => 0,
            31..=40 => 5,
            41..=50 => 10,
            51..=60 => 15,
            61..=70 => 20,
            _ => 25,
        };
        let sum = tier.storage_price_e8s
            + u64::from(plan.heir_slots) * self.cfg.pricing.heir_slot_fee_e8s
            + if plan.witness_slot {
                self.cfg.pricing.witness_fee_e8s
            } else {
                0
            };
        Ok(sum * (100 + uplift) / 100)
    }

    /// The prorated upgrade price now: `(new − old) · remaining_days / validity_days`,
    /// rounded up; remaining days are whole days rounded up, at most the validity.
    pub fn upgrade_amount(
        &self,
        v: &MVault,
        to: &PlanSelection,
        now: u64,
    ) -> Result<u64, VaultError> {
        let new = self.price(to, v.owner_age)?;
        let old = self.price(&v.plan, v.owner_age)?;
        let validity = u64::from(self.cfg.d.validity_days);
        let left = v.expires_at.unwrap_or(0).saturating_sub(now);
        let remaining = left.div_ceil(DAY).min(validity);
        let diff = u128::from(new - old) * u128::from(remaining);
        Ok(diff.div_ceil(u128::from(validity)) as u64)
    }

    fn storage_limit(&self, v: &MVault) -> u64 {
        self.cfg.pricing.tiers[v.plan.tier as usize].storage_bytes
    }

    pub fn reserved(&self, vault: VaultId) -> u64 {
        self.uploads
            .values()
            .filter(|u| u.vault == vault)
            .map(|u| u.size)
            .sum()
    }

    // ------------------------------------------------------------------ time gate (SPEC §4)

    /// (holds, opens_at, unlock_after, inactivity deadline, request deadline)
    pub fn time_gate(&self, v: &MVault, now: u64) -> TimeGateView {
        let rules = v.rules.as_ref();
        let unlock_after = rules.and_then(|r| r.unlock_after);
        let inactivity = rules
            .and_then(|r| r.inactivity_days)
            .map(|d| v.last_owner_activity + Cfg::days(d));
        let request = match (rules, &v.request) {
            (Some(r), Some((_, _, at))) => Some(at + Cfg::days(r.request_wait_days)),
            _ => None,
        };
        let holds = v.status == VaultStatus::GraceHeir
            || unlock_after.is_some_and(|t| now >= t)
            || inactivity.is_some_and(|t| now >= t)
            || request.is_some_and(|t| now >= t);
        let opens_at = if holds {
            None
        } else {
            [unlock_after, inactivity, request]
                .into_iter()
                .flatten()
                .min()
        };
        TimeGateView {
            holds,
            reason: String::new(),
            opens_at,
            unlock_after,
            inactivity_deadline: inactivity,
            request_deadline: request,
        }
    }

    /// When the time gate started to hold (for ordering scheduler duties).
    fn gate_opened_at(&self, v: &MVault) -> u64 {
        let g = self.time_gate(v, u64::MAX);
        [g.unlock_after, g.inactivity_deadline, g.request_deadline]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(v.status_changed_at)
    }

    /// (heir approvals of current heirs, witness approved, quorum met)
    pub fn quorum(&self, v: &MVault) -> (u32, bool, bool) {
        let mut heirs = 0;
        let mut witness = false;
        for (mid, _) in &v.approvals {
            if let Some(m) = v.members.get(mid) {
                if m.count_approver {
                    match m.role {
                        MemberRole::Heir => heirs += 1,
                        MemberRole::Witness => witness = true,
                    }
                }
            }
        }
        let met = match &v.rules {
            Some(r) => heirs >= u32::from(r.required_heirs) && (!r.required_witness || witness),
            None => false,
        };
        (heirs, witness, met)
    }

    fn have_need(&self, v: &MVault) -> (u32, u32) {
        let (heirs, witness, _) = self.quorum(v);
        let r = v.rules.as_ref().expect("rules");
        let have =
            heirs.min(u32::from(r.required_heirs)) + u32::from(r.required_witness && witness);
        (
            have,
            u32::from(r.required_heirs) + u32::from(r.required_witness),
        )
    }

    /// Whether the vault unlocks now (Active: time gate and quorum; GraceHeir: quorum).
    fn unlock_due(&self, v: &MVault, now: u64) -> bool {
        let (_, _, met) = self.quorum(v);
        match v.status {
            VaultStatus::Active => met && self.time_gate(v, now).holds,
            VaultStatus::GraceHeir => met,
            _ => false,
        }
    }

    pub fn setup_missing(v: &MVault) -> Vec<String> {
        let mut m = Vec::new();
        if v.rules.is_none() {
            m.push("unlock_rules".to_string());
        }
        if v.items.is_empty() {
            m.push("content".to_string());
        }
        if v.heir_count() == 0 {
            m.push("heir".to_string());
        }
        m
    }

    // ------------------------------------------------------------------ state changes

    fn transition(v: &mut MVault, to: VaultStatus, now: u64, actor: Principal) {
        let from = v.status;
        v.status = to;
        v.status_changed_at = now;
        v.ev_d(
            "status.changed",
            actor,
            now,
            format!("{} -> {}", status_name(from), status_name(to)),
        );
    }

    fn refresh_setup(v: &mut MVault, now: u64, actor: Principal) {
        let complete = Self::setup_missing(v).is_empty();
        match (v.status, complete) {
            (VaultStatus::NeedSetup, true) => {
                Self::transition(v, VaultStatus::SetupComplete, now, actor)
            }
            (VaultStatus::SetupComplete, false) => {
                Self::transition(v, VaultStatus::NeedSetup, now, actor)
            }
            _ => {}
        }
    }

    /// Owner activity (SPEC §4): refreshes `last_owner_activity`; cancels an open request
    /// and clears approvals (logged when there was something to clear).
    fn touch(v: &mut MVault, now: u64) {
        v.last_owner_activity = now;
        if v.request.is_some() || !v.approvals.is_empty() {
            v.request = None;
            v.approvals.clear();
            let owner = v.owner;
            v.ev("unlock.request_cancelled", owner, now);
        }
    }

    fn apply_unlock(&self, v: &mut MVault, now: u64, actor: Principal) {
        Self::transition(v, VaultStatus::Unlockable, now, actor);
        v.unlocked_at = Some(now);
        v.access_until = Some(now + Cfg::days(v.post_unlock_days));
        v.request = None;
        v.ev("unlock.completed", actor, now);
    }

    /// Drops the vault's payload: items and open uploads (SPEC §3: "payload purged").
    fn purge_payload(&mut self, id: VaultId) {
        self.uploads.retain(|_, u| u.vault != id);
        if let Some(v) = self.vaults.get_mut(&id) {
            v.items.clear();
        }
    }

    /// Erases an unpaid draft (owner deletion or purge): nothing but its id stays used; its
    /// payment sessions stay (refund-only). Returns the record as it was.
    fn erase_draft(&mut self, id: VaultId) -> MVault {
        let v = self.vaults.remove(&id).expect("vault");
        self.idem_vaults.retain(|_, vid| *vid != id);
        self.erased.insert(id);
        v
    }

    /// Reduces the vault to its tombstone (SPEC §3).
    fn tombstone(&mut self, id: VaultId, now: u64) {
        self.purge_payload(id);
        let v = self.vaults.get_mut(&id).expect("vault");
        v.deleted_at = Some(now);
        v.name = String::new();
        v.rules = None;
        v.members.clear();
        let tokens: Vec<String> = v.invites.values().map(|i| i.token.clone()).collect();
        v.dead_tokens.extend(tokens);
        v.invites.clear();
        v.request = None;
        v.approvals.clear();
        v.failed.clear();
    }

    // ------------------------------------------------------------------ admission (SPEC §13)

    /// Admission of an update call by `who` at `now`: `Paused` (unless `allowed_paused`),
    /// then the rate limit (admins exempt). Consumes a token on success.
    pub fn admit(
        &mut self,
        who: Principal,
        now: u64,
        allowed_paused: bool,
    ) -> Result<(), VaultError> {
        if self.paused && !allowed_paused {
            return Err(VaultError::Paused);
        }
        if who == self.admin {
            return Ok(());
        }
        let (tokens, at) = self
            .buckets
            .get(&who)
            .copied()
            .unwrap_or((RATE_CAPACITY, now));
        let gained = (now - at) / SEC;
        let (tokens, at) = if tokens + gained.min(RATE_CAPACITY) >= RATE_CAPACITY {
            (RATE_CAPACITY, now)
        } else {
            (tokens + gained, at + gained * SEC)
        };
        if tokens == 0 {
            self.buckets.insert(who, (tokens, at));
            let wait = (at + SEC).saturating_sub(now);
            return Err(VaultError::RateLimited {
                retry_after_secs: wait.div_ceil(SEC).max(1),
            });
        }
        self.buckets.insert(who, (tokens - 1, at));
        Ok(())
    }

    /// Tokens `who` has left at `now` (for choosing steps).
    pub fn tokens_left(&self, who: Principal, now: u64) -> u64 {
        match self.buckets.get(&who) {
            None => RATE_CAPACITY,
            Some((t, at)) => (t + (now - at) / SEC).min(RATE_CAPACITY),
        }
    }

    /// After an upgrade: heap state (rate limits) is gone, timers are armed again.
    pub fn upgraded(&mut self, now: u64) {
        self.buckets.clear();
        self.next_tick = now + self.interval();
    }

    // ------------------------------------------------------------------ access

    fn role_of(&self, v: &MVault, who: &Principal) -> Option<VaultRole> {
        if v.owner == *who {
            return Some(VaultRole::Owner);
        }
        v.member_by_principal(who).map(|m| match m.role {
            MemberRole::Heir => VaultRole::Heir,
            MemberRole::Witness => VaultRole::Witness,
        })
    }

    fn load(&self, id: VaultId, who: &Principal) -> Result<(&MVault, VaultRole), VaultError> {
        let v = self.vaults.get(&id).ok_or(VaultError::NotFound)?;
        let role = self.role_of(v, who).ok_or(VaultError::NotAuthorized)?;
        Ok((v, role))
    }

    fn load_owner(
        &self,
        id: VaultId,
        who: &Principal,
        allowed: impl Fn(VaultStatus) -> bool,
    ) -> Result<&MVault, VaultError> {
        let (v, role) = self.load(id, who)?;
        if role != VaultRole::Owner {
            return Err(VaultError::NotAuthorized);
        }
        if !allowed(v.status) {
            return Err(VaultError::InvalidState { current: v.status });
        }
        Ok(v)
    }

    fn live_vaults_of(&self, who: &Principal) -> usize {
        self.vaults
            .values()
            .filter(|v| v.owner == *who && v.status != VaultStatus::Deleted)
            .count()
    }

    // ------------------------------------------------------------------ views

    pub fn vault_view(&self, v: &MVault, role: VaultRole) -> VaultView {
        VaultView {
            id: v.id,
            owner: v.owner,
            name: v.name.clone(),
            status: v.status,
            plan: v.plan,
            owner_age: v.owner_age,
            price_e8s: v.price_e8s,
            unlock_rules: v.rules.clone(),
            post_unlock_days: v.post_unlock_days,
            audit_retention_days: v.audit_retention_days,
            created_at: v.created_at,
            updated_at: 0,
            status_changed_at: v.status_changed_at,
            paid_at: v.paid_at,
            expires_at: v.expires_at,
            activated_at: v.activated_at,
            unlocked_at: v.unlocked_at,
            access_until: v.access_until,
            deleted_at: v.deleted_at,
            last_owner_activity: v.last_owner_activity,
            storage_limit_bytes: if v.status == VaultStatus::Deleted {
                0
            } else {
                self.storage_limit(v)
            },
            storage_used_bytes: v.committed() + self.reserved(v.id),
            item_count: v.items.len() as u32,
            heir_count: v.heir_count(),
            witness_joined: v.witness_joined(),
            setup_missing: if v.status == VaultStatus::NeedSetup {
                Self::setup_missing(v)
            } else {
                Vec::new()
            },
            my_role: role,
            // The run never names a refund account: refunds go to the owner's default one.
            refund_account: None,
        }
    }

    /// Compares a vault view (everything but `updated_at`).
    pub fn check_vault_view(
        &self,
        what: &str,
        actual: &VaultView,
        v: &MVault,
        role: VaultRole,
    ) -> Check {
        let mut expected = self.vault_view(v, role);
        expected.updated_at = actual.updated_at;
        if actual.updated_at < v.created_at {
            return Err(format!(
                "{what}: updated_at {} before created_at",
                actual.updated_at
            ));
        }
        if *actual != expected {
            return Err(format!(
                "{what}: vault {} view differs\n  canister: {actual:?}\n  model:    {expected:?}",
                v.id
            ));
        }
        Ok(())
    }

    pub fn unlock_status(&self, v: &MVault, viewer: &Principal, now: u64) -> UnlockStatus {
        let gate = self.time_gate(v, now);
        let (heirs, witness, met) = self.quorum(v);
        let member = v.member_by_principal(viewer);
        let wait = v.rules.as_ref().map_or(0, |r| r.request_wait_days);
        UnlockStatus {
            vault_id: v.id,
            status: v.status,
            rules: v.rules.clone(),
            time_gate: gate,
            request: v.request.map(|(by, mid, at)| UnlockRequestView {
                opened_by: by,
                member_id: mid,
                opened_at: at,
                wait_until: at + Cfg::days(wait),
            }),
            heir_approvals: heirs,
            heirs_required: v.rules.as_ref().map_or(0, |r| u32::from(r.required_heirs)),
            witness_approved: witness,
            witness_required: v.rules.as_ref().is_some_and(|r| r.required_witness),
            quorum_met: met,
            unlocked_at: v.unlocked_at,
            access_until: v.access_until,
            my_role: self.role_of(v, viewer).unwrap_or(VaultRole::Owner),
            can_trigger: member.is_some_and(|m| m.can_trigger),
            can_approve: member.is_some_and(|m| m.count_approver),
            my_approval_at: member.and_then(|m| {
                v.approvals
                    .iter()
                    .find(|(mid, _)| *mid == m.id)
                    .map(|(_, at)| *at)
            }),
            my_failed_attempts_last_hour: v
                .failed
                .iter()
                .filter(|(p, at)| p == viewer && at + HOUR > now)
                .count() as u32,
        }
    }

    /// Compares an unlock status (the free-text reason is not compared).
    pub fn check_unlock_status(
        &self,
        what: &str,
        actual: &UnlockStatus,
        v: &MVault,
        viewer: &Principal,
        now: u64,
    ) -> Check {
        let mut expected = self.unlock_status(v, viewer, now);
        expected.time_gate.reason = actual.time_gate.reason.clone();
        if *actual != expected {
            return Err(format!(
                "{what}: unlock status of vault {} differs\n  canister: {actual:?}\n  model:    {expected:?}",
                v.id
            ));
        }
        Ok(())
    }

    pub fn member_view(v: &MVault, m: &MMember, full: bool) -> MemberView {
        MemberView {
            member_id: m.id,
            role: m.role,
            name: m.name.clone(),
            relation: m.relation,
            share_index: m.share_index,
            joined_at: m.joined_at,
            can_trigger_unlock: m.can_trigger,
            count_as_approver: m.count_approver,
            approved_at: v
                .approvals
                .iter()
                .find(|(mid, _)| *mid == m.id)
                .map(|(_, at)| *at),
            member_principal: full.then_some(m.principal),
            email_hint: if full { m.email_hint.clone() } else { None },
        }
    }

    pub fn invite_status(i: &MInvite, now: u64) -> InviteStatus {
        match i.state {
            InviteState::Claimed { .. } => InviteStatus::Claimed,
            InviteState::Revoked => InviteStatus::Revoked,
            InviteState::Open if now >= i.expires_at => InviteStatus::Expired,
            InviteState::Open => InviteStatus::Open,
        }
    }

    pub fn invite_view(i: &MInvite, now: u64) -> InviteView {
        let (member_id, claimed_by) = match i.state {
            InviteState::Claimed { by, member_id } => (Some(member_id), Some(by)),
            _ => (None, None),
        };
        InviteView {
            invite_id: i.id,
            role: i.role,
            name: i.name.clone(),
            relation: i.relation,
            email_hint: i.email_hint.clone(),
            can_trigger_unlock: i.can_trigger,
            count_as_approver: i.count_approver,
            share_index: i.share_index,
            created_at: i.created_at,
            expires_at: i.expires_at,
            status: Self::invite_status(i, now),
            member_id,
            claimed_by,
            replaced_by: i.replaced_by,
        }
    }

    pub fn invite_info(v: &MVault, i: &MInvite, now: u64) -> InviteInfo {
        InviteInfo {
            vault_id: v.id,
            vault_name: v.name.clone(),
            inviter: v.owner,
            role: i.role,
            name: i.name.clone(),
            relation: i.relation,
            expires_at: i.expires_at,
            status: Self::invite_status(i, now),
        }
    }

    pub fn item_view(vault: VaultId, i: &MItem) -> ItemView {
        ItemView {
            item_id: i.id,
            vault_id: vault,
            kind: i.kind,
            size: i.size,
            sha256: serde_bytes::ByteBuf::from(i.sha.clone()),
            encrypted_meta: serde_bytes::ByteBuf::from(i.meta.clone()),
            recipients: i.recipients.clone(),
            chunk_count: i.size.div_ceil(u64::from(i.chunk_bytes)) as u32,
            chunk_bytes: i.chunk_bytes,
            created_at: i.created_at,
            updated_at: i.updated_at,
            version: i.version,
        }
    }

    pub fn upload_view(&self, u: &MUpload) -> UploadView {
        UploadView {
            upload_id: u.id,
            vault_id: u.vault,
            kind: u.kind,
            size: u.size,
            chunk_bytes: u.chunk_bytes,
            chunk_count: u.size.div_ceil(u64::from(u.chunk_bytes)) as u32,
            next_index: u.next_index,
            received_bytes: u.received.len() as u64,
            replaces: u.replaces,
            expires_at: u.last_activity + self.cfg.d.upload_idle_secs * SEC,
        }
    }

    /// Items `who` may list: the owner all, an heir of an Unlockable vault those addressed
    /// to it; others `NotAuthorized`.
    pub fn readable_items(&self, v: &MVault, who: &Principal) -> Result<Vec<ItemView>, VaultError> {
        let heir = self.reader(v, who)?;
        Ok(v.items
            .values()
            .filter(|i| heir.is_none_or(|m| addressed_to(i, m)))
            .map(|i| Self::item_view(v.id, i))
            .collect())
    }

    /// `None`: reads everything (owner); `Some(member)`: an heir of an Unlockable vault.
    fn reader(&self, v: &MVault, who: &Principal) -> Result<Option<u32>, VaultError> {
        if v.owner == *who {
            return Ok(None);
        }
        match v.member_by_principal(who) {
            Some(m) if m.role == MemberRole::Heir && v.status == VaultStatus::Unlockable => {
                Ok(Some(m.id))
            }
            _ => Err(VaultError::NotAuthorized),
        }
    }

    pub fn session_view_matches(&self, what: &str, actual: &PaymentSession, s: &MSession) -> Check {
        let expected = (
            (s.id, s.vault, s.owner),
            s.purpose,
            s.amount,
            s.created_at,
            s.expires_at,
            s.status,
            s.received,
            s.billing_id,
            s.closed_at,
            s.refunded,
            (s.period, s.next_poll),
        );
        let got = (
            (actual.id, actual.vault_id, actual.owner),
            actual.purpose,
            actual.amount_e8s,
            actual.created_at,
            actual.expires_at,
            actual.status,
            actual.received_e8s,
            actual.billing_id,
            actual.closed_at,
            actual.refunded_e8s,
            (actual.period_expires_at, actual.next_check_at),
        );
        if got != expected {
            return Err(format!(
                "{what}: session {} differs\n  canister: {got:?}\n  model:    {expected:?}",
                s.id
            ));
        }
        if !s.icrc1.is_empty() {
            eq(
                &format!("{what}: ICRC-1 account"),
                actual.icrc1_account.as_str(),
                s.icrc1.as_str(),
            )?;
        }
        let acct = AccountId::from_hex(&actual.account_identifier)
            .map_err(|e| format!("{what}: bad account identifier: {e}"))?;
        eq(&format!("{what}: account identifier"), acct, s.account)
    }

    pub fn billing_matches(actual: &BillingEntry, b: &MBilling) -> Check {
        let got = (
            (actual.id, actual.session_id, actual.vault_id, actual.owner),
            (actual.purpose, actual.amount_e8s, actual.received_e8s),
            (actual.treasury_e8s, actual.refund_e8s, actual.dust_e8s),
            (actual.applied, actual.recorded_at, actual.refund_pending),
        );
        let exp = (
            (b.id, b.session, b.vault, b.owner),
            (b.purpose, b.amount, b.received),
            (b.treasury, b.refund, b.dust),
            (b.applied, b.recorded_at, false),
        );
        eq(&format!("billing entry {}", b.id), got, exp)
    }
}

fn addressed_to(i: &MItem, member: u32) -> bool {
    i.recipients.as_ref().is_none_or(|r| r.contains(&member))
}

// ====================================================================== operations

/// A payment made by a wallet (not a canister call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pay {
    Exact,
    /// Less than the amount (at least 1 e8s).
    Under,
    /// More than the amount by more than a fee (the excess minus a fee is refunded).
    OverRefund,
    /// More than the amount by at most a fee (dust stays on the subaccount).
    OverDust,
    /// What is missing after an earlier underpayment.
    TopUp,
}

impl Model {
    // ---------------------------------------------------------------- vaults

    pub fn create_vault(
        &mut self,
        now: u64,
        who: Principal,
        args: &CreateVaultArgs,
        actual: &Result<VaultView, VaultError>,
    ) -> Check {
        let what = "create_vault";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        if !text_ok(&args.name, 64) {
            return expect_err(what, actual, &invalid("name"));
        }
        if let Some(k) = &args.idempotency_key {
            if !text_ok(k, 64) {
                return expect_err(what, actual, &invalid("idempotency_key"));
            }
            if let Some(id) = self.idem_vaults.get(&(who, k.clone())) {
                let v = &self.vaults[id];
                let got = ok_or_mismatch(what, actual)?;
                return self.check_vault_view(what, got, v, VaultRole::Owner);
            }
        }
        let price = match self.price(&args.plan, args.owner_age) {
            Ok(p) => p,
            Err(e) => return expect_err(what, actual, &e),
        };
        let max = self.cfg.limits.max_vaults_per_owner as usize;
        if self.live_vaults_of(&who) >= max {
            return expect_err(
                what,
                actual,
                &VaultError::PlanLimit {
                    resource: "vaults_per_owner".into(),
                    limit: max as u64,
                },
            );
        }
        let got = ok_or_mismatch(what, actual)?;
        if self.vaults.contains_key(&got.id) || self.erased.contains(&got.id) {
            return Err(format!("{what}: vault id {} reused", got.id));
        }
        let mut v = MVault {
            id: got.id,
            owner: who,
            name: args.name.trim().to_string(),
            status: VaultStatus::Draft,
            plan: args.plan,
            owner_age: args.owner_age,
            price_e8s: price,
            rules: None,
            post_unlock_days: self.cfg.d.default_post_unlock_days,
            audit_retention_days: self.cfg.d.default_audit_retention_days,
            retention_set_at: now,
            created_at: now,
            status_changed_at: now,
            paid_at: None,
            expires_at: None,
            activated_at: None,
            unlocked_at: None,
            access_until: None,
            deleted_at: None,
            last_owner_activity: now,
            items: BTreeMap::new(),
            members: BTreeMap::new(),
            invites: BTreeMap::new(),
            shares_used: BTreeSet::new(),
            request: None,
            approvals: Vec::new(),
            failed: Vec::new(),
            events: Vec::new(),
            renewals: 0,
            dead_tokens: Vec::new(),
        };
        v.ev("vault.created", who, now);
        if let Some(k) = &args.idempotency_key {
            self.idem_vaults.insert((who, k.clone()), v.id);
        }
        let r = self.check_vault_view(what, got, &v, VaultRole::Owner);
        self.vaults.insert(v.id, v);
        r
    }

    pub fn update_vault(
        &mut self,
        now: u64,
        who: Principal,
        args: &UpdateVaultArgs,
        actual: &Result<VaultView, VaultError>,
    ) -> Check {
        let what = "update_vault";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let touches_rules = args.unlock_rules.is_some() || args.post_unlock_days.is_some();
        let v = match self.load_owner(args.vault_id, &who, |s| {
            if touches_rules {
                matches!(
                    s,
                    VaultStatus::Draft
                        | VaultStatus::NeedSetup
                        | VaultStatus::SetupComplete
                        | VaultStatus::Active
                )
            } else {
                !matches!(
                    s,
                    VaultStatus::Unlockable | VaultStatus::Expired | VaultStatus::Deleted
                )
            }
        }) {
            Ok(v) => v,
            Err(e) => return expect_err(what, actual, &e),
        };
        if args.name.is_none()
            && args.unlock_rules.is_none()
            && args.post_unlock_days.is_none()
            && args.audit_retention_days.is_none()
        {
            return expect_err(what, actual, &invalid("args"));
        }
        if let Some(n) = &args.name {
            if !text_ok(n, 64) {
                return expect_err(what, actual, &invalid("name"));
            }
        }
        if let Some(r) = &args.unlock_rules {
            if let Err(e) = rules_error(r, &v.plan, now) {
                return expect_err(what, actual, &e);
            }
        }
        if let Some(d) = args.post_unlock_days {
            if d == 0 || d > 365 {
                return expect_err(what, actual, &invalid("post_unlock_days"));
            }
        }
        if let Some(d) = args.audit_retention_days {
            if !(30..=3650).contains(&d) {
                return expect_err(what, actual, &invalid("audit_retention_days"));
            }
        }
        let got = ok_or_mismatch(what, actual)?;
        let mut v = self.vaults.remove(&args.vault_id).expect("vault");
        Self::touch(&mut v, now);
        if let Some(n) = &args.name {
            let n = n.trim().to_string();
            if n != v.name {
                v.name = n;
                v.ev("vault.renamed", who, now);
            }
        }
        if let Some(r) = &args.unlock_rules {
            if v.rules.as_ref() != Some(r) {
                v.rules = Some(r.clone());
                v.ev("vault.unlock_rules_changed", who, now);
            }
        }
        let mut settings = false;
        if let Some(d) = args.post_unlock_days {
            if d != v.post_unlock_days {
                v.post_unlock_days = d;
                settings = true;
            }
        }
        if let Some(d) = args.audit_retention_days {
            if d != v.audit_retention_days {
                v.audit_retention_days = d;
                v.retention_set_at = now;
                settings = true;
            }
        }
        if settings {
            v.ev("vault.settings_changed", who, now);
        }
        Self::refresh_setup(&mut v, now, who);
        let r = self.check_vault_view(what, got, &v, VaultRole::Owner);
        self.vaults.insert(v.id, v);
        r
    }

    pub fn check_in(
        &mut self,
        now: u64,
        who: Principal,
        id: VaultId,
        actual: &Result<VaultView, VaultError>,
    ) -> Check {
        let what = "check_in";
        if let Err(e) = self.admit(who, now, true) {
            return expect_err(what, actual, &e);
        }
        if let Err(e) = self.load_owner(id, &who, |s| {
            matches!(
                s,
                VaultStatus::NeedSetup
                    | VaultStatus::SetupComplete
                    | VaultStatus::Active
                    | VaultStatus::GraceMaster
            )
        }) {
            return expect_err(what, actual, &e);
        }
        let got = ok_or_mismatch(what, actual)?;
        let mut v = self.vaults.remove(&id).expect("vault");
        Self::touch(&mut v, now);
        v.ev("owner.check_in", who, now);
        let r = self.check_vault_view(what, got, &v, VaultRole::Owner);
        self.vaults.insert(id, v);
        r
    }

    pub fn finalize_setup(
        &mut self,
        now: u64,
        who: Principal,
        id: VaultId,
        actual: &Result<VaultView, VaultError>,
    ) -> Check {
        let what = "finalize_setup";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        if let Err(e) = self.load_owner(id, &who, |s| s == VaultStatus::SetupComplete) {
            return expect_err(what, actual, &e);
        }
        let got = ok_or_mismatch(what, actual)?;
        let mut v = self.vaults.remove(&id).expect("vault");
        Self::touch(&mut v, now);
        Self::transition(&mut v, VaultStatus::Active, now, who);
        v.activated_at = Some(now);
        let r = self.check_vault_view(what, got, &v, VaultRole::Owner);
        self.vaults.insert(id, v);
        r
    }

    pub fn delete_vault(
        &mut self,
        now: u64,
        who: Principal,
        id: VaultId,
        actual: &Result<VaultView, VaultError>,
    ) -> Check {
        let what = "delete_vault";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        if let Err(e) = self.load_owner(id, &who, |s| {
            matches!(
                s,
                VaultStatus::Draft
                    | VaultStatus::NeedSetup
                    | VaultStatus::SetupComplete
                    | VaultStatus::Active
            )
        }) {
            return expect_err(what, actual, &e);
        }
        let got = ok_or_mismatch(what, actual)?;
        if self.vaults[&id].status == VaultStatus::Draft {
            // An unpaid draft is erased; its view is returned one last time
            // (docs/decisions.md, "Unpaid drafts leave only their id").
            let mut v = self.erase_draft(id);
            v.name = String::new();
            v.status = VaultStatus::Deleted;
            v.status_changed_at = now;
            v.deleted_at = Some(now);
            return self.check_vault_view(what, got, &v, VaultRole::Owner);
        }
        {
            let v = self.vaults.get_mut(&id).expect("vault");
            Self::transition(v, VaultStatus::Deleted, now, who);
            v.ev("vault.deleted", who, now);
        }
        self.tombstone(id, now);
        let v = &self.vaults[&id];
        self.check_vault_view(what, got, v, VaultRole::Owner)
    }

    // ---------------------------------------------------------------- payments (SPEC §6)

    /// Whether the session's purpose still applies to its vault now (SPEC §6, the table of
    /// docs/payments.md "When a session still applies"): Create while the vault is a Draft
    /// (an erased draft: never); Renew while it is in GraceMaster in the period the session
    /// was priced for; Upgrade while the vault is NeedSetup..Active, the plan is still an
    /// upgrade, no renewal happened since the session opened and — once the session expired
    /// — today's prorated quote is not higher than the session's amount.
    pub fn purpose_applies(&self, s: &MSession, now: u64) -> bool {
        let Some(v) = self.vaults.get(&s.vault) else {
            return false;
        };
        self.applies_to(v, s, now)
    }

    fn applies_to(&self, v: &MVault, s: &MSession, now: u64) -> bool {
        let same_period = v.expires_at == s.period;
        match s.purpose {
            PaymentPurpose::Create => v.status == VaultStatus::Draft,
            PaymentPurpose::Renew => v.status == VaultStatus::GraceMaster && same_period,
            PaymentPurpose::Upgrade(to) => {
                matches!(
                    v.status,
                    VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Active
                ) && is_upgrade(&v.plan, &to)
                    && same_period
                    && (now < s.expires_at
                        || self
                            .upgrade_amount(v, &to, now)
                            .is_ok_and(|a| a.max(FEE + 1) <= s.amount))
            }
        }
    }

    /// The next check of an unpaid session (docs/payments.md "The scheduler's checks"): 2 and
    /// 10 minutes after it was (re)opened and at its expiry, the first of them after `now`.
    pub fn next_unpaid_check(&self, s: &MSession, now: u64) -> Option<u64> {
        let opened = s
            .expires_at
            .saturating_sub(self.cfg.d.payment_session_secs * SEC);
        UNPAID_CHECK_OFFSETS
            .iter()
            .map(|o| (opened + o).min(s.expires_at))
            .chain(std::iter::once(s.expires_at))
            .find(|t| *t > now)
    }

    /// `Active → GraceMaster` once validity ended (used by `init_payment(Renew)`).
    fn expire_validity(&mut self, id: VaultId, now: u64) {
        let v = self.vaults.get_mut(&id).expect("vault");
        if v.status == VaultStatus::Active && v.expires_at.is_some_and(|t| now >= t) {
            Self::transition(v, VaultStatus::GraceMaster, now, system_mgmt());
        }
    }

    pub fn init_payment(
        &mut self,
        now: u64,
        who: Principal,
        id: VaultId,
        purpose: PaymentPurpose,
        actual: &Result<PaymentSession, VaultError>,
    ) -> Check {
        let what = "init_payment";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let mut v = match self.load(id, &who) {
            Ok((v, VaultRole::Owner)) => v.clone(),
            Ok(_) => return expect_err(what, actual, &VaultError::NotAuthorized),
            Err(e) => return expect_err(what, actual, &e),
        };
        // A renewal sees the vault as the scheduler would once validity ended; decided on a
        // copy, written only if the call succeeds.
        let validity_ended = purpose == PaymentPurpose::Renew
            && v.status == VaultStatus::Active
            && v.expires_at.is_some_and(|t| now >= t);
        if validity_ended {
            v.status = VaultStatus::GraceMaster;
        }
        let wrong = VaultError::InvalidState { current: v.status };
        let price = match purpose {
            PaymentPurpose::Create => {
                if v.status != VaultStatus::Draft {
                    return expect_err(what, actual, &wrong);
                }
                v.price_e8s
            }
            PaymentPurpose::Renew => {
                if v.status != VaultStatus::GraceMaster {
                    return expect_err(what, actual, &wrong);
                }
                self.price(&v.plan, v.owner_age).expect("valid plan")
            }
            PaymentPurpose::Upgrade(to) => {
                if !matches!(
                    v.status,
                    VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Active
                ) {
                    return expect_err(what, actual, &wrong);
                }
                if !is_upgrade(&v.plan, &to) {
                    return expect_err(what, actual, &invalid("plan"));
                }
                match self.upgrade_amount(&v, &to, now) {
                    Ok(a) => a,
                    Err(e) => return expect_err(what, actual, &e),
                }
            }
        };
        let amount = price.max(FEE + 1);
        // Reuse: the vault's newest open session of the same purpose and amount that still
        // applies, expired or not (an expired one is reopened: same id, new expiry).
        let mine: Vec<u64> = self
            .sessions
            .values()
            .filter(|s| s.vault == id)
            .map(|s| s.id)
            .collect();
        let reuse = mine
            .iter()
            .rev()
            .take(REUSE_SCAN)
            .map(|sid| &self.sessions[sid])
            .find(|s| {
                s.status == PaymentSessionStatus::Open
                    && s.purpose == purpose
                    && s.amount == amount
                    && self.applies_to(&v, s, now)
            })
            .map(|s| s.id);
        if reuse.is_none() && mine.len() >= MAX_SESSIONS_PER_VAULT {
            return expect_err(
                what,
                actual,
                &VaultError::PlanLimit {
                    resource: "payment_sessions_per_vault".into(),
                    limit: MAX_SESSIONS_PER_VAULT as u64,
                },
            );
        }
        if validity_ended {
            self.expire_validity(id, now);
        }
        if let Some(sid) = reuse {
            let got = ok_or_mismatch(what, actual)?;
            let secs = self.cfg.d.payment_session_secs * SEC;
            let s = self.sessions.get_mut(&sid).expect("session");
            if now >= s.expires_at {
                s.expires_at = now + secs;
                let s = s.clone();
                let next = self.next_unpaid_check(&s, now);
                self.sessions.get_mut(&sid).expect("session").next_poll = next;
            }
            // Returning the open session is an owner update too (SPEC §4).
            let v = self.vaults.get_mut(&id).expect("vault");
            Self::touch(v, now);
            return self.session_view_matches(what, got, &self.sessions[&sid]);
        }
        let got = ok_or_mismatch(what, actual)?;
        if self.sessions.contains_key(&got.id) {
            return Err(format!("{what}: session id {} reused", got.id));
        }
        // The subaccount: 23 zero bytes, 0x01, the session id big-endian (the .did).
        let mut sub = [0u8; 32];
        sub[23] = 1;
        sub[24..].copy_from_slice(&got.id.to_be_bytes());
        eq(
            &format!("{what}: subaccount"),
            got.subaccount.as_slice(),
            &sub[..],
        )?;
        let mut s = MSession {
            id: got.id,
            vault: id,
            owner: who,
            purpose,
            amount,
            created_at: now,
            expires_at: now + self.cfg.d.payment_session_secs * SEC,
            status: PaymentSessionStatus::Open,
            received: 0,
            billing_id: None,
            closed_at: None,
            refunded: 0,
            account: AccountId::new(&self.canister, Some(sub)),
            icrc1: got.icrc1_account.clone(),
            next_poll: None,
            period: v.expires_at,
        };
        s.next_poll = self.next_unpaid_check(&s, now);
        let v = self.vaults.get_mut(&id).expect("vault");
        Self::touch(v, now);
        v.ev_d(
            "payment.session_opened",
            who,
            now,
            format!("session={} purpose={purpose:?} amount_e8s={amount}", got.id),
        );
        let r = self.session_view_matches(what, got, &s);
        self.sessions.insert(s.id, s);
        r
    }

    /// A wallet pays `kind` into the session's subaccount (ledger only). Returns the amount.
    pub fn wallet_amount(&self, sid: u64, kind: Pay) -> u64 {
        let s = &self.sessions[&sid];
        let bal = self.balance(&s.account);
        match kind {
            Pay::Exact => s.amount,
            Pay::Under => (s.amount / 2).max(1),
            Pay::OverRefund => s.amount + FEE + 1 + s.amount / 10,
            Pay::OverDust => s.amount + FEE,
            Pay::TopUp => s.amount.saturating_sub(bal).max(1),
        }
    }

    pub fn paid_into(&mut self, account: AccountId, e8s: u64) {
        *self.ledger.entry(account).or_default() += e8s;
    }

    pub fn balance(&self, a: &AccountId) -> u64 {
        self.ledger.get(a).copied().unwrap_or(0)
    }

    fn debit(&mut self, a: AccountId, e8s: u64) {
        let b = self.ledger.entry(a).or_default();
        *b = b.checked_sub(e8s).expect("model ledger underflow");
    }

    /// What a verification decides now (SPEC §6, docs/payments.md): `Ok` = paid, confirm it.
    /// Funds for a purpose that no longer applies stay (refund-only): `SessionExpired` once
    /// the session expired, `InvalidState` before.
    fn decide(&self, sid: u64, now: u64) -> Result<(), VaultError> {
        let s = &self.sessions[&sid];
        if s.status != PaymentSessionStatus::Open {
            return Err(VaultError::SessionClosed);
        }
        let balance = self.balance(&s.account);
        let applies = self.purpose_applies(s, now);
        let status = self
            .vaults
            .get(&s.vault)
            .map_or(VaultStatus::Deleted, |v| v.status);
        let gone = || {
            if now >= s.expires_at {
                VaultError::SessionExpired
            } else {
                VaultError::InvalidState { current: status }
            }
        };
        if balance == 0 {
            return Err(if applies {
                VaultError::NotYetPaid
            } else {
                gone()
            });
        }
        if !applies {
            return Err(gone());
        }
        if balance < s.amount {
            return Err(VaultError::Underpaid {
                paid: balance,
                required: s.amount,
            });
        }
        Ok(())
    }

    /// The verification flow for the owner or the scheduler (`actor`): decides, and on
    /// success sweeps, applies the purpose and records billing.
    fn verify(&mut self, sid: u64, now: u64, actor: Principal) -> Result<(), VaultError> {
        self.decide(sid, now)?;
        self.settle(sid, now, actor);
        Ok(())
    }

    /// Confirms a paid session: applies its purpose, sweeps it, refunds its excess, records
    /// billing; the scheduler's checks of it end.
    fn settle(&mut self, sid: u64, now: u64, actor: Principal) {
        let s = self.sessions[&sid].clone();
        let balance = self.balance(&s.account);
        self.debit(s.account, s.amount);
        let treasury = self.treasury;
        self.paid_into(treasury, s.amount - FEE);
        let excess = balance - s.amount;
        let (refund, dust) = if excess > FEE {
            self.debit(s.account, excess);
            self.paid_into(AccountId::new(&s.owner, None), excess - FEE);
            (excess - FEE, 0)
        } else {
            (0, excess)
        };
        {
            let validity = Cfg::days(self.cfg.d.validity_days);
            let v = self.vaults.get_mut(&s.vault).expect("vault");
            match s.purpose {
                PaymentPurpose::Create => {
                    Self::transition(v, VaultStatus::NeedSetup, now, actor);
                    // A create retry only finds the vault while it is a draft.
                    self.idem_vaults.retain(|_, id| *id != s.vault);
                    let v = self.vaults.get_mut(&s.vault).expect("vault");
                    v.paid_at = Some(now);
                    v.expires_at = Some(now + validity);
                    Self::refresh_setup(v, now, actor);
                }
                PaymentPurpose::Upgrade(to) => {
                    v.plan = to;
                    v.ev("vault.plan_upgraded", actor, now);
                }
                PaymentPurpose::Renew => {
                    Self::transition(v, VaultStatus::Active, now, actor);
                    v.expires_at = Some(now + validity);
                    v.renewals += 1;
                }
            }
        }
        let billing_id = self.billing.len() as u64 + 1;
        self.billing.push(MBilling {
            id: billing_id,
            session: sid,
            vault: s.vault,
            owner: s.owner,
            purpose: s.purpose,
            amount: s.amount,
            received: balance,
            treasury: s.amount - FEE,
            refund,
            dust,
            applied: true,
            recorded_at: now,
        });
        let sm = self.sessions.get_mut(&sid).expect("session");
        sm.status = PaymentSessionStatus::Completed;
        sm.received = balance;
        sm.billing_id = Some(billing_id);
        sm.closed_at = Some(now);
        sm.next_poll = None;
        let v = self.vaults.get_mut(&s.vault).expect("vault");
        if actor == v.owner {
            Self::touch(v, now);
        }
        v.ev_d(
            "payment.confirmed",
            actor,
            now,
            format!("session={sid} purpose="),
        );
    }

    pub fn verify_payment(
        &mut self,
        now: u64,
        who: Principal,
        sid: u64,
        actual: &Result<PaymentReceipt, VaultError>,
    ) -> Check {
        let what = "verify_payment";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let Some(s) = self.sessions.get(&sid) else {
            return expect_err(what, actual, &VaultError::NotFound);
        };
        if s.owner != who {
            return expect_err(what, actual, &VaultError::NotAuthorized);
        }
        self.answer_verify(what, now, who, sid, actual)
    }

    /// The receipt of a verification that confirmed session `sid`. The receipt's session is
    /// read before the call ends the scheduler's checks: it still shows `next_check` (they
    /// end with the call).
    fn check_receipt(
        &self,
        what: &str,
        got: &PaymentReceipt,
        sid: u64,
        next_check: Option<u64>,
    ) -> Check {
        let mut s = self.sessions[&sid].clone();
        s.next_poll = next_check;
        self.session_view_matches(what, &got.session, &s)?;
        let b = &self.billing[(s.billing_id.expect("billing") - 1) as usize];
        Self::billing_matches(&got.billing, b)?;
        eq(
            &format!("{what}: receipt vault_status"),
            got.vault_status,
            self.vaults[&s.vault].status,
        )
    }

    /// Two `verify_payment` calls by `who` submitted together and run at `now` (both execute
    /// after both submissions). SPEC §6: a second verification of the same session is refused
    /// with `Busy`; of two sessions of one vault exactly one applies the purpose, and the
    /// other's funds stay on its subaccount (its call: `Busy`, or what it answers after the
    /// first completed).
    pub fn verify_concurrently(
        &mut self,
        now: u64,
        who: Principal,
        sids: (u64, u64),
        actual: (
            &Result<PaymentReceipt, VaultError>,
            &Result<PaymentReceipt, VaultError>,
        ),
    ) -> Check {
        let what = "concurrent verify_payment";
        let pre = |m: &Model, sid: u64| -> Result<(), VaultError> {
            let s = m.sessions.get(&sid).ok_or(VaultError::NotFound)?;
            if s.owner != who {
                return Err(VaultError::NotAuthorized);
            }
            Ok(())
        };
        let p1 = self.admit(who, now, false).and_then(|_| pre(self, sids.0));
        let p2 = self.admit(who, now, false).and_then(|_| pre(self, sids.1));
        let open = |m: &Model, sid: u64| m.sessions[&sid].status == PaymentSessionStatus::Open;
        // A call awaits the ledger (holding its session) when its session is open.
        let w1 = p1.is_ok() && open(self, sids.0);
        if let Err(e) = &p1 {
            expect_err(what, actual.0, e)?;
        }
        if let Err(e) = &p2 {
            expect_err(what, actual.1, e)?;
        }
        if w1 && p2.is_ok() {
            // The first holds the vault's payment lock while it awaits the ledger: the
            // second verification of the vault (same session or another) answers `Busy`
            // (docs/payments.md, step 1).
            expect_err(what, actual.1, &VaultError::Busy)?;
            return self.answer_verify(what, now, who, sids.0, actual.0);
        }
        // The first does not await: the two do not interleave.
        if p1.is_ok() {
            self.answer_verify(what, now, who, sids.0, actual.0)?;
        }
        if p2.is_ok() {
            self.answer_verify(what, now, who, sids.1, actual.1)?;
        }
        Ok(())
    }

    /// Verifies one session (admission and caller already checked) and compares the answer.
    fn answer_verify(
        &mut self,
        what: &str,
        now: u64,
        who: Principal,
        sid: u64,
        actual: &Result<PaymentReceipt, VaultError>,
    ) -> Check {
        let next_check = self.sessions[&sid].next_poll;
        match self.verify(sid, now, who) {
            Err(e) => expect_err(what, actual, &e),
            Ok(()) => {
                let got = ok_or_mismatch(what, actual)?;
                self.check_receipt(what, got, sid, next_check)
            }
        }
    }

    pub fn refund_session(
        &mut self,
        now: u64,
        who: Principal,
        sid: u64,
        actual: &Result<PaymentSession, VaultError>,
    ) -> Check {
        let what = "refund_session";
        if let Err(e) = self.admit(who, now, true) {
            return expect_err(what, actual, &e);
        }
        if who != self.admin {
            return expect_err(what, actual, &VaultError::NotAuthorized);
        }
        let Some(s) = self.sessions.get(&sid).cloned() else {
            return expect_err(what, actual, &VaultError::NotFound);
        };
        if s.status == PaymentSessionStatus::Open && self.purpose_applies(&s, now) {
            let status = self.vaults[&s.vault].status;
            return expect_err(what, actual, &VaultError::InvalidState { current: status });
        }
        let balance = self.balance(&s.account);
        if balance <= FEE {
            return expect_err(what, actual, &invalid("session_id"));
        }
        let got = ok_or_mismatch(what, actual)?;
        self.debit(s.account, balance);
        self.paid_into(AccountId::new(&s.owner, None), balance - FEE);
        let sm = self.sessions.get_mut(&sid).expect("session");
        if sm.status == PaymentSessionStatus::Open {
            // Its scheduled check stays (it finds the session closed and ends).
            sm.status = PaymentSessionStatus::Refunded;
            sm.closed_at = Some(now);
        }
        sm.refunded += balance - FEE;
        // The session of an erased draft is refunded like any other (no log to write to).
        if let Some(v) = self.vaults.get_mut(&s.vault) {
            v.ev("payment.refunded", who, now);
        }
        self.session_view_matches(what, got, &self.sessions[&sid])
    }

    // ---------------------------------------------------------------- invites (SPEC §7)

    fn membership_open(s: VaultStatus) -> bool {
        matches!(
            s,
            VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Active
        )
    }

    fn caps(&self, v: &MVault, role: MemberRole, now: u64) -> Result<(), VaultError> {
        let open = v
            .invites
            .values()
            .filter(|i| i.role == role && i.state == InviteState::Open && i.expires_at > now)
            .count() as u64;
        match role {
            MemberRole::Heir => {
                let slots = u64::from(v.plan.heir_slots);
                if u64::from(v.heir_count()) + open >= slots {
                    return Err(VaultError::PlanLimit {
                        resource: "heir_slots".into(),
                        limit: slots,
                    });
                }
            }
            MemberRole::Witness => {
                if !v.plan.witness_slot {
                    return Err(VaultError::PlanLimit {
                        resource: "witness_slot".into(),
                        limit: 0,
                    });
                }
                if v.witness_joined() || open > 0 {
                    return Err(VaultError::PlanLimit {
                        resource: "witness_slot".into(),
                        limit: 1,
                    });
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn generate_invite(
        &mut self,
        now: u64,
        who: Principal,
        args: &livault_backend::model::member_types::GenerateInviteArgs,
        actual: &Result<InviteCreated, VaultError>,
    ) -> Check {
        let what = "generate_invite";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        if !text_ok(&args.name, 64) {
            return expect_err(what, actual, &invalid("name"));
        }
        if let Some(h) = &args.email_hint {
            if !text_ok(h, 128) {
                return expect_err(what, actual, &invalid("email_hint"));
            }
        }
        let v = match self.load_owner(args.vault_id, &who, Self::membership_open) {
            Ok(v) => v,
            Err(e) => return expect_err(what, actual, &e),
        };
        if let Err(e) = self.caps(v, args.role, now) {
            return expect_err(what, actual, &e);
        }
        if v.shares_used.len() >= MAX_SHARE_INDEX as usize {
            return expect_err(
                what,
                actual,
                &VaultError::PlanLimit {
                    resource: "share_index".into(),
                    limit: 255,
                },
            );
        }
        let got = ok_or_mismatch(what, actual)?;
        let heir = args.role == MemberRole::Heir;
        let inv = MInvite {
            id: got.invite_id,
            role: args.role,
            name: args.name.trim().to_string(),
            relation: args.relation,
            email_hint: args.email_hint.clone(),
            can_trigger: heir || args.can_trigger_unlock,
            count_approver: heir || args.count_as_approver,
            share_index: got.share_index,
            created_at: now,
            expires_at: now + self.cfg.d.invite_secs * SEC,
            state: InviteState::Open,
            replaced_by: None,
            token: got.token.clone(),
        };
        self.check_new_invite(what, got, args.vault_id, &inv, true)?;
        let v = self.vaults.get_mut(&args.vault_id).expect("vault");
        v.shares_used.insert(inv.share_index);
        Self::touch(v, now);
        v.ev("invite.created", who, now);
        v.invites.insert(inv.id, inv);
        self.invites_issued += 1;
        Ok(())
    }

    fn check_new_invite(
        &self,
        what: &str,
        got: &InviteCreated,
        vault: VaultId,
        inv: &MInvite,
        fresh_share: bool,
    ) -> Check {
        let v = &self.vaults[&vault];
        if v.invites.contains_key(&got.invite_id) {
            return Err(format!("{what}: invite id {} reused", got.invite_id));
        }
        if inv.share_index == 0 {
            return Err(format!("{what}: share index 0"));
        }
        // SPEC §7: unique in the vault and never reused (a regenerated invite keeps its own,
        // checked by the caller).
        if fresh_share && v.shares_used.contains(&inv.share_index) {
            return Err(format!(
                "{what}: share index {} was already handed out in vault {vault}",
                inv.share_index
            ));
        }
        let token_ok = got.token.len() == 69
            && got.token.starts_with("lvi1_")
            && got.token[5..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if !token_ok {
            return Err(format!("{what}: malformed token {:?}", got.token));
        }
        let tokens: Vec<&String> = self
            .vaults
            .values()
            .flat_map(|v| v.invites.values().map(|i| &i.token))
            .collect();
        if tokens.contains(&&got.token) {
            return Err(format!("{what}: token handed out twice"));
        }
        eq(
            &format!("{what}: answer"),
            (got.vault_id, got.role, got.expires_at),
            (vault, inv.role, inv.expires_at),
        )
    }

    pub fn claim_invite(
        &mut self,
        now: u64,
        who: Principal,
        token: &str,
        actual: &Result<MemberView, VaultError>,
    ) -> Check {
        let what = "claim_invite";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let found = self.vaults.values().find_map(|v| {
            v.invites
                .values()
                .find(|i| i.token == token)
                .map(|i| (v.id, i.id))
        });
        let Some((vid, iid)) = found else {
            return expect_err(what, actual, &VaultError::TokenInvalid);
        };
        let v = &self.vaults[&vid];
        let inv = &v.invites[&iid];
        match inv.state {
            InviteState::Claimed { by, member_id } => {
                if by == who {
                    return match v.members.get(&member_id) {
                        Some(m) => {
                            let got = ok_or_mismatch(what, actual)?;
                            eq(what, got.clone(), Self::member_view(v, m, true))
                        }
                        None => expect_err(what, actual, &VaultError::TokenAlreadyClaimed),
                    };
                }
                return expect_err(what, actual, &VaultError::TokenAlreadyClaimed);
            }
            InviteState::Revoked => return expect_err(what, actual, &VaultError::TokenRevoked),
            InviteState::Open => {}
        }
        if now >= inv.expires_at {
            return expect_err(what, actual, &VaultError::TokenExpired);
        }
        if who == v.owner {
            return expect_err(what, actual, &VaultError::NotAuthorized);
        }
        if v.member_by_principal(&who).is_some() {
            return expect_err(what, actual, &invalid("token"));
        }
        if !Self::membership_open(v.status) {
            return expect_err(
                what,
                actual,
                &VaultError::InvalidState { current: v.status },
            );
        }
        let got = ok_or_mismatch(what, actual)?;
        if v.members.contains_key(&got.member_id) || got.member_id == 0 {
            return Err(format!("{what}: member id {} reused", got.member_id));
        }
        let m = MMember {
            id: got.member_id,
            principal: who,
            role: inv.role,
            name: inv.name.clone(),
            relation: inv.relation,
            email_hint: inv.email_hint.clone(),
            share_index: inv.share_index,
            joined_at: now,
            can_trigger: inv.can_trigger,
            count_approver: inv.count_approver,
        };
        let v = self.vaults.get_mut(&vid).expect("vault");
        v.invites.get_mut(&iid).expect("invite").state = InviteState::Claimed {
            by: who,
            member_id: m.id,
        };
        v.ev_d("member.joined", who, now, format!("member={} ", m.id));
        v.members.insert(m.id, m.clone());
        Self::refresh_setup(v, now, who);
        self.invites_claimed += 1;
        let v = &self.vaults[&vid];
        eq(what, got.clone(), Self::member_view(v, &m, true))
    }

    pub fn revoke_invite(
        &mut self,
        now: u64,
        who: Principal,
        vid: VaultId,
        iid: u64,
        actual: &Result<InviteView, VaultError>,
    ) -> Check {
        let what = "revoke_invite";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let v = match self.load_owner(vid, &who, Self::membership_open) {
            Ok(v) => v,
            Err(e) => return expect_err(what, actual, &e),
        };
        let Some(inv) = v.invites.get(&iid) else {
            return expect_err(what, actual, &VaultError::NotFound);
        };
        match inv.state {
            InviteState::Revoked => {
                let got = ok_or_mismatch(what, actual)?;
                let view = Self::invite_view(inv, now);
                Self::touch(self.vaults.get_mut(&vid).expect("vault"), now);
                return eq(what, got.clone(), view);
            }
            InviteState::Claimed { .. } => return expect_err(what, actual, &invalid("invite_id")),
            InviteState::Open => {}
        }
        if inv.replaced_by.is_some() {
            return expect_err(what, actual, &invalid("invite_id"));
        }
        let got = ok_or_mismatch(what, actual)?;
        let v = self.vaults.get_mut(&vid).expect("vault");
        v.invites.get_mut(&iid).expect("invite").state = InviteState::Revoked;
        Self::touch(v, now);
        v.ev("invite.revoked", who, now);
        eq(what, got.clone(), Self::invite_view(&v.invites[&iid], now))
    }

    pub fn regenerate_invite(
        &mut self,
        now: u64,
        who: Principal,
        vid: VaultId,
        iid: u64,
        actual: &Result<InviteCreated, VaultError>,
    ) -> Check {
        let what = "regenerate_invite";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let v = match self.load_owner(vid, &who, Self::membership_open) {
            Ok(v) => v,
            Err(e) => return expect_err(what, actual, &e),
        };
        let Some(old) = v.invites.get(&iid) else {
            return expect_err(what, actual, &VaultError::NotFound);
        };
        if old.replaced_by.is_some() {
            return expect_err(what, actual, &invalid("invite_id"));
        }
        if !matches!(
            Self::invite_status(old, now),
            InviteStatus::Expired | InviteStatus::Revoked
        ) {
            return expect_err(what, actual, &invalid("invite_id"));
        }
        if let Err(e) = self.caps(v, old.role, now) {
            return expect_err(what, actual, &e);
        }
        let got = ok_or_mismatch(what, actual)?;
        let inv = MInvite {
            id: got.invite_id,
            created_at: now,
            expires_at: now + self.cfg.d.invite_secs * SEC,
            state: InviteState::Open,
            replaced_by: None,
            token: got.token.clone(),
            ..old.clone()
        };
        eq(
            &format!("{what}: share index kept"),
            got.share_index,
            old.share_index,
        )?;
        self.check_new_invite(what, got, vid, &inv, false)?;
        let v = self.vaults.get_mut(&vid).expect("vault");
        v.invites.get_mut(&iid).expect("invite").replaced_by = Some(inv.id);
        Self::touch(v, now);
        v.ev("invite.regenerated", who, now);
        v.invites.insert(inv.id, inv);
        self.invites_issued += 1;
        Ok(())
    }

    pub fn remove_member(
        &mut self,
        now: u64,
        who: Principal,
        vid: VaultId,
        mid: u32,
        actual: &Result<VaultView, VaultError>,
    ) -> Check {
        let what = "remove_member";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let v = match self.load_owner(vid, &who, Self::membership_open) {
            Ok(v) => v,
            Err(e) => return expect_err(what, actual, &e),
        };
        if !v.members.contains_key(&mid) {
            return expect_err(what, actual, &VaultError::NotFound);
        }
        let got = ok_or_mismatch(what, actual)?;
        let v = self.vaults.get_mut(&vid).expect("vault");
        v.members.remove(&mid);
        v.approvals.retain(|(m, _)| *m != mid);
        Self::touch(v, now);
        v.ev_d("member.removed", who, now, format!("member={mid} "));
        Self::refresh_setup(v, now, who);
        let v = &self.vaults[&vid];
        self.check_vault_view(what, got, v, VaultRole::Owner)
    }

    // ---------------------------------------------------------------- unlock (SPEC §4)

    /// The member calling an unlock endpoint (role and state checks, then the attempt limit).
    fn unlock_caller(
        &self,
        vid: VaultId,
        who: &Principal,
        now: u64,
        allowed: fn(&MMember) -> bool,
    ) -> Result<MMember, VaultError> {
        let (v, role) = self.load(vid, who)?;
        if role == VaultRole::Owner {
            return Err(VaultError::NotAuthorized);
        }
        let m = v.member_by_principal(who).expect("member").clone();
        if !allowed(&m) {
            return Err(VaultError::NotAuthorized);
        }
        match v.status {
            VaultStatus::Active | VaultStatus::GraceHeir => {}
            VaultStatus::Unlockable => return Err(VaultError::AlreadyUnlocked),
            s => return Err(VaultError::InvalidState { current: s }),
        }
        let recent: Vec<u64> = v
            .failed
            .iter()
            .filter(|(p, at)| p == who && at + HOUR > now)
            .map(|(_, at)| *at)
            .collect();
        if recent.len() >= MAX_FAILED_PER_HOUR {
            let oldest = recent.iter().min().copied().expect("recent");
            let wait = (oldest + HOUR).saturating_sub(now);
            return Err(VaultError::RateLimited {
                retry_after_secs: wait.div_ceil(SEC).max(1),
            });
        }
        Ok(m)
    }

    fn record_failure(&mut self, vid: VaultId, who: Principal, now: u64) {
        let v = self.vaults.get_mut(&vid).expect("vault");
        v.failed.retain(|(_, at)| at + HOUR > now);
        v.failed.push((who, now));
        v.ev("unlock.attempt_failed", who, now);
    }

    fn gate_error(g: &TimeGateView) -> VaultError {
        VaultError::UnlockConditionsNotMet {
            reason: String::new(),
            time_gate_opens_at: g.opens_at,
        }
    }

    pub fn trigger_unlock(
        &mut self,
        now: u64,
        who: Principal,
        vid: VaultId,
        actual: &Result<UnlockStatus, VaultError>,
    ) -> Check {
        let what = "trigger_unlock";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let m = match self.unlock_caller(vid, &who, now, |m| m.can_trigger) {
            Ok(m) => m,
            Err(e) => return expect_err(what, actual, &e),
        };
        let mut v = self.vaults.remove(&vid).expect("vault");
        let opened = v.request.is_none();
        if opened {
            v.request = Some((who, m.id, now));
        }
        let due = self.unlock_due(&v, now);
        if !opened && !due {
            let g = self.time_gate(&v, now);
            let err = if !g.holds {
                Self::gate_error(&g)
            } else {
                let (have, need) = self.have_need(&v);
                VaultError::QuorumNotMet { have, need }
            };
            self.vaults.insert(vid, v);
            self.record_failure(vid, who, now);
            return expect_err(what, actual, &err);
        }
        if opened {
            v.ev("unlock.requested", who, now);
        }
        if due {
            self.apply_unlock(&mut v, now, who);
        }
        let got = ok_or_mismatch(what, actual);
        let r = got.and_then(|got| self.check_unlock_status(what, got, &v, &who, now));
        self.vaults.insert(vid, v);
        r
    }

    pub fn approve_unlock(
        &mut self,
        now: u64,
        who: Principal,
        vid: VaultId,
        actual: &Result<UnlockStatus, VaultError>,
    ) -> Check {
        let what = "approve_unlock";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let m = match self.unlock_caller(vid, &who, now, |m| m.count_approver) {
            Ok(m) => m,
            Err(e) => return expect_err(what, actual, &e),
        };
        let g = self.time_gate(&self.vaults[&vid], now);
        if !g.holds {
            self.record_failure(vid, who, now);
            return expect_err(what, actual, &Self::gate_error(&g));
        }
        let mut v = self.vaults.remove(&vid).expect("vault");
        if !v.approvals.iter().any(|(mid, _)| *mid == m.id) {
            v.approvals.push((m.id, now));
            v.ev("unlock.approved", who, now);
        }
        if self.unlock_due(&v, now) {
            self.apply_unlock(&mut v, now, who);
        }
        let got = ok_or_mismatch(what, actual);
        let r = got.and_then(|got| self.check_unlock_status(what, got, &v, &who, now));
        self.vaults.insert(vid, v);
        r
    }

    // ---------------------------------------------------------------- content (SPEC §8)

    fn writable(s: VaultStatus) -> bool {
        matches!(
            s,
            VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Active
        )
    }

    pub fn begin_upload(
        &mut self,
        now: u64,
        who: Principal,
        args: &BeginUploadArgs,
        actual: &Result<UploadView, VaultError>,
    ) -> Check {
        let what = "begin_upload";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let v = match self.load_owner(args.vault_id, &who, Self::writable) {
            Ok(v) => v,
            Err(e) => return expect_err(what, actual, &e),
        };
        if let Some(k) = &args.idempotency_key {
            if !text_ok(k, 64) {
                return expect_err(what, actual, &invalid("idempotency_key"));
            }
            if let Some(u) = self
                .uploads
                .values()
                .find(|u| u.vault == args.vault_id && u.idem.as_ref() == Some(k))
            {
                let got = ok_or_mismatch(what, actual)?;
                return eq(what, got.clone(), self.upload_view(u));
            }
        }
        if args.size == 0 {
            return expect_err(what, actual, &invalid("size"));
        }
        if args.sha256.len() != 32 {
            return expect_err(what, actual, &invalid("sha256"));
        }
        if args.encrypted_meta.len() > 4096 {
            return expect_err(what, actual, &invalid("encrypted_meta"));
        }
        if let Some(r) = &args.recipients {
            if r.is_empty() || r.len() > 64 {
                return expect_err(what, actual, &invalid("recipients"));
            }
            for (i, id) in r.iter().enumerate() {
                let dup = r[..i].contains(id);
                let heir = v
                    .members
                    .get(id)
                    .is_some_and(|m| m.role == MemberRole::Heir);
                if dup || !heir {
                    return expect_err(what, actual, &invalid("recipients"));
                }
            }
        }
        if let Some(item) = args.replaces {
            if !v.items.contains_key(&item) {
                return expect_err(what, actual, &VaultError::NotFound);
            }
        }
        let open: Vec<&MUpload> = self.uploads.values().filter(|u| u.vault == v.id).collect();
        if open.len() >= MAX_OPEN_UPLOADS {
            return expect_err(
                what,
                actual,
                &VaultError::PlanLimit {
                    resource: "open_uploads".into(),
                    limit: MAX_OPEN_UPLOADS as u64,
                },
            );
        }
        let max_items = u64::from(self.cfg.limits.max_items_per_vault);
        if args.replaces.is_none() {
            let pending = open.iter().filter(|u| u.replaces.is_none()).count() as u64;
            if v.items.len() as u64 + pending >= max_items {
                return expect_err(
                    what,
                    actual,
                    &VaultError::PlanLimit {
                        resource: "items".into(),
                        limit: max_items,
                    },
                );
            }
        }
        let available = self
            .storage_limit(v)
            .saturating_sub(v.committed() + self.reserved(v.id));
        if args.size > available {
            return expect_err(
                what,
                actual,
                &VaultError::QuotaExceeded {
                    requested: args.size,
                    available,
                },
            );
        }
        let got = ok_or_mismatch(what, actual)?;
        if !self.seen_uploads.insert(got.upload_id) {
            return Err(format!("{what}: upload id {} reused", got.upload_id));
        }
        let u = MUpload {
            id: got.upload_id,
            vault: args.vault_id,
            owner: who,
            kind: args.kind,
            size: args.size,
            sha: args.sha256.to_vec(),
            meta: args.encrypted_meta.to_vec(),
            recipients: args.recipients.clone(),
            replaces: args.replaces,
            chunk_bytes: self.cfg.limits.max_chunk_bytes,
            received: Vec::new(),
            next_index: 0,
            last_activity: now,
            idem: args.idempotency_key.clone(),
        };
        let view = self.upload_view(&u);
        self.uploads.insert(u.id, u);
        let v = self.vaults.get_mut(&args.vault_id).expect("vault");
        Self::touch(v, now);
        v.ev("content.upload_begun", who, now);
        eq(what, got.clone(), view)
    }

    fn load_upload(&self, who: &Principal, uid: u64, now: u64) -> Result<&MUpload, VaultError> {
        let u = self.uploads.get(&uid).ok_or(VaultError::NotFound)?;
        if u.owner != *who {
            return Err(VaultError::NotAuthorized);
        }
        if now >= u.last_activity + self.cfg.d.upload_idle_secs * SEC {
            return Err(VaultError::UploadExpired);
        }
        Ok(u)
    }

    pub fn upload_chunk(
        &mut self,
        now: u64,
        who: Principal,
        uid: u64,
        index: u32,
        bytes: &[u8],
        actual: &Result<UploadView, VaultError>,
    ) -> Check {
        let what = "upload_chunk";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let u = match self.load_upload(&who, uid, now) {
            Ok(u) => u.clone(),
            Err(e) => return expect_err(what, actual, &e),
        };
        if let Err(e) = self.load_owner(u.vault, &who, Self::writable) {
            return expect_err(what, actual, &e);
        }
        if bytes.is_empty() || bytes.len() > u.chunk_bytes as usize {
            return expect_err(what, actual, &invalid("bytes"));
        }
        if index != u.next_index {
            if u.next_index > 0 && index == u.next_index - 1 {
                let start = (index as usize) * u.chunk_bytes as usize;
                if u.received[start..] == *bytes {
                    let got = ok_or_mismatch(what, actual)?;
                    return eq(what, got.clone(), self.upload_view(&u));
                }
            }
            return expect_err(
                what,
                actual,
                &VaultError::ChunkOutOfOrder {
                    expected: u.next_index,
                },
            );
        }
        let after = u.received.len() as u64 + bytes.len() as u64;
        if after > u.size {
            return expect_err(
                what,
                actual,
                &VaultError::SizeMismatch {
                    expected: u.size,
                    actual: after,
                },
            );
        }
        if after < u.size && bytes.len() != u.chunk_bytes as usize {
            return expect_err(what, actual, &invalid("bytes"));
        }
        let got = ok_or_mismatch(what, actual)?;
        let um = self.uploads.get_mut(&uid).expect("upload");
        um.received.extend_from_slice(bytes);
        um.next_index += 1;
        um.last_activity = now;
        let view = self.upload_view(&self.uploads[&uid]);
        Self::touch(self.vaults.get_mut(&u.vault).expect("vault"), now);
        eq(what, got.clone(), view)
    }

    pub fn finish_upload(
        &mut self,
        now: u64,
        who: Principal,
        uid: u64,
        actual: &Result<ItemView, VaultError>,
    ) -> Check {
        let what = "finish_upload";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let u = match self.load_upload(&who, uid, now) {
            Ok(u) => u.clone(),
            Err(e) => return expect_err(what, actual, &e),
        };
        let v = match self.load_owner(u.vault, &who, Self::writable) {
            Ok(v) => v,
            Err(e) => return expect_err(what, actual, &e),
        };
        if u.received.len() as u64 != u.size {
            return expect_err(
                what,
                actual,
                &VaultError::SizeMismatch {
                    expected: u.size,
                    actual: u.received.len() as u64,
                },
            );
        }
        if sha(&u.received) != u.sha {
            return expect_err(what, actual, &VaultError::ChecksumMismatch);
        }
        let old = match u.replaces {
            Some(item) => match v.items.get(&item) {
                Some(i) => Some(i.clone()),
                None => return expect_err(what, actual, &VaultError::NotFound),
            },
            None => None,
        };
        let max_items = self.cfg.limits.max_items_per_vault as usize;
        if old.is_none() && v.items.len() >= max_items {
            return expect_err(
                what,
                actual,
                &VaultError::PlanLimit {
                    resource: "items".into(),
                    limit: max_items as u64,
                },
            );
        }
        let got = ok_or_mismatch(what, actual)?;
        let (item, action) = match old {
            Some(old) => (
                MItem {
                    id: old.id,
                    kind: u.kind,
                    size: u.size,
                    sha: u.sha.clone(),
                    meta: u.meta.clone(),
                    recipients: u.recipients.clone(),
                    chunk_bytes: u.chunk_bytes,
                    created_at: old.created_at,
                    updated_at: now,
                    version: old.version + 1,
                    payload: u.received.clone(),
                },
                "content.item_replaced",
            ),
            None => {
                if !self.seen_items.insert(got.item_id) {
                    return Err(format!("{what}: item id {} reused", got.item_id));
                }
                (
                    MItem {
                        id: got.item_id,
                        kind: u.kind,
                        size: u.size,
                        sha: u.sha.clone(),
                        meta: u.meta.clone(),
                        recipients: u.recipients.clone(),
                        chunk_bytes: u.chunk_bytes,
                        created_at: now,
                        updated_at: now,
                        version: 1,
                        payload: u.received.clone(),
                    },
                    "content.item_added",
                )
            }
        };
        self.uploads.remove(&uid);
        let view = Self::item_view(u.vault, &item);
        let v = self.vaults.get_mut(&u.vault).expect("vault");
        v.items.insert(item.id, item);
        Self::touch(v, now);
        v.ev(action, who, now);
        Self::refresh_setup(v, now, who);
        eq(what, got.clone(), view)
    }

    pub fn abort_upload(
        &mut self,
        now: u64,
        who: Principal,
        uid: u64,
        actual: &Result<(), VaultError>,
    ) -> Check {
        let what = "abort_upload";
        if let Err(e) = self.admit(who, now, true) {
            return expect_err(what, actual, &e);
        }
        let Some(u) = self.uploads.get(&uid).cloned() else {
            return expect_err(what, actual, &VaultError::NotFound);
        };
        if u.owner != who {
            return expect_err(what, actual, &VaultError::NotAuthorized);
        }
        if let Err(e) = self.load_owner(u.vault, &who, |_| true) {
            return expect_err(what, actual, &e);
        }
        ok_or_mismatch(what, actual)?;
        self.uploads.remove(&uid);
        let v = self.vaults.get_mut(&u.vault).expect("vault");
        Self::touch(v, now);
        v.ev("content.upload_aborted", who, now);
        Ok(())
    }

    pub fn delete_item(
        &mut self,
        now: u64,
        who: Principal,
        vid: VaultId,
        item: u64,
        actual: &Result<(), VaultError>,
    ) -> Check {
        let what = "delete_item";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let v = match self.load_owner(vid, &who, Self::writable) {
            Ok(v) => v,
            Err(e) => return expect_err(what, actual, &e),
        };
        if !v.items.contains_key(&item) {
            return expect_err(what, actual, &VaultError::NotFound);
        }
        ok_or_mismatch(what, actual)?;
        let v = self.vaults.get_mut(&vid).expect("vault");
        v.items.remove(&item);
        Self::touch(v, now);
        v.ev("content.item_deleted", who, now);
        Self::refresh_setup(v, now, who);
        Ok(())
    }

    /// `update_item_meta` (owner, content-writable states): replaces an item's metadata and
    /// recipients; payload, checksum and version stay, `updated_at` moves. Checks: the
    /// vault, the metadata, the recipients, then the item.
    pub fn update_item_meta(
        &mut self,
        now: u64,
        who: Principal,
        args: &UpdateItemMetaArgs,
        actual: &Result<ItemView, VaultError>,
    ) -> Check {
        let what = "update_item_meta";
        if let Err(e) = self.admit(who, now, false) {
            return expect_err(what, actual, &e);
        }
        let vid = args.vault_id;
        let v = match self.load_owner(vid, &who, Self::writable) {
            Ok(v) => v,
            Err(e) => return expect_err(what, actual, &e),
        };
        if args.encrypted_meta.len() > 4096 {
            return expect_err(what, actual, &invalid("encrypted_meta"));
        }
        if let Some(r) = &args.recipients {
            if r.is_empty() || r.len() > 64 {
                return expect_err(what, actual, &invalid("recipients"));
            }
            for (i, id) in r.iter().enumerate() {
                let dup = r[..i].contains(id);
                let heir = v
                    .members
                    .get(id)
                    .is_some_and(|m| m.role == MemberRole::Heir);
                if dup || !heir {
                    return expect_err(what, actual, &invalid("recipients"));
                }
            }
        }
        if !v.items.contains_key(&args.item_id) {
            return expect_err(what, actual, &VaultError::NotFound);
        }
        let got = ok_or_mismatch(what, actual)?;
        let v = self.vaults.get_mut(&vid).expect("vault");
        let item = v.items.get_mut(&args.item_id).expect("item");
        item.meta = args.encrypted_meta.to_vec();
        item.recipients = args.recipients.clone();
        item.updated_at = now;
        let view = Self::item_view(vid, item);
        Self::touch(v, now);
        v.ev_d(
            "content.item_meta_updated",
            who,
            now,
            format!(
                "item={} meta_bytes={} recipients={}",
                args.item_id,
                args.encrypted_meta.len(),
                args.recipients.as_ref().map_or(-1, |r| r.len() as i64)
            ),
        );
        eq(what, got.clone(), view)
    }

    pub fn request_download(
        &mut self,
        now: u64,
        who: Principal,
        vid: VaultId,
        item: u64,
        actual: &Result<DownloadTicket, VaultError>,
    ) -> Check {
        let what = "request_download";
        if let Err(e) = self.admit(who, now, true) {
            return expect_err(what, actual, &e);
        }
        let v = match self.load(vid, &who) {
            Ok((v, _)) => v,
            Err(e) => return expect_err(what, actual, &e),
        };
        let heir = match self.reader(v, &who) {
            Ok(h) => h,
            Err(e) => return expect_err(what, actual, &e),
        };
        let Some(it) = v.items.get(&item) else {
            return expect_err(what, actual, &VaultError::NotFound);
        };
        if let Some(m) = heir {
            if !addressed_to(it, m) {
                return expect_err(what, actual, &VaultError::NotAuthorized);
            }
        }
        let day = now / DAY;
        let used = self.downloads.get(&(who, day)).copied().unwrap_or(0);
        if heir.is_some() && used >= self.cfg.limits.downloads_per_day {
            return expect_err(
                what,
                actual,
                &VaultError::DownloadLimitReached {
                    resets_at: (day + 1) * DAY,
                },
            );
        }
        let it = it.clone();
        let got = ok_or_mismatch(what, actual)?;
        if !self.seen_tickets.insert(got.ticket_id) {
            return Err(format!("{what}: ticket id {} reused", got.ticket_id));
        }
        let t = MTicket {
            id: got.ticket_id,
            vault: vid,
            item,
            holder: who,
            expires_at: now + self.cfg.d.download_ticket_secs * SEC,
            chunk_count: it.size.div_ceil(u64::from(it.chunk_bytes)) as u32,
            chunk_bytes: it.chunk_bytes,
            payload: it.payload.clone(),
            version: it.version,
        };
        let expected = DownloadTicket {
            ticket_id: t.id,
            vault_id: vid,
            item_id: item,
            size: it.size,
            chunk_count: t.chunk_count,
            chunk_bytes: it.chunk_bytes,
            sha256: serde_bytes::ByteBuf::from(it.sha.clone()),
            expires_at: t.expires_at,
        };
        if heir.is_some() {
            self.downloads.insert((who, day), used + 1);
        }
        self.tickets.insert(t.id, t);
        let v = self.vaults.get_mut(&vid).expect("vault");
        if heir.is_none() {
            Self::touch(v, now);
        }
        v.ev("content.download_requested", who, now);
        eq(what, got.clone(), expected)
    }

    /// `get_download_chunk` (query): what the model expects for chunk `index` of a ticket.
    pub fn download_chunk(
        &self,
        now: u64,
        who: Principal,
        tid: u64,
        index: u32,
    ) -> Result<Vec<u8>, VaultError> {
        let t = self.tickets.get(&tid).ok_or(VaultError::NotFound)?;
        if t.holder != who {
            return Err(VaultError::NotAuthorized);
        }
        if now >= t.expires_at {
            return Err(VaultError::TokenExpired);
        }
        let (v, _) = self.load(t.vault, &who)?;
        self.reader(v, &who)?;
        if index >= t.chunk_count {
            return Err(invalid("index"));
        }
        match v.items.get(&t.item) {
            Some(i) if i.version == t.version => {
                let cb = t.chunk_bytes as usize;
                let start = index as usize * cb;
                let end = (start + cb).min(t.payload.len());
                Ok(t.payload[start..end].to_vec())
            }
            _ => Err(VaultError::NotFound),
        }
    }

    // ---------------------------------------------------------------- admin

    pub fn set_paused(
        &mut self,
        now: u64,
        who: Principal,
        paused: bool,
        actual: &Result<(), VaultError>,
    ) -> Check {
        let what = "set_paused";
        if let Err(e) = self.admit(who, now, true) {
            return expect_err(what, actual, &e);
        }
        if who != self.admin {
            return expect_err(what, actual, &VaultError::NotAuthorized);
        }
        ok_or_mismatch(what, actual)?;
        self.paused = paused;
        Ok(())
    }

    /// `set_pricing` (admins): new quotes use the new table; frozen prices stay (SPEC §5).
    pub fn set_pricing(
        &mut self,
        now: u64,
        who: Principal,
        pricing: &Pricing,
        actual: &Result<(), VaultError>,
    ) -> Check {
        let what = "set_pricing";
        if let Err(e) = self.admit(who, now, true) {
            return expect_err(what, actual, &e);
        }
        if who != self.admin {
            return expect_err(what, actual, &VaultError::NotAuthorized);
        }
        ok_or_mismatch(what, actual)?;
        self.cfg.pricing = pricing.clone();
        Ok(())
    }

    // ---------------------------------------------------------------- scheduler (SPEC §10)

    /// One scheduler tick at `t` (a periodic timer run when `!manual`). Order: payment
    /// sessions due for a check, idle uploads, then the lifecycle deadlines that were due
    /// when the tick started (oldest deadline first).
    pub fn tick(&mut self, t: u64, manual: bool) {
        self.ticks += 1;
        if self.paused && !manual {
            return;
        }
        let me = self.canister;
        // Lifecycle duties due at the start of the tick: (deadline, kind, vault).
        let mut duties: Vec<(u64, u8, VaultId)> = Vec::new();
        for v in self.vaults.values() {
            let d = &self.cfg.d;
            let due = |at: u64| at <= t;
            match v.status {
                VaultStatus::Draft => {
                    let at = v.created_at + Cfg::days(d.draft_ttl_days);
                    if due(at) {
                        duties.push((at, 1, v.id));
                    }
                }
                VaultStatus::Active => {
                    let at = v.expires_at.expect("expires_at");
                    if due(at) {
                        duties.push((at, 2, v.id));
                    }
                    if self.unlock_due(v, t) {
                        let at = self.gate_opened_at(v).max(v.status_changed_at);
                        duties.push((at, 8, v.id));
                    }
                }
                VaultStatus::GraceMaster => {
                    let at = v.status_changed_at + Cfg::days(d.grace_master_days);
                    if due(at) {
                        duties.push((at, 3, v.id));
                    }
                }
                VaultStatus::GraceHeir => {
                    let at = v.status_changed_at + Cfg::days(d.grace_heir_days);
                    if due(at) {
                        duties.push((at, 4, v.id));
                    }
                    if self.unlock_due(v, t) {
                        duties.push((v.status_changed_at, 8, v.id));
                    }
                }
                VaultStatus::Unlockable => {
                    let at = v.access_until.expect("access_until");
                    if due(at) {
                        duties.push((at, 5, v.id));
                    }
                }
                VaultStatus::Expired => {
                    let at = v.status_changed_at + Cfg::days(d.tombstone_after_days);
                    if due(at) {
                        duties.push((at, 6, v.id));
                    }
                }
                VaultStatus::NeedSetup | VaultStatus::SetupComplete | VaultStatus::Deleted => {}
            }
        }
        duties.sort();
        let mut polls: Vec<(u64, u64)> = self
            .sessions
            .values()
            .filter_map(|s| s.next_poll.filter(|p| *p <= t).map(|p| (p, s.id)))
            .collect();
        polls.sort();
        // 1. Collectors: uploads idle for upload_idle_secs.
        let idle = self.cfg.d.upload_idle_secs * SEC;
        let mut stale: Vec<(u64, u64)> = self
            .uploads
            .values()
            .filter(|u| u.last_activity + idle <= t)
            .map(|u| (u.last_activity, u.id))
            .collect();
        stale.sort();
        for (_, uid) in stale {
            let u = self.uploads.remove(&uid).expect("upload");
            if let Some(v) = self.vaults.get_mut(&u.vault) {
                v.ev("content.upload_expired", system_mgmt(), t);
            }
        }
        // Expired download tickets: the expired prefix in id order (tickets live equally
        // long), at most 50 a tick (docs/decisions.md "Collectors run").
        let expired: Vec<u64> = self
            .tickets
            .values()
            .take(50)
            .take_while(|k| k.expires_at <= t)
            .map(|k| k.id)
            .collect();
        for id in expired {
            self.tickets.remove(&id);
        }
        // 2. Lifecycle deadlines (the due queue, taken at the start of the tick).
        for (_, kind, id) in duties {
            let Some(status) = self.vaults.get(&id).map(|v| v.status) else {
                continue;
            };
            match kind {
                1 if status == VaultStatus::Draft => {
                    self.erase_draft(id);
                }
                2 if status == VaultStatus::Active
                    && self.vaults[&id].expires_at.is_some_and(|e| e <= t) =>
                {
                    Self::transition(
                        self.vaults.get_mut(&id).expect("v"),
                        VaultStatus::GraceMaster,
                        t,
                        me,
                    );
                }
                3 if status == VaultStatus::GraceMaster => {
                    Self::transition(
                        self.vaults.get_mut(&id).expect("v"),
                        VaultStatus::GraceHeir,
                        t,
                        me,
                    );
                }
                4 if status == VaultStatus::GraceHeir => {
                    Self::transition(
                        self.vaults.get_mut(&id).expect("v"),
                        VaultStatus::Deleted,
                        t,
                        me,
                    );
                    self.tombstone(id, t);
                }
                5 if status == VaultStatus::Unlockable => {
                    Self::transition(
                        self.vaults.get_mut(&id).expect("v"),
                        VaultStatus::Expired,
                        t,
                        me,
                    );
                    self.purge_payload(id);
                }
                6 if status == VaultStatus::Expired => {
                    Self::transition(
                        self.vaults.get_mut(&id).expect("v"),
                        VaultStatus::Deleted,
                        t,
                        me,
                    );
                    self.tombstone(id, t);
                }
                8 => {
                    let v = &self.vaults[&id];
                    if self.unlock_due(v, t) {
                        let mut v = self.vaults.remove(&id).expect("v");
                        self.apply_unlock(&mut v, t, me);
                        self.vaults.insert(id, v);
                    }
                }
                _ => {}
            }
        }
        // 3. Payment checks due at the start of the tick (at most MAX_CHECKS_PER_TICK, oldest
        // first), after the lifecycle deadlines (docs/payments.md "The scheduler's checks").
        for (_, sid) in polls.into_iter().take(MAX_CHECKS_PER_TICK) {
            let outcome = self.verify(sid, t, me);
            let s = self.sessions[&sid].clone();
            let next = match (&s.status, &outcome) {
                (PaymentSessionStatus::Open, Err(VaultError::NotYetPaid)) => {
                    self.next_unpaid_check(&s, t)
                }
                (PaymentSessionStatus::Open, Err(VaultError::Underpaid { .. }))
                    if t < s.expires_at + SESSION_POLL_AFTER_EXPIRY =>
                {
                    Some(t + UNDERPAID_CHECK_INTERVAL)
                }
                _ => None,
            };
            self.sessions.get_mut(&sid).expect("session").next_poll = next;
        }
    }

    /// Runs the ticks due up to `target` (the host fires the timer at each deadline).
    pub fn advance_to(&mut self, target: u64) {
        while self.next_tick <= target {
            let t = self.next_tick;
            self.tick(t, false);
            self.next_tick = t + self.interval();
        }
    }
}

/// Unlock-rule validation (SPEC §4, bounds from the `.did`).
pub fn rules_error(r: &UnlockRules, plan: &PlanSelection, now: u64) -> Result<(), VaultError> {
    if r.unlock_after.is_none() && r.inactivity_days.is_none() {
        return Err(invalid("unlock_rules"));
    }
    if let Some(at) = r.unlock_after {
        if at <= now || at - now > 100 * 366 * DAY {
            return Err(invalid("unlock_rules.unlock_after"));
        }
    }
    if let Some(d) = r.inactivity_days {
        if d == 0 || d > 3650 {
            return Err(invalid("unlock_rules.inactivity_days"));
        }
    }
    if r.request_wait_days > 365 {
        return Err(invalid("unlock_rules.request_wait_days"));
    }
    if r.required_heirs > plan.heir_slots {
        return Err(invalid("unlock_rules.required_heirs"));
    }
    if r.required_witness && !plan.witness_slot {
        return Err(invalid("unlock_rules.required_witness"));
    }
    Ok(())
}
