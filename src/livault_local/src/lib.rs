//! # livault_local — LiVault on the embedded IC host
//!
//! The LiVault-specific layer over the generic host of `local_replica`:
//!
//! * [`cli`]: the `livault-local` command line, a dfx-like runner whose state persists in a
//!   directory (install, call, upload/download with LiVault's chunked content API, the ICP
//!   ledger model, time travel, identities) and the narrated `demo` journey;
//! * [`vetkeys_client`]: a LiVault client's key handling with ic-vetkeys (the demo and the
//!   end-to-end tests use it);
//! * [`progress`]: the text progress bar of long CLI operations.
//!
//! Typed calls go through the host's typed call API ([`local_replica::typed`]).

#![warn(missing_docs)]

pub mod cli;
pub mod progress;
pub mod vetkeys_client;
