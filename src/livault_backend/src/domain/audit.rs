//! Compatibility path: the audit chain moved to [`crate::domain::vault_core::audit`] (an
//! append changes the vault: its chain head and sequence).

pub use crate::domain::vault_core::audit::*;
