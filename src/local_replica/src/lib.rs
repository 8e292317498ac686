//! # local_replica — an embedded Internet Computer host
//!
//! Runs a compiled canister wasm (`wasm32-unknown-unknown`) in-process with the IC's
//! execution semantics, so end-to-end tests and local runners built on it need neither
//! dfx nor PocketIC. It knows nothing of any particular canister:
//!
//! * the `ic0` system API used by ic-cdk 0.20, ic-cdk-timers 1.x and
//!   ic-stable-structures 0.7 ([`ic0`]); any other import is a trapping stub;
//! * atomic executions: a trap rolls back heap, mutable globals, stable memory, the global
//!   timer, the reply and the calls performed ([`canister`]);
//! * call contexts, inter-canister calls with reply/reject/cleanup callbacks, self-calls,
//!   the "did not reply" rule, `inspect_message`, queries that never persist, timers on a
//!   controlled clock, atomic install/upgrade ([`host`]);
//! * peers: an ICP ledger model ([`ledger`]) and the management canister's `raw_rand`
//!   (seeded, deterministic), `vetkd_public_key` and `vetkd_derive_key` with fixed test
//!   master keys and the IC's fees ([`vetkd`]);
//! * cycles: attached cycles leave the canister's balance, unused ones are refunded;
//! * instruction counting with the IC's cost table and limits ([`costs`]);
//! * fault injection: rejected calls, unknown outcomes, held calls, trapping callbacks,
//!   traps at the n-th call of an ic0 function;
//! * held calls listed and released one at a time with a chosen outcome (delivered,
//!   rejected, applied with an unknown outcome, applied then the callback traps, too old);
//! * persistence of the whole host to a directory (for command-line runners), and in-memory
//!   snapshots of a quiescent host to return to ([`persist`]: [`Host::snapshot`],
//!   [`Host::restore`]);
//! * one typed call API: Candid arguments in, a decoded reply or a typed error out
//!   ([`typed`]: [`Host::call_typed`], [`Host::update_candid`], [`Host::query_candid`]).
//!
//! The ICP ledger's types and account identifiers come from the crate shared with
//! canisters, `icp_ledger_types` (re-exported as [`ledger_types`]).
//!
//! ```no_run
//! use local_replica::{Host, HostConfig, AccountId};
//! use candid::Principal;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let wasm = std::fs::read("counter.wasm")?;
//! let controller = Principal::from_slice(&[1; 29]);
//! let mut host = Host::new(HostConfig::default());
//! let id = host.install(&wasm, candid::encode_args(())?, controller)?;
//! host.fund(AccountId::new(&id, None), 100_000_000);
//! let n: u64 = host.update_candid(controller, "inc", ())?;
//! host.advance_time(std::time::Duration::from_secs(3 * 86_400));
//! # let _ = n; Ok(()) }
//! ```
//!
//! Instructions are counted as on the IC: the module is instrumented with the IC's rules
//! (a counter decremented per basic block by the IC's operator weights, bulk-memory sizes
//! charged at run time) and system calls charge the IC's overheads and per-byte costs (see
//! [`instrument`] and [`costs`]).

#![warn(missing_docs)]

pub mod canister;
pub mod costs;
pub mod host;
pub mod ic0;
pub mod instrument;
pub mod ledger;
pub mod persist;
pub mod typed;
pub mod types;
pub mod vetkd;

pub use host::{
    CanisterStatus, ExecRecord, HeldCall, HeldOutcome, Host, HostConfig, HostError, LogRecord,
    MessageId, MessageStatus, ReleaseError,
};
pub use icp_ledger_types as ledger_types;
pub use icp_ledger_types::AccountId;
pub use ledger::LedgerCall;
pub use ledger::{ledger_principal, Ledger, LEDGER_ID};
pub use persist::{HostSnapshot, PersistError};
pub use typed::{CallError, CallKind, Typed};
pub use types::{Reject, RejectCode, Reply, Response};
