//! Pure domain logic: no `ic_cdk` calls. Everything the environment provides comes through
//! [`crate::runtime::Runtime`]; everything persistent through [`crate::storage::State`].

pub mod access;
pub mod admin;
pub mod audit;
pub mod config;
pub mod error;
pub mod lifecycle;
pub mod payments;
pub mod pricing;
pub mod rate_limit;
pub mod records;
pub mod scheduler;
pub mod types;
pub mod validation;
pub mod vaults;
