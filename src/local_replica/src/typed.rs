//! The typed call API: encode the arguments with Candid, call, decode the reply, and a typed
//! error that tells a reject (the call did not produce a reply) from a Candid failure (the
//! reply, or the argument, does not match the types). The one client of the host that the
//! tests and the runners built on it use.
//!
//! ```no_run
//! # use local_replica::{Host, HostConfig, CallKind, CallError};
//! # use candid::Principal;
//! # fn f(host: &mut Host, who: Principal) -> Result<(), CallError> {
//! let n: u64 = host.update_candid(who, "inc", ())?;
//! let typed = host.call_typed::<_, u64>(CallKind::Query, who, "get", ())?;
//! println!("{} in {} instructions", typed.value, typed.total_instructions);
//! # let _ = n; Ok(()) }
//! ```

use crate::host::Host;
use crate::types::{Reject, Reply};
use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use serde::de::DeserializeOwned;

/// Update (submitted, run to quiescence, may persist) or query (never persists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// [`Host::update`].
    Update,
    /// [`Host::query`].
    Query,
}

/// A decoded reply and the instructions the call used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed<R> {
    /// The decoded return value.
    pub value: R,
    /// Instructions of the first execution of the message (see [`Reply::instructions`]).
    pub instructions: u64,
    /// Instructions of the whole call tree (see [`Reply::total_instructions`]).
    pub total_instructions: u64,
}

/// Error of a typed call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call was rejected (a trap, an explicit reject, a missing method, ...).
    #[error(transparent)]
    Reject(#[from] Reject),
    /// The arguments could not be encoded.
    #[error("{method}: cannot encode the arguments: {message}")]
    Encode {
        /// The method called.
        method: String,
        /// Candid's error.
        message: String,
    },
    /// The reply does not decode as the expected type.
    #[error("{method}: cannot decode the reply: {message}")]
    Decode {
        /// The method called.
        method: String,
        /// Candid's error.
        message: String,
    },
}

impl Host {
    /// A typed call: encodes `args` with Candid, makes the call as `caller`, decodes the one
    /// return value as `R`. The reply's instruction counts come with the value.
    pub fn call_typed<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        kind: CallKind,
        caller: Principal,
        method: &str,
        args: A,
    ) -> Result<Typed<R>, CallError> {
        let bytes = candid::encode_args(args).map_err(|e| CallError::Encode {
            method: method.to_string(),
            message: e.to_string(),
        })?;
        let reply: Reply = match kind {
            CallKind::Update => self.update(caller, method, bytes)?,
            CallKind::Query => self.query(caller, method, bytes)?,
        };
        let value = candid::decode_one(&reply.bytes).map_err(|e| CallError::Decode {
            method: method.to_string(),
            message: e.to_string(),
        })?;
        Ok(Typed {
            value,
            instructions: reply.instructions,
            total_instructions: reply.total_instructions,
        })
    }

    /// Typed update ([`Host::call_typed`] without the counts).
    pub fn update_candid<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        caller: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        self.call_typed(CallKind::Update, caller, method, args)
            .map(|t| t.value)
    }

    /// Typed query ([`Host::call_typed`] without the counts).
    pub fn query_candid<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        caller: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        self.call_typed(CallKind::Query, caller, method, args)
            .map(|t| t.value)
    }
}
