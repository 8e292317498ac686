//! The invariants checked after every path, as a pure function of what was observed.

use std::collections::BTreeMap;

use livault_backend::domain::vault_core::audit::event_hash;
use local_replica::ledger::Operation;

use crate::*;
/// One session as observed after a path.
#[derive(Clone, Debug)]
pub struct ObservedSession {
    /// Its label in the setup (A, B, U, R).
    pub label: String,
    /// `list_payment_sessions`' view of it.
    pub session: PaymentSession,
    /// Its subaccount.
    pub account: AccountId,
    /// The subaccount's balance.
    pub left: u64,
}

/// Everything the invariants look at (see [`violations`]).
#[derive(Clone, Debug)]
pub struct Observed {
    /// Ledger: total minted.
    pub minted: u64,
    /// Ledger: sum of balances.
    pub supply: u64,
    /// Ledger: fees burned.
    pub burned: u64,
    /// Ledger blocks.
    pub blocks: Vec<local_replica::ledger::Block>,
    /// Where sweeps go.
    pub treasury: AccountId,
    /// The owner's default account (where refunds go).
    pub owner: AccountId,
    /// The vault.
    pub vault: VaultId,
    /// Whether the vault is gone (an unpaid draft erased by `delete_vault`): no audit log.
    pub vault_erased: bool,
    /// `list_billing`.
    pub bills: Vec<BillingEntry>,
    /// The setup's sessions.
    pub sessions: Vec<ObservedSession>,
    /// The vault's audit log (owner's view, oldest first).
    pub events: Vec<AuditEventView>,
}

/// Whether the billing entry's excess refund applied: settled (not pending) with a non-zero
/// amount (a refund known not applied is recorded as 0). Its block is `None` when the outcome
/// was inferred from the subaccount's balance after `TxTooOld` (the ledger's dedup window
/// passed after an unknown answer).
fn excess_refunded(b: &BillingEntry) -> bool {
    !b.refund_pending && b.refund_e8s > 0
}

