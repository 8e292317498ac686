//! Plans and prices: queries open to everyone, anonymous included.

use crate::domain::{admin, pricing, vaults};
use crate::model::types::{PlanSelection, PlansInfo, Quote, QuoteArgs, UpgradeQuote, VaultId};

use super::errors::public;
use super::{read, rt};
use crate::model::errors::{ReadError, VaultsError};

/// Current tiers, fees and age brackets.
#[ic_cdk::query]
fn get_plans() -> PlansInfo {
    read(admin::plans)
}

/// Price of a new vault with this plan and owner age.
#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn quote(args: QuoteArgs) -> Result<Quote, ReadError> {
    public("quote", {
        read(|s| pricing::quote(&s.config().pricing, &args.plan, args.owner_age))
    })
}

/// Prorated price to move an owned, paid vault to a bigger plan.
#[ic_cdk::query(guard = "crate::api::arguments::within_limits")]
fn quote_upgrade(vault_id: VaultId, to: PlanSelection) -> Result<UpgradeQuote, VaultsError> {
    public("quote_upgrade", {
        read(|s| vaults::quote_upgrade(s, &rt(), vault_id, to))
    })
}
