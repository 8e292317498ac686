//! Heap guards of the payment flows: one flow per session at a time, and a global cap on
//! flows awaiting the ledger. Guards are released on drop, which also happens when the IC
//! cleans up after a trap in a callback, so a trap never leaves a session locked.
//! Heap state is lost on upgrade, which is correct: no call is in flight across an upgrade.

use std::cell::RefCell;
use std::collections::BTreeSet;

use super::types::SessionId;
use crate::domain::error::{VaultError, VaultResult};

/// Most payment flows in flight at once (each may await the ledger).
pub const MAX_IN_FLIGHT: usize = 16;

thread_local! {
    static IN_FLIGHT: RefCell<BTreeSet<SessionId>> = const { RefCell::new(BTreeSet::new()) };
}

/// Holds the session until dropped.
#[derive(Debug)]
pub struct SessionGuard(SessionId);

impl SessionGuard {
    /// Takes the session: `Busy` if another flow holds it or too many flows are in flight.
    pub fn acquire(session_id: SessionId) -> VaultResult<SessionGuard> {
        IN_FLIGHT.with(|set| {
            let mut set = set.borrow_mut();
            if set.contains(&session_id) || set.len() >= MAX_IN_FLIGHT {
                return Err(VaultError::Busy);
            }
            set.insert(session_id);
            Ok(SessionGuard(session_id))
        })
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        IN_FLIGHT.with(|set| {
            set.borrow_mut().remove(&self.0);
        });
    }
}

/// Flows in flight now (for metrics and tests).
pub fn in_flight() -> usize {
    IN_FLIGHT.with(|set| set.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_flow_per_session_and_a_global_cap() {
        let a = SessionGuard::acquire(1).unwrap();
        assert_eq!(SessionGuard::acquire(1).unwrap_err(), VaultError::Busy);
        drop(a);
        let _a = SessionGuard::acquire(1).unwrap();
        let mut held = Vec::new();
        for id in 2..=MAX_IN_FLIGHT as u64 {
            held.push(SessionGuard::acquire(id).unwrap());
        }
        assert_eq!(in_flight(), MAX_IN_FLIGHT);
        assert_eq!(SessionGuard::acquire(1000).unwrap_err(), VaultError::Busy);
        held.pop();
        assert!(SessionGuard::acquire(1000).is_ok());
    }
}
