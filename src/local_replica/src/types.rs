//! Plain data types shared by the host: responses, rejects, replies and performed calls.

use serde::{Deserialize, Serialize};

/// IC reject codes (interface spec, "Reject codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum RejectCode {
    /// Fatal system error.
    SysFatal = 1,
    /// Transient system error (e.g. queue full); retrying may succeed.
    SysTransient = 2,
    /// The destination (canister or method) does not exist.
    DestinationInvalid = 3,
    /// The canister explicitly rejected (`ic0.msg_reject`).
    CanisterReject = 4,
    /// The canister trapped or did not reply.
    CanisterError = 5,
    /// The outcome is unknown (best-effort call timed out).
    SysUnknown = 6,
}

impl RejectCode {
    /// The code from its number (unknown numbers map to `CanisterError`).
    pub fn from_u32(code: u32) -> Self {
        match code {
            1 => Self::SysFatal,
            2 => Self::SysTransient,
            3 => Self::DestinationInvalid,
            4 => Self::CanisterReject,
            6 => Self::SysUnknown,
            _ => Self::CanisterError,
        }
    }
}

/// Outcome of a call as seen by the caller: reply bytes or reject code + message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Reply payload (Candid bytes for Candid methods).
    Reply(Vec<u8>),
    /// Reject code (number) and message.
    Reject(u32, String),
}

/// A successful top-level call: the reply bytes and instruction counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Reply payload.
    pub bytes: Vec<u8>,
    /// Instructions of the first execution of the message (the `canister_update`/`query`).
    pub instructions: u64,
    /// Instructions of all executions of the message's call tree (callbacks, self-calls).
    pub total_instructions: u64,
}

/// A rejected top-level call (or a host-level refusal such as "not installed").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reject (code {code:?}): {message}")]
pub struct Reject {
    /// Reject code.
    pub code: RejectCode,
    /// Reject message.
    pub message: String,
    /// Instructions of the whole call tree before the reject.
    pub total_instructions: u64,
}

impl Reject {
    /// A reject without instructions.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Reject {
            code,
            message: message.into(),
            total_instructions: 0,
        }
    }
}

/// A call performed by the canister (`call_new` ... `call_perform`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutCall {
    /// Callee principal bytes.
    pub callee: Vec<u8>,
    /// Method name.
    pub method: String,
    /// Argument bytes.
    pub arg: Vec<u8>,
    /// Reply callback: (table index, env).
    pub reply: (u32, u32),
    /// Reject callback: (table index, env).
    pub reject: (u32, u32),
    /// Cleanup callback: (table index, env).
    pub cleanup: Option<(u32, u32)>,
    /// Cycles attached (ignored by the peers).
    pub cycles: u128,
    /// Best-effort timeout in seconds (`call_with_best_effort_response`).
    pub timeout_seconds: Option<u32>,
}
