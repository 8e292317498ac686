//! Payment endpoints: sessions, verification against the ICP ledger, billing, refunds.

use crate::domain::admin_trail;
use crate::domain::payments;
use crate::model::config::Account;
use crate::model::payments::*;
use crate::model::types::{PageArgs, VaultId};
use crate::runtime::Runtime;

use super::errors::public;
use super::{read, rt, update, update_async, write, GlobalState, WhenPaused};
use crate::model::errors::{PaymentsError, ReadError};

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn init_payment(
    vault_id: VaultId,
    purpose: PaymentPurpose,
) -> Result<PaymentSession, PaymentsError> {
    public("init_payment", {
        update("init_payment", WhenPaused::Refuse, |rt, _| {
            write(|s| payments::init_payment(s, rt, vault_id, purpose))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn verify_payment(session_id: SessionId) -> Result<PaymentReceipt, PaymentsError> {
    public("verify_payment", {
        update_async("verify_payment", WhenPaused::Refuse, |rt, _| async move {
            payments::verify_payment(&GlobalState, &rt, session_id).await
        })
        .await
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_payment_session(session_id: SessionId) -> Result<PaymentSession, ReadError> {
    public("get_payment_session", {
        read(|s| payments::get_payment_session(s, &rt(), session_id))
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_payment_sessions(
    vault_id: VaultId,
    page: PageArgs,
) -> Result<PaymentSessionPage, ReadError> {
    public("list_payment_sessions", {
        read(|s| payments::list_payment_sessions(s, &rt(), vault_id, page))
    })
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_billing(page: PageArgs) -> Result<BillingPage, ReadError> {
    public("list_billing", {
        read(|s| payments::list_billing(s, &rt(), page))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn refund_session(session_id: SessionId) -> Result<PaymentSession, PaymentsError> {
    public("refund_session", {
        update_async(
            "refund_session",
            WhenPaused::Allow,
            |rt, caller| async move {
                let session = payments::refund_session(&GlobalState, &rt, session_id).await?;
                write(|s| {
                    admin_trail::record(
                        s,
                        rt.now(),
                        caller,
                        "refund_session",
                        admin_trail::candid_text(&session_id),
                        format!(
                            "status={:?} refunded_e8s={} refund_block={}",
                            session.status,
                            session.refunded_e8s,
                            session
                                .refund_block
                                .map_or("pending".to_string(), |b| b.to_string())
                        ),
                    )
                });
                Ok(session)
            },
        )
        .await
        .inspect_err(|e| admin_trail::log_refusal(rt().caller(), "refund_session", e))
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn set_refund_account(vault_id: VaultId, account: Option<Account>) -> Result<(), PaymentsError> {
    public("set_refund_account", {
        update("set_refund_account", WhenPaused::Refuse, |rt, _| {
            write(|s| payments::set_refund_account(s, rt, vault_id, account))
        })
    })
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn set_treasury(treasury: Account) -> Result<(), PaymentsError> {
    public("set_treasury", {
        update("set_treasury", WhenPaused::Allow, |rt, caller| {
            write(|s| {
                payments::set_treasury(s, rt, treasury.clone())?;
                let args = admin_trail::candid_text(&treasury);
                admin_trail::record(s, rt.now(), caller, "set_treasury", args, String::new());
                Ok(())
            })
        })
        .inspect_err(|e| admin_trail::log_refusal(rt().caller(), "set_treasury", e))
    })
}
