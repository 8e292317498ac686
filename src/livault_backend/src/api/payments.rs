//! Payment endpoints: sessions, verification against the ICP ledger, billing, refunds.

use crate::domain::config::Account;
use crate::domain::error::VaultResult;
use crate::domain::payments::{self, types::*};
use crate::domain::types::{PageArgs, VaultId};

use super::{admit_update, read, rt, write, GlobalState, WhenPaused};

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn init_payment(vault_id: VaultId, purpose: PaymentPurpose) -> VaultResult<PaymentSession> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| payments::init_payment(s, &rt, vault_id, purpose))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn verify_payment(session_id: SessionId) -> VaultResult<PaymentReceipt> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    payments::verify_payment(&GlobalState, &rt, session_id).await
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn get_payment_session(session_id: SessionId) -> VaultResult<PaymentSession> {
    read(|s| payments::get_payment_session(s, &rt(), session_id))
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_payment_sessions(vault_id: VaultId, page: PageArgs) -> VaultResult<PaymentSessionPage> {
    read(|s| payments::list_payment_sessions(s, &rt(), vault_id, page))
}

#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn list_billing(page: PageArgs) -> VaultResult<BillingPage> {
    read(|s| payments::list_billing(s, &rt(), page))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
async fn refund_session(session_id: SessionId) -> VaultResult<PaymentSession> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Allow)?;
    payments::refund_session(&GlobalState, &rt, session_id).await
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn set_refund_account(vault_id: VaultId, account: Option<Account>) -> VaultResult<()> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| payments::set_refund_account(s, &rt, vault_id, account))
}

#[ic_cdk::update(guard = "crate::api::arguments::within_limits")]
fn set_treasury(treasury: Account) -> VaultResult<()> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Allow)?;
    write(|s| payments::set_treasury(s, &rt, treasury))
}
