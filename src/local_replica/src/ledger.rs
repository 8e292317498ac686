//! In-process model of the ICP ledger (`ryjl3-tyaaa-aaaaa-aaaba-cai`).
//!
//! This module owns balances (per account identifier), the block log, deduplication and
//! the Candid interface of `candid/icp_ledger.did` (the official ICP ledger interface for
//! the methods a canister taking ICP payments uses, checked against
//! `candid/reference/icp_ledger.did`; the types come from the shared crate
//! `icp_ledger_types`): legacy `transfer` / `account_balance` / `transfer_fee` /
//! `account_identifier` and ICRC-1 `icrc1_transfer` / `icrc1_balance_of` / `icrc1_fee`. An
//! ICRC account maps to its account identifier, so both interfaces see the same balances.

use candid::{CandidType, Decode, Encode, Nat, Principal};
use icp_ledger_types::{subaccount, AccountId};
pub use icp_ledger_types::{
    Account, AccountBalanceArgs, Icrc1TransferArg, Icrc1TransferError, TimeStamp, Tokens,
    TransferArgs, TransferError, TransferResult,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The ledger canister id.
pub const LEDGER_ID: &str = "ryjl3-tyaaa-aaaaa-aaaba-cai";
/// Transfer fee in e8s.
pub const FEE: u64 = icp_ledger_types::LEDGER_FEE_E8S;
/// Deduplication window (24 h).
pub const TX_WINDOW_NS: u64 = 24 * 3600 * 1_000_000_000;
/// Permitted clock drift (60 s).
pub const PERMITTED_DRIFT_NS: u64 = 60 * 1_000_000_000;

/// The ledger's principal.
pub fn ledger_principal() -> Principal {
    Principal::from_text(LEDGER_ID).expect("valid ledger id")
}

/// A decoded request to the ledger (for naming held calls, see
/// [`crate::host::Host::list_held_calls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerCall {
    /// Legacy `account_balance` (or `account_balance_dfx`).
    AccountBalance {
        /// The account asked about.
        account: AccountId,
    },
    /// Legacy `transfer`.
    Transfer {
        /// Memo (part of the dedup key).
        memo: u64,
        /// Amount in e8s.
        amount: u64,
        /// Fee in e8s.
        fee: u64,
        /// Sender subaccount (`None` = default).
        from_subaccount: Option<[u8; 32]>,
        /// Destination account identifier.
        to: AccountId,
        /// Creation time (part of the dedup key).
        created_at_time: Option<u64>,
    },
}

/// Decodes a request to the ledger; `None` for other methods or undecodable arguments.
pub fn describe_call(method: &str, arg: &[u8]) -> Option<LedgerCall> {
    match method {
        "account_balance" | "account_balance_dfx" => {
            let a = Decode!(arg, AccountBalanceArgs).ok()?;
            Some(LedgerCall::AccountBalance {
                account: AccountId::from_slice(&a.account).ok()?,
            })
        }
        "transfer" => {
            let a = Decode!(arg, TransferArgs).ok()?;
            let from_subaccount = match &a.from_subaccount {
                Some(b) => Some(<[u8; 32]>::try_from(&b[..]).ok()?),
                None => None,
            };
            Some(LedgerCall::Transfer {
                memo: a.memo,
                amount: a.amount.e8s,
                fee: a.fee.e8s,
                from_subaccount,
                to: AccountId::from_slice(&a.to).ok()?,
                created_at_time: a.created_at_time.map(|t| t.timestamp_nanos),
            })
        }
        _ => None,
    }
}

/// What a block records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Tokens created (test funding).
    Mint {
        /// Recipient.
        to: AccountId,
        /// Amount.
        amount: u64,
    },
    /// A transfer; the fee is burned.
    Transfer {
        /// Sender.
        from: AccountId,
        /// Recipient.
        to: AccountId,
        /// Amount.
        amount: u64,
        /// Fee.
        fee: u64,
    },
}

/// A ledger block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Block index.
    pub index: u64,
    /// Operation.
    pub op: Operation,
    /// Legacy memo (0 for ICRC transfers).
    pub memo: u64,
    /// ICRC memo.
    pub icrc1_memo: Option<Vec<u8>>,
    /// Caller-supplied creation time.
    pub created_at_time: Option<u64>,
    /// Ledger time of the block.
    pub timestamp: u64,
}

