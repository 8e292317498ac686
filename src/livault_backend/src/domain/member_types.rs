//! Compatibility path: the records moved to [`crate::model::member_types`].

pub use crate::model::member_types::*;
