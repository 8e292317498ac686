//! Stable-memory storage: the memory layout, record encoding and the structures over them.
//!
//! Everything that must survive an upgrade lives here, over the memories listed in
//! [`memory`]: `ic-stable-structures` collections opened with `init` (never `new`), and for
//! the hot paths our own constant-cost structures ([`slab`], [`audit_log`], [`chunk_index`],
//! [`due_queue`]). Nothing is serialized in `pre_upgrade` but the operational counters,
//! which live in the heap (`domain::ops`) and are written there as one bounded snapshot.

pub mod admin_trail;
pub mod audit_log;
pub mod binary;
pub mod chunk_index;
pub mod codec;
pub mod details;
pub mod due_queue;
pub mod memory;
pub mod owner_index;
pub mod pages;
pub mod repositories;
pub mod slab;
pub mod state;

pub use repositories::LoadedVault;
pub use state::State;

use std::cell::RefCell;

/// Access to the state for flows that `await` between steps (ledger calls, randomness): a
/// borrow is never held across an `await`, so each step re-reads what it needs.
pub trait StateAccess {
    /// Runs `f` with read access.
    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R;
    /// Runs `f` with write access.
    fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R;
}

/// Native tests keep their state in a `RefCell`.
impl StateAccess for RefCell<State> {
    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.borrow())
    }
    fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.borrow_mut())
    }
}

/// Shared by the storage structures' randomized model tests.
#[cfg(test)]
pub(crate) mod model_test {
    /// Cases per model test: `default` (sized so the unit test run stays short), or
    /// `LIVAULT_STORAGE_MODEL_CASES` for a longer run (see docs/fuzzing.md).
    pub fn cases(default: u32) -> u32 {
        match std::env::var("LIVAULT_STORAGE_MODEL_CASES") {
            Ok(v) => v
                .parse()
                .expect("LIVAULT_STORAGE_MODEL_CASES must be a number of cases"),
            Err(_) => default,
        }
    }

    /// Panics with `what`'s invariant violation, if any.
    #[track_caller]
    pub fn ok<T>(what: Result<T, String>) -> T {
        what.unwrap_or_else(|e| panic!("invariant violated: {e}"))
    }
}