/// Dedup key: everything identifying a transaction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct DedupKey {
    icrc: bool,
    from: AccountId,
    to: AccountId,
    amount: u64,
    fee: Option<u64>,
    memo: u64,
    icrc1_memo: Option<Vec<u8>>,
    created_at_time: u64,
}

/// The ledger model's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ledger {
    balances: BTreeMap<AccountId, u64>,
    blocks: Vec<Block>,
    dedup: Vec<(DedupKey, u64)>,
    minted: u64,
    burned: u64,
    /// Calls handled per method (for tests that bound how often the canister asks).
    #[serde(default)]
    calls: BTreeMap<String, u64>,
}

/// A reject from a peer: (code, message).
pub type PeerReject = (u32, String);

fn decode_err(method: &str, e: impl std::fmt::Display) -> PeerReject {
    (
        5,
        format!("ledger: failed to decode the argument of {method}: {e}"),
    )
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mints `e8s` to `to` (test funding); returns the block index.
    pub fn mint(&mut self, to: AccountId, e8s: u64, now: u64) -> u64 {
        *self.balances.entry(to).or_default() += e8s;
        self.minted += e8s;
        self.push_block(Operation::Mint { to, amount: e8s }, 0, None, None, now)
    }

    /// Alias of [`Ledger::mint`] at time 0 (tests that don't care about time).
    pub fn fund(&mut self, to: AccountId, e8s: u64) -> u64 {
        let now = self.blocks.last().map(|b| b.timestamp).unwrap_or(0);
        self.mint(to, e8s, now)
    }

    /// Balance of an account.
    pub fn balance(&self, account: &AccountId) -> u64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// All blocks.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Sum of all balances.
    pub fn total_supply(&self) -> u64 {
        self.balances.values().sum()
    }

    /// Total minted.
    pub fn total_minted(&self) -> u64 {
        self.minted
    }

    /// Total fees burned.
    pub fn fees_burned(&self) -> u64 {
        self.burned
    }

    /// How many calls to `method` this ledger has handled.
    pub fn call_count(&self, method: &str) -> u64 {
        self.calls.get(method).copied().unwrap_or(0)
    }

    /// All non-zero balances.
    pub fn balances(&self) -> impl Iterator<Item = (&AccountId, &u64)> {
        self.balances.iter().filter(|(_, v)| **v > 0)
    }

    fn push_block(
        &mut self,
        op: Operation,
        memo: u64,
        icrc1_memo: Option<Vec<u8>>,
        created_at_time: Option<u64>,
        now: u64,
    ) -> u64 {
        let index = self.blocks.len() as u64;
        self.blocks.push(Block {
            index,
            op,
            memo,
            icrc1_memo,
            created_at_time,
            timestamp: now,
        });
        index
    }

    /// A legacy transfer as a wallet of `from` would do (default subaccount, fee 10_000,
    /// memo 0, no created_at_time).
    pub fn transfer_as(
        &mut self,
        from: &Principal,
        to: AccountId,
        amount: u64,
        now: u64,
    ) -> TransferResult {
        self.transfer(
            from,
            &TransferArgs {
                memo: 0,
                amount: Tokens { e8s: amount },
                fee: Tokens { e8s: FEE },
                from_subaccount: None,
                to: serde_bytes::ByteBuf::from(to.0.to_vec()),
                created_at_time: None,
            },
            now,
        )
        .unwrap_or_else(|_| unreachable!("valid account id"))
    }

    fn check_time(&self, created: u64, now: u64) -> Result<(), TimeError> {
        if created.saturating_add(TX_WINDOW_NS + PERMITTED_DRIFT_NS) < now {
            return Err(TimeError::TooOld);
        }
        if created > now.saturating_add(PERMITTED_DRIFT_NS) {
            return Err(TimeError::Future);
        }
        Ok(())
    }

    fn find_duplicate(&mut self, key: &DedupKey, now: u64) -> Option<u64> {
        // Forget keys that left the window.
        self.dedup.retain(|(k, _)| {
            k.created_at_time
                .saturating_add(TX_WINDOW_NS + PERMITTED_DRIFT_NS)
                >= now
        });
        self.dedup.iter().find(|(k, _)| k == key).map(|(_, b)| *b)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_transfer(
        &mut self,
        from: AccountId,
        to: AccountId,
        amount: u64,
        memo: u64,
        icrc1_memo: Option<Vec<u8>>,
        created_at_time: Option<u64>,
        now: u64,
    ) -> Result<u64, u64> {
        let balance = self.balance(&from);
        let needed = amount.checked_add(FEE).ok_or(balance)?;
        if balance < needed {
            return Err(balance);
        }
        *self.balances.entry(from).or_default() -= needed;
        *self.balances.entry(to).or_default() += amount;
        self.burned += FEE;
        Ok(self.push_block(
            Operation::Transfer {
                from,
                to,
                amount,
                fee: FEE,
            },
            memo,
            icrc1_memo,
            created_at_time,
            now,
        ))
    }

    /// Legacy `transfer` by `caller`. Errors of the outer `Result` are rejects.
    pub fn transfer(
        &mut self,
        caller: &Principal,
        args: &TransferArgs,
        now: u64,
    ) -> Result<TransferResult, PeerReject> {
        let to = AccountId::from_slice(&args.to)
            .map_err(|e| (5, format!("ledger: invalid account identifier: {e}")))?;
        let sub = subaccount(args.from_subaccount.as_ref().map(|b| &b[..]))
            .map_err(|e| (5, format!("ledger: invalid subaccount: {e}")))?;
        let from = AccountId::new(caller, sub);
        if args.fee.e8s != FEE {
            return Ok(Err(TransferError::BadFee {
                expected_fee: Tokens { e8s: FEE },
            }));
        }
        let mut key = None;
        if let Some(t) = args.created_at_time {
            match self.check_time(t.timestamp_nanos, now) {
                Err(TimeError::TooOld) => {
                    return Ok(Err(TransferError::TxTooOld {
                        allowed_window_nanos: TX_WINDOW_NS,
                    }))
                }
                Err(TimeError::Future) => return Ok(Err(TransferError::TxCreatedInFuture)),
                Ok(()) => {}
            }
            let k = DedupKey {
                icrc: false,
                from,
                to,
                amount: args.amount.e8s,
                fee: Some(args.fee.e8s),
                memo: args.memo,
                icrc1_memo: None,
                created_at_time: t.timestamp_nanos,
            };
            if let Some(b) = self.find_duplicate(&k, now) {
                return Ok(Err(TransferError::TxDuplicate { duplicate_of: b }));
            }
            key = Some(k);
        }
        match self.apply_transfer(
            from,
            to,
            args.amount.e8s,
            args.memo,
            None,
            args.created_at_time.map(|t| t.timestamp_nanos),
            now,
        ) {
            Ok(b) => {
                if let Some(k) = key {
                    self.dedup.push((k, b));
                }
                Ok(Ok(b))
            }
            Err(balance) => Ok(Err(TransferError::InsufficientFunds {
                balance: Tokens { e8s: balance },
            })),
        }
    }

    /// ICRC-1 `icrc1_transfer` by `caller`.
    pub fn icrc1_transfer(
        &mut self,
        caller: &Principal,
        arg: &Icrc1TransferArg,
        now: u64,
    ) -> Result<Result<Nat, Icrc1TransferError>, PeerReject> {
        let sub = subaccount(arg.from_subaccount.as_ref().map(|b| &b[..]))
            .map_err(|e| (5, format!("ledger: invalid subaccount: {e}")))?;
        let from = AccountId::new(caller, sub);
        let to_sub = subaccount(arg.to.subaccount.as_ref().map(|b| &b[..]))
            .map_err(|e| (5, format!("ledger: invalid subaccount: {e}")))?;
        let to = AccountId::new(&arg.to.owner, to_sub);
        let generic = |m: &str| Icrc1TransferError::GenericError {
            error_code: Nat::from(0u64),
            message: m.to_string(),
        };
        if let Some(f) = &arg.fee {
            if f.0 != candid::types::number::Nat::from(FEE).0 {
                return Ok(Err(Icrc1TransferError::BadFee {
                    expected_fee: Nat::from(FEE),
                }));
            }
        }
        if arg.memo.as_ref().is_some_and(|m| m.len() > 32) {
            return Ok(Err(generic("the memo field is too large")));
        }
        let amount: u64 = match u64::try_from(arg.amount.0.clone()) {
            Ok(a) => a,
            Err(_) => {
                return Ok(Err(Icrc1TransferError::InsufficientFunds {
                    balance: Nat::from(self.balance(&from)),
                }))
            }
        };
        let mut key = None;
        if let Some(t) = arg.created_at_time {
            match self.check_time(t, now) {
                Err(TimeError::TooOld) => return Ok(Err(Icrc1TransferError::TooOld)),
                Err(TimeError::Future) => {
                    return Ok(Err(Icrc1TransferError::CreatedInFuture {
                        ledger_time: now,
                    }))
                }
                Ok(()) => {}
            }
            let k = DedupKey {
                icrc: true,
                from,
                to,
                amount,
                fee: arg.fee.as_ref().map(|_| FEE),
                memo: 0,
                icrc1_memo: arg.memo.as_ref().map(|m| m.to_vec()),
                created_at_time: t,
            };
            if let Some(b) = self.find_duplicate(&k, now) {
                return Ok(Err(Icrc1TransferError::Duplicate {
                    duplicate_of: Nat::from(b),
                }));
            }
            key = Some(k);
        }
        match self.apply_transfer(
            from,
            to,
            amount,
            0,
            arg.memo.as_ref().map(|m| m.to_vec()),
            arg.created_at_time,
            now,
        ) {
            Ok(b) => {
                if let Some(k) = key {
                    self.dedup.push((k, b));
                }
                Ok(Ok(Nat::from(b)))
            }
            Err(balance) => Ok(Err(Icrc1TransferError::InsufficientFunds {
                balance: Nat::from(balance),
            })),
        }
    }

    /// Handles a Candid call from `caller`: returns reply bytes or a reject.
    pub fn handle_call(
        &mut self,
        caller: &Principal,
        method: &str,
        arg: &[u8],
        now: u64,
    ) -> Result<Vec<u8>, PeerReject> {
        *self.calls.entry(method.to_string()).or_default() += 1;
        let enc = |r: Result<Vec<u8>, candid::Error>| {
            r.map_err(|e| (5, format!("ledger: failed to encode reply: {e}")))
        };
        match method {
            "transfer" => {
                let a = Decode!(arg, TransferArgs).map_err(|e| decode_err(method, e))?;
                let r = self.transfer(caller, &a, now)?;
                enc(Encode!(&r))
            }
            "account_balance" | "account_balance_dfx" => {
                let a = Decode!(arg, AccountBalanceArgs).map_err(|e| decode_err(method, e))?;
                let acc = AccountId::from_slice(&a.account)
                    .map_err(|e| (5, format!("ledger: invalid account identifier: {e}")))?;
                enc(Encode!(&Tokens {
                    e8s: self.balance(&acc)
                }))
            }
            "transfer_fee" => {
                #[derive(CandidType, Deserialize)]
                struct TransferFeeArg {}
                #[derive(CandidType)]
                struct TransferFee {
                    transfer_fee: Tokens,
                }
                let _ = Decode!(arg, TransferFeeArg).map_err(|e| decode_err(method, e))?;
                enc(Encode!(&TransferFee {
                    transfer_fee: Tokens { e8s: FEE }
                }))
            }
            "account_identifier" => {
                let a = Decode!(arg, Account).map_err(|e| decode_err(method, e))?;
                let sub = subaccount(a.subaccount.as_ref().map(|b| &b[..]))
                    .map_err(|e| (5, format!("ledger: invalid subaccount: {e}")))?;
                let id = AccountId::new(&a.owner, sub);
                enc(Encode!(&serde_bytes::ByteBuf::from(id.0.to_vec())))
            }
            "icrc1_fee" => enc(Encode!(&Nat::from(FEE))),
            "icrc1_balance_of" => {
                let a = Decode!(arg, Account).map_err(|e| decode_err(method, e))?;
                let sub = subaccount(a.subaccount.as_ref().map(|b| &b[..]))
                    .map_err(|e| (5, format!("ledger: invalid subaccount: {e}")))?;
                enc(Encode!(&Nat::from(
                    self.balance(&AccountId::new(&a.owner, sub))
                )))
            }
            "icrc1_transfer" => {
                let a = Decode!(arg, Icrc1TransferArg).map_err(|e| decode_err(method, e))?;
                let r = self.icrc1_transfer(caller, &a, now)?;
                enc(Encode!(&r))
            }
            _ => Err((
                5,
                format!("Canister {LEDGER_ID} has no update method '{method}'"),
            )),
        }
    }
}

enum TimeError {
    TooOld,
    Future,
}
