//! Heap guards of the payment flows (SPEC §6): one flow per **vault** at a time, and at most
//! [`MAX_FLOWS_PER_CALLER`] flows in flight per calling principal.
//!
//! - The per-vault lock serializes every flow that may move a vault's funds or apply its
//!   purpose (`verify_payment`, the scheduler's session check, `refund_session`), so two
//!   sessions of one vault can never both be confirmed against a stale view of the vault, and
//!   a second verification of the same session answers `Busy` instead of running twice.
//! - The per-caller cap keeps one principal from holding many flows at once. There is no
//!   canister-wide cap: a global cap is a door any set of throw-away principals can close on
//!   everyone (issue #12 M4). What bounds the total is the per-principal rate limit, the
//!   per-vault lock and the IC's own per-destination queue (a full queue fails the call
//!   synchronously → `LedgerUnavailable`, nothing changed). The scheduler (the canister
//!   itself) is not counted per caller: its own checks are bounded per tick.
//!
//! Guards are released on drop, which also happens when the IC cleans up after a trap in a
//! callback, so a trap never leaves a vault locked. Heap state is lost on upgrade, which is
//! correct: no call is in flight across an upgrade.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use candid::Principal;

use crate::domain::error::{VaultError, VaultResult};
use crate::model::types::VaultId;

/// Most payment flows one principal may have in flight at once.
pub const MAX_FLOWS_PER_CALLER: u32 = 2;

thread_local! {
    static VAULTS: RefCell<BTreeSet<VaultId>> = const { RefCell::new(BTreeSet::new()) };
    static CALLERS: RefCell<BTreeMap<Principal, u32>> = const { RefCell::new(BTreeMap::new()) };
}

/// Holds a vault's payment lock (and a slot of the caller's allowance) until dropped.
#[derive(Debug)]
pub struct PaymentGuard {
    vault: VaultId,
    caller: Option<Principal>,
}

impl PaymentGuard {
    /// Takes the vault's lock for a flow started by `caller` (`None`: the scheduler).
    /// `Busy` if another flow holds the vault or the caller already has
    /// [`MAX_FLOWS_PER_CALLER`] flows in flight.
    pub fn acquire(vault: VaultId, caller: Option<Principal>) -> VaultResult<PaymentGuard> {
        if VAULTS.with(|v| v.borrow().contains(&vault)) {
            return Err(VaultError::Busy);
        }
        if let Some(p) = caller {
            let full = CALLERS.with(|c| {
                let mut c = c.borrow_mut();
                let n = c.entry(p).or_default();
                if *n >= MAX_FLOWS_PER_CALLER {
                    true
                } else {
                    *n += 1;
                    false
                }
            });
            if full {
                return Err(VaultError::Busy);
            }
        }
        VAULTS.with(|v| v.borrow_mut().insert(vault));
        Ok(PaymentGuard { vault, caller })
    }
}

impl Drop for PaymentGuard {
    fn drop(&mut self) {
        VAULTS.with(|v| {
            v.borrow_mut().remove(&self.vault);
        });
        if let Some(p) = self.caller {
            CALLERS.with(|c| {
                let mut c = c.borrow_mut();
                if let Some(n) = c.get_mut(&p) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        c.remove(&p);
                    }
                }
            });
        }
    }
}

/// Whether a payment flow holds `vault` now.
pub fn vault_busy(vault: VaultId) -> bool {
    VAULTS.with(|v| v.borrow().contains(&vault))
}

/// Flows in flight now (for metrics and tests).
pub fn in_flight() -> usize {
    VAULTS.with(|v| v.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    #[test]
    fn one_flow_per_vault_and_a_cap_per_caller_but_none_global() {
        let a = PaymentGuard::acquire(1, Some(p(1))).unwrap();
        assert_eq!(
            PaymentGuard::acquire(1, Some(p(2))).unwrap_err(),
            VaultError::Busy,
            "the vault is locked for everyone"
        );
        assert_eq!(
            PaymentGuard::acquire(1, None).unwrap_err(),
            VaultError::Busy,
            "also for the scheduler"
        );
        let b = PaymentGuard::acquire(2, Some(p(1))).unwrap();
        assert_eq!(
            PaymentGuard::acquire(3, Some(p(1))).unwrap_err(),
            VaultError::Busy,
            "p(1) has two flows in flight"
        );
        // Many other principals and the scheduler are unaffected: no global cap.
        let others: Vec<_> = (10..200u64)
            .map(|v| PaymentGuard::acquire(v, Some(p(v as u8))).unwrap())
            .collect();
        let sched = PaymentGuard::acquire(500, None).unwrap();
        assert_eq!(in_flight(), 2 + others.len() + 1);
        drop(a);
        assert!(!vault_busy(1));
        let _c = PaymentGuard::acquire(3, Some(p(1))).unwrap();
        drop((b, others, sched));
        assert_eq!(in_flight(), 1);
    }
}