/// The invariants of the module docs on an observation; one text per violation.
pub fn violations(o: &Observed) -> Vec<String> {
    let mut v = Vec::new();
    if o.minted != o.supply + o.burned {
        v.push(format!(
            "ledger: minted {} != balances {} + fees burned {}",
            o.minted, o.supply, o.burned
        ));
    }
    let mut late_refunds = 0usize;
    for s in &o.sessions {
        let (name, session, acc, left) = (&s.label, &s.session, s.account, s.left);
        let (mut paid_in, mut fees) = (0u64, 0u64);
        let mut sweeps = Vec::new();
        let mut refunds = Vec::new();
        for b in &o.blocks {
            match &b.op {
                Operation::Mint { to, amount } if *to == acc => paid_in += amount,
                Operation::Transfer {
                    from,
                    to,
                    amount,
                    fee,
                } => {
                    if *to == acc {
                        paid_in += amount;
                    }
                    if *from == acc {
                        fees += fee;
                        if *to == o.treasury {
                            sweeps.push((b.index, *amount));
                        } else if *to == o.owner {
                            refunds.push((b.index, *amount));
                        } else {
                            v.push(format!(
                                "session {name}: transfer of {amount} e8s to an unknown account {to}"
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        let swept: u64 = sweeps.iter().map(|x| x.1).sum();
        let refunded: u64 = refunds.iter().map(|x| x.1).sum();
        if paid_in != swept + refunded + fees + left {
            v.push(format!(
                "session {name}: paid in {paid_in} != swept {swept} + refunded {refunded} + \
                 fees {fees} + left {left}"
            ));
        }
        if left > LEDGER_FEE {
            v.push(format!(
                "session {name}: {left} e8s stuck on its subaccount"
            ));
        }
        let billed: Vec<&BillingEntry> = o
            .bills
            .iter()
            .filter(|b| b.session_id == session.id)
            .collect();
        if sweeps.len() > 1 {
            v.push(format!("session {name}: swept {} times", sweeps.len()));
        }
        match (sweeps.first(), billed.as_slice()) {
            (None, []) => {
                if session.status == PaymentSessionStatus::Completed {
                    v.push(format!("session {name}: Completed without a sweep"));
                }
            }
            (Some((block, amount)), [b]) => {
                if !b.applied {
                    v.push(format!(
                        "session {name}: {amount} e8s swept to the treasury (block {block}) but \
                         its purpose {:?} was not applied by it (billing {} applied = false; \
                         the subaccount holds {left} e8s): the payer's money is in the \
                         treasury for nothing",
                        session.purpose, b.id
                    ));
                }
                if b.treasury_e8s != *amount {
                    v.push(format!(
                        "session {name}: billing says {} e8s swept, the ledger {amount}",
                        b.treasury_e8s
                    ));
                }
                if b.sweep_block.is_some_and(|x| x != *block) {
                    v.push(format!(
                        "session {name}: billing names sweep block {:?}, the ledger {block}",
                        b.sweep_block
                    ));
                }
                if session.status != PaymentSessionStatus::Completed {
                    v.push(format!("session {name}: swept but {:?}", session.status));
                }
                if left != b.dust_e8s && left != 0 {
                    v.push(format!(
                        "session {name}: {left} e8s left, billing dust {}",
                        b.dust_e8s
                    ));
                }
            }
            (sweep, billed) => v.push(format!(
                "session {name}: sweep {sweep:?} but {} billing entries",
                billed.len()
            )),
        }
        // Refunds in the ledger = the excess refund of the billing + refund_session.
        let billed_refund: u64 = billed
            .iter()
            .filter(|b| excess_refunded(b))
            .map(|b| b.refund_e8s)
            .sum();
        if refunded != billed_refund + session.refunded_e8s {
            v.push(format!(
                "session {name}: {refunded} e8s refunded on the ledger, billing says \
                 {billed_refund} and the session {}",
                session.refunded_e8s
            ));
        }
        if session.refunded_e8s > 0 {
            late_refunds += 1;
            // After a sweep, refund_session may only return the excess whose own refund did
            // not apply (no funds arrive after the setups' payments).
            let excess_only = billed.first().is_some_and(|b| {
                !excess_refunded(b)
                    && session.refunded_e8s + LEDGER_FEE
                        == b.received_e8s.saturating_sub(b.amount_e8s)
            });
            if !sweeps.is_empty() && !excess_only {
                v.push(format!(
                    "session {name}: both swept and refunded by refund_session ({} e8s, more \
                     than an excess left after the sweep)",
                    session.refunded_e8s
                ));
            }
        }
        if session.status == PaymentSessionStatus::Refunded && !sweeps.is_empty() {
            v.push(format!("session {name}: Refunded but swept"));
        }
    }
    // Each purpose applied at most once; stale upgrades never applied.
    let vault_bills: Vec<&BillingEntry> =
        o.bills.iter().filter(|b| b.vault_id == o.vault).collect();
    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    for b in vault_bills.iter().filter(|b| b.applied) {
        *applied.entry(purpose_key(&b.purpose)).or_default() += 1;
    }
    for (p, n) in &applied {
        if *n > 1 {
            v.push(format!("purpose {p} applied {n} times (billing)"));
        }
    }
    let renewed_at = vault_bills
        .iter()
        .filter(|b| b.applied && b.purpose == PaymentPurpose::Renew)
        .map(|b| b.recorded_at)
        .min();
    for b in vault_bills.iter().filter(|b| b.applied) {
        if let (PaymentPurpose::Upgrade(_), Some(r)) = (b.purpose, renewed_at) {
            // SPEC §6: a session past expiry applies an upgrade "only if ... no renewal
            // happened since" it was opened.
            let (opened, expires) = o
                .sessions
                .iter()
                .find(|s| s.session.id == b.session_id)
                .map_or((0, 0), |s| (s.session.created_at, s.session.expires_at));
            if opened < r && r <= b.recorded_at && b.recorded_at >= expires {
                v.push(format!(
                    "upgrade session {} (expired, opened before the renewal) applied after \
                     the renewal at its stale quote (SPEC §6: refund-only)",
                    b.session_id
                ));
            }
        }
    }
    if o.vault_erased && !vault_bills.is_empty() {
        v.push(format!(
            "the vault was erased as an unpaid draft but has {} billing entries",
            vault_bills.len()
        ));
    }
    if o.vault_erased {
        return v;
    }
    // The audit log.
    let mut prev = vec![0u8; 32];
    for e in &o.events {
        let h = event_hash(&prev, e.seq, e.at, &e.actor, &e.action, &e.details);
        if h.as_slice() != e.hash.as_slice() {
            v.push(format!(
                "audit: event {} ({}) breaks the hash chain",
                e.seq, e.action
            ));
            break;
        }
        prev = e.hash.to_vec();
    }
    let count =
        |pred: &dyn Fn(&AuditEventView) -> bool| o.events.iter().filter(|e| pred(e)).count();
    let confirmed = count(&|e| e.action == "payment.confirmed");
    if confirmed != vault_bills.len() {
        v.push(format!(
            "audit: {confirmed} payment.confirmed events for {} billing entries",
            vault_bills.len()
        ));
    }
    let refunded_events = count(&|e| e.action == "payment.refunded");
    if refunded_events != late_refunds {
        v.push(format!(
            "audit: {refunded_events} payment.refunded events for {late_refunds} refunded sessions"
        ));
    }
    let created =
        count(&|e| e.action == "status.changed" && e.details.starts_with("Draft -> NeedSetup"));
    let renewed =
        count(&|e| e.action == "status.changed" && e.details.starts_with("GraceMaster -> Active"));
    for (what, n, purpose) in [
        ("creation (Draft -> NeedSetup)", created, "Create"),
        ("renewal (GraceMaster -> Active)", renewed, "Renew"),
    ] {
        if n > 1 {
            v.push(format!("audit: {what} applied {n} times"));
        }
        let billed = applied.get(purpose).copied().unwrap_or(0);
        if n != billed {
            v.push(format!(
                "audit: {what} logged {n} times, {billed} applied {purpose} billing entries"
            ));
        }
    }
    let upgraded = count(&|e| e.action == "vault.plan_upgraded");
    let billed_upgrades: usize = applied
        .iter()
        .filter(|(p, _)| p.starts_with("Upgrade"))
        .map(|(_, n)| n)
        .sum();
    if upgraded != billed_upgrades {
        v.push(format!(
            "audit: {upgraded} vault.plan_upgraded events, {billed_upgrades} applied upgrade \
             billing entries"
        ));
    }
    v
}

/// A purpose as a key: `Create`, `Renew`, `Upgrade(Premium/3/true)`.
fn purpose_key(p: &PaymentPurpose) -> String {
    match p {
        PaymentPurpose::Create => "Create".into(),
        PaymentPurpose::Renew => "Renew".into(),
        PaymentPurpose::Upgrade(plan) => format!(
            "Upgrade({:?}/{}/{})",
            plan.tier, plan.heir_slots, plan.witness_slot
        ),
    }
}
