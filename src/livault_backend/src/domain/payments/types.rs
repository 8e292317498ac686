//! Compatibility path: the records moved to [`crate::model::payments`].

pub use crate::model::payments::*;
