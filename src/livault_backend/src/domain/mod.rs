//! Pure domain logic: no `ic_cdk` calls. Everything the environment provides comes through
//! [`crate::runtime::Runtime`]; everything persistent through [`crate::storage::State`].

pub mod access;
pub mod admin;
pub mod admin_trail;
pub mod config;
pub mod content;
pub mod error;
pub mod invites;
pub mod keys;
pub mod lifecycle;
pub mod maintenance;
#[cfg(test)]
mod member_tests;
pub mod metrics;
pub mod ops;
pub mod payments;
pub mod pricing;
pub mod rate_limit;
pub mod recovery;
pub mod scheduler;
pub mod tokens;
pub mod unlock;
pub mod validation;
pub mod vault_core;
pub mod vaults;
