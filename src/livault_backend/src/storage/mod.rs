//! Stable-memory storage: the memory layout, record encoding and the structures over them.
//!
//! Everything that must survive an upgrade lives here, in `ic-stable-structures`
//! collections opened with `init` (never `new`) over the memories listed in [`memory`].
//! Nothing is serialized in `pre_upgrade`.

pub mod codec;
pub mod memory;
pub mod state;

pub use state::State;
