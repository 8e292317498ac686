//! Compatibility path: the records moved to [`crate::model::records`].

pub use crate::model::records::*;
