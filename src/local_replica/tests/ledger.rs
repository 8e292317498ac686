//! The ICP ledger model: legacy and ICRC-1 transfers, dedup, time checks, fee handling and
//! supply conservation. (Account identifiers are checked against `ic-ledger-types` by the
//! shared crate `icp_ledger_types`.)

use candid::{Decode, Encode, Nat, Principal};
use local_replica::ledger::{
    Account, Icrc1TransferArg, Icrc1TransferError, Ledger, TimeStamp, Tokens, TransferArgs,
    TransferError, FEE, PERMITTED_DRIFT_NS, TX_WINDOW_NS,
};
use local_replica::AccountId;
use serde_bytes::ByteBuf;

const NOW: u64 = 1_767_225_600_000_000_000;

fn alice() -> Principal {
    Principal::from_slice(&[1; 29])
}
fn bob() -> Principal {
    Principal::from_slice(&[2; 29])
}

fn args(amount: u64, created: Option<u64>) -> TransferArgs {
    TransferArgs {
        memo: 7,
        amount: Tokens { e8s: amount },
        fee: Tokens { e8s: FEE },
        from_subaccount: None,
        to: ByteBuf::from(AccountId::new(&bob(), None).0.to_vec()),
        created_at_time: created.map(|t| TimeStamp { timestamp_nanos: t }),
    }
}

#[test]
fn legacy_transfer_errors_and_dedup() {
    let mut l = Ledger::new();
    let a = AccountId::new(&alice(), None);
    l.mint(a, 1_000_000, NOW);
    let mut bad_fee = args(10, None);
    bad_fee.fee.e8s = 1;
    assert_eq!(
        l.transfer(&alice(), &bad_fee, NOW).unwrap(),
        Err(TransferError::BadFee {
            expected_fee: Tokens { e8s: FEE }
        })
    );
    assert_eq!(
        l.transfer(&alice(), &args(2_000_000, None), NOW).unwrap(),
        Err(TransferError::InsufficientFunds {
            balance: Tokens { e8s: 1_000_000 }
        })
    );
    let b1 = l
        .transfer(&alice(), &args(100, Some(NOW)), NOW)
        .unwrap()
        .unwrap();
    assert_eq!(b1, 1);
    assert_eq!(
        l.transfer(&alice(), &args(100, Some(NOW)), NOW + 1_000)
            .unwrap(),
        Err(TransferError::TxDuplicate { duplicate_of: 1 })
    );
    // Different amount: not a duplicate. No created_at_time: never deduplicated.
    assert_eq!(
        l.transfer(&alice(), &args(101, Some(NOW)), NOW).unwrap(),
        Ok(2)
    );
    assert_eq!(l.transfer(&alice(), &args(100, None), NOW).unwrap(), Ok(3));
    assert_eq!(l.transfer(&alice(), &args(100, None), NOW).unwrap(), Ok(4));
    let late = NOW + TX_WINDOW_NS + PERMITTED_DRIFT_NS + 1;
    assert_eq!(
        l.transfer(&alice(), &args(100, Some(NOW)), late).unwrap(),
        Err(TransferError::TxTooOld {
            allowed_window_nanos: TX_WINDOW_NS
        })
    );
    assert_eq!(
        l.transfer(
            &alice(),
            &args(100, Some(NOW + PERMITTED_DRIFT_NS + 1)),
            NOW
        )
        .unwrap(),
        Err(TransferError::TxCreatedInFuture)
    );
    assert_eq!(l.balance(&AccountId::new(&bob(), None)), 401);
    assert_eq!(l.fees_burned(), 4 * FEE);
    assert_eq!(l.total_supply() + l.fees_burned(), l.total_minted());
    assert_eq!(l.blocks().len(), 5);
}

#[test]
fn icrc1_via_candid() {
    let mut l = Ledger::new();
    l.mint(AccountId::new(&alice(), None), 50_000, NOW);
    let arg = Icrc1TransferArg {
        from_subaccount: None,
        to: Account {
            owner: bob(),
            subaccount: None,
        },
        amount: Nat::from(20_000u64),
        fee: None,
        memo: Some(ByteBuf::from(vec![1, 2, 3])),
        created_at_time: Some(NOW),
    };
    let reply = l
        .handle_call(&alice(), "icrc1_transfer", &Encode!(&arg).unwrap(), NOW)
        .unwrap();
    let r = Decode!(&reply, Result<Nat, Icrc1TransferError>).unwrap();
    assert_eq!(r, Ok(Nat::from(1u64)));
    let reply = l
        .handle_call(&alice(), "icrc1_transfer", &Encode!(&arg).unwrap(), NOW)
        .unwrap();
    let r = Decode!(&reply, Result<Nat, Icrc1TransferError>).unwrap();
    assert_eq!(
        r,
        Err(Icrc1TransferError::Duplicate {
            duplicate_of: Nat::from(1u64)
        })
    );
    let reply = l
        .handle_call(
            &alice(),
            "icrc1_balance_of",
            &Encode!(&Account {
                owner: bob(),
                subaccount: None
            })
            .unwrap(),
            NOW,
        )
        .unwrap();
    assert_eq!(Decode!(&reply, Nat).unwrap(), Nat::from(20_000u64));
    // Legacy balance sees the same account.
    #[derive(candid::CandidType)]
    struct AccountBalanceArgs {
        account: ByteBuf,
    }
    let reply = l
        .handle_call(
            &bob(),
            "account_balance",
            &Encode!(&AccountBalanceArgs {
                account: ByteBuf::from(AccountId::new(&bob(), None).0.to_vec())
            })
            .unwrap(),
            NOW,
        )
        .unwrap();
    assert_eq!(Decode!(&reply, Tokens).unwrap(), Tokens { e8s: 20_000 });
    let reply = l
        .handle_call(&bob(), "icrc1_fee", &Encode!().unwrap(), NOW)
        .unwrap();
    assert_eq!(Decode!(&reply, Nat).unwrap(), Nat::from(FEE));
    assert!(l
        .handle_call(&bob(), "nope", &Encode!().unwrap(), NOW)
        .is_err());
}
