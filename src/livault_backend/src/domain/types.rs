//! Compatibility path: the records moved to [`crate::model::types`].

pub use crate::model::types::*;
