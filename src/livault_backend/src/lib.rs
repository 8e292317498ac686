//! LiVault backend: a digital-legacy vault canister for the Internet Computer.
//!
//! Layers, top to bottom:
//! - [`api`]: thin `#[update]` / `#[query]` entry points (check caller, decode, delegate,
//!   map the domain's error into the endpoint's public error type);
//! - [`model`]: public types of the interface (the per-feature error types);
//! - [`domain`]: pure logic with no `ic_cdk` calls, behind the [`runtime::Runtime`] trait;
//! - [`storage`]: stable-memory layout and structures;
//! - [`model`]: the records, views and statuses every layer shares; it imports nothing of
//!   the crate;
//! - beside them, [`events`]: the canister log (one structured line per notable event).
//!
//! "SPEC §n" in comments means section n of the product contract, `docs/spec.md`.

pub mod api;
pub mod domain;
pub mod events;
pub mod model;
pub mod runtime;
pub mod storage;

// The interface the entry points define, as `__export_service()`: compared with the `.did`
// in a test. (`ic_cdk::export_candid!` would also export `get_candid_pointer` from the wasm;
// the `.did` is embedded as `candid:service` metadata by scripts/build.sh instead.)
#[cfg(test)]
mod export {
    use crate::domain::admin_trail::AdminTrailEntry;
    use crate::domain::error::VaultResult;
    use crate::domain::keys::*;
    use crate::model::config::Account;
    use crate::model::config::{LiVaultArgs, Pricing};
    use crate::model::errors::*;
    use crate::model::keys::*;
    use crate::model::member_types::*;
    use crate::model::payments::*;
    use crate::model::types::*;
    use candid::Principal;

    candid::export_service!();

    /// The exported interface as Candid text.
    pub fn interface() -> String {
        __export_service()
    }
}

#[cfg(test)]
mod candid_interface {
    use candid_parser::utils::{service_equal, CandidSource};

    /// The interface the code exports equals `candid/livault_backend.did` (the `.did` is the
    /// documented contract; change both together).
    #[test]
    fn exported_interface_matches_the_did_file() {
        let exported = super::export::interface();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../candid/livault_backend.did");
        if std::env::var_os("PRINT_CANDID").is_some() {
            println!("{exported}");
        }
        service_equal(CandidSource::Text(&exported), CandidSource::File(&path))
            .unwrap_or_else(|e| panic!("the code and {} differ: {e}", path.display()));
    }
}
