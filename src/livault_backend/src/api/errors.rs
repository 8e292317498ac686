//! The domain's error ([`VaultError`], 28 cases) mapped into each endpoint's public error
//! type (`model::errors`, docs/decisions.md "Per-feature error types").
//!
//! Each public type holds the cases its endpoints can return; [`ENDPOINT_ERRORS`] says which
//! endpoint returns which type. The mapping keeps the case, its name and its fields. A case
//! outside the endpoint's type is a programming error (the domain returned something the
//! interface does not declare): the call traps with `BUG: ...`, which rolls the message back
//! (and the tests, which exercise every endpoint, fail).

use crate::domain::error::{VaultError, VaultResult};
use crate::model::errors::*;

/// `result` with its error mapped into `E`, the public error type of `endpoint`. A case
/// outside `E` is a programming error: the call traps with `BUG: ...` (natively: panics).
pub fn public<T, E>(endpoint: &str, result: VaultResult<T>) -> Result<T, E>
where
    E: TryFrom<VaultError, Error = VaultError>,
{
    result.map_err(|e| E::try_from(e).unwrap_or_else(|e| outside(endpoint, &e)))
}

#[cold]
fn outside(endpoint: &str, e: &VaultError) -> ! {
    let msg = format!(
        "BUG: {endpoint} returned {e:?}, a case its error type does not declare (api::errors)"
    );
    #[cfg(target_arch = "wasm32")]
    ic_cdk::trap(msg);
    #[cfg(not(target_arch = "wasm32"))]
    panic!("{msg}");
}

/// Builds `TryFrom<VaultError>` for a public type: the cases it holds map to themselves,
/// every other case comes back as `Err`.
macro_rules! from_domain {
    ($name:ident { $($case:ident $({ $($field:ident),* })?),* $(,)? }) => {
        impl TryFrom<VaultError> for $name {
            type Error = VaultError;
            fn try_from(e: VaultError) -> Result<Self, VaultError> {
                match e {
                    $(VaultError::$case $({ $($field),* })? => Ok($name::$case $({ $($field),* })?),)*
                    other => Err(other),
                }
            }
        }
    };
}

from_domain!(ReadError {
    NotAuthorized,
    NotFound,
    InvalidInput { field, reason },
});
from_domain!(VaultsError {
    NotAuthorized,
    NotFound,
    InvalidInput { field, reason },
    InvalidState { current },
    PlanLimit { resource, limit },
    RateLimited { retry_after_secs },
    Paused,
});
from_domain!(MembersError {
    NotAuthorized,
    NotFound,
    InvalidInput { field, reason },
    InvalidState { current },
    PlanLimit { resource, limit },
    TokenInvalid,
    TokenExpired,
    TokenRevoked,
    TokenAlreadyClaimed,
    Busy,
    RateLimited { retry_after_secs },
    RecoveryBlocked,
    Paused,
});
from_domain!(UnlockError {
    NotAuthorized,
    NotFound,
    InvalidState { current },
    TokenInvalid,
    UnlockConditionsNotMet { reason, time_gate_opens_at },
    QuorumNotMet { have, need },
    AlreadyUnlocked,
    RateLimited { retry_after_secs },
    RecoveryBlocked,
    Paused,
});
from_domain!(ContentError {
    NotAuthorized,
    NotFound,
    InvalidInput { field, reason },
    InvalidState { current },
    QuotaExceeded { requested, available },
    PlanLimit { resource, limit },
    ChunkOutOfOrder { expected },
    ChecksumMismatch,
    SizeMismatch { expected, actual },
    UploadExpired,
    RateLimited { retry_after_secs },
    DownloadLimitReached { resets_at },
    Paused,
});
from_domain!(DownloadError {
    NotAuthorized,
    NotFound,
    InvalidInput { field, reason },
    TokenExpired,
});
from_domain!(PaymentsError {
    NotAuthorized,
    NotFound,
    InvalidInput { field, reason },
    InvalidState { current },
    PlanLimit { resource, limit },
    NotYetPaid,
    Underpaid { paid, required },
    SessionExpired,
    SessionClosed,
    Busy,
    LedgerUnavailable { reason },
    RateLimited { retry_after_secs },
    Paused,
});
from_domain!(KeysError {
    NotAuthorized,
    NotFound,
    InvalidInput { field, reason },
    InvalidState { current },
    PlanLimit { resource, limit },
    RateLimited { retry_after_secs },
    KeyDerivationUnavailable { reason },
});
from_domain!(AdminError {
    NotAuthorized,
    InvalidInput { field, reason },
    RateLimited { retry_after_secs },
});

/// Which public error type each endpoint returns (the `Err` of its reply in the `.did`).
/// Endpoints not listed return no error (`get_plans`, `http_request`) or the catalogue of all
/// cases, `VaultError` (`run_maintenance`).
pub const ENDPOINT_ERRORS: &[(&str, &str)] = &[
    ("create_vault", "VaultsError"),
    ("get_vault", "ReadError"),
    ("list_my_vaults", "ReadError"),
    ("update_vault", "VaultsError"),
    ("check_in", "VaultsError"),
    ("finalize_setup", "VaultsError"),
    ("delete_vault", "VaultsError"),
    ("get_audit_log", "ReadError"),
    ("get_audit_head", "ReadError"),
    ("generate_invite", "MembersError"),
    ("get_invite_info", "MembersError"),
    ("claim_invite", "MembersError"),
    ("revoke_invite", "MembersError"),
    ("regenerate_invite", "MembersError"),
    ("list_invites", "ReadError"),
    ("list_members", "ReadError"),
    ("remove_member", "MembersError"),
    ("get_unlock_status", "ReadError"),
    ("trigger_unlock", "UnlockError"),
    ("approve_unlock", "UnlockError"),
    ("approve_unlock_with_recovery", "UnlockError"),
    ("issue_recovery_code", "MembersError"),
    ("revoke_recovery_code", "MembersError"),
    ("use_recovery_code", "MembersError"),
    ("init_payment", "PaymentsError"),
    ("verify_payment", "PaymentsError"),
    ("get_payment_session", "ReadError"),
    ("list_payment_sessions", "ReadError"),
    ("list_billing", "ReadError"),
    ("refund_session", "PaymentsError"),
    ("set_refund_account", "PaymentsError"),
    ("set_treasury", "PaymentsError"),
    ("quote", "ReadError"),
    ("quote_upgrade", "VaultsError"),
    ("begin_upload", "ContentError"),
    ("upload_chunk", "ContentError"),
    ("finish_upload", "ContentError"),
    ("abort_upload", "ContentError"),
    ("delete_item", "ContentError"),
    ("update_item_meta", "ContentError"),
    ("list_items", "ReadError"),
    ("request_download", "ContentError"),
    ("get_download_chunk", "DownloadError"),
    ("get_vetkd_public_key", "KeysError"),
    ("derive_vetkey", "KeysError"),
    ("get_metrics", "ReadError"),
    ("list_vaults", "ReadError"),
    ("list_admin_trail", "ReadError"),
    ("set_pricing", "AdminError"),
    ("set_paused", "AdminError"),
    ("set_admins", "AdminError"),
    ("list_admins", "ReadError"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::types::VaultStatus;
    use candid::types::{Type, TypeInner};
    use candid::CandidType;
    use std::collections::BTreeSet;

    /// One value of every `VaultError` case.
    fn every_case() -> Vec<VaultError> {
        vec![
            VaultError::NotAuthorized,
            VaultError::NotFound,
            VaultError::invalid("f", "r"),
            VaultError::InvalidState {
                current: VaultStatus::Active,
            },
            VaultError::QuotaExceeded {
                requested: 2,
                available: 1,
            },
            VaultError::PlanLimit {
                resource: "r".into(),
                limit: 3,
            },
            VaultError::TokenInvalid,
            VaultError::TokenExpired,
            VaultError::TokenRevoked,
            VaultError::TokenAlreadyClaimed,
            VaultError::NotYetPaid,
            VaultError::Underpaid {
                paid: 1,
                required: 2,
            },
            VaultError::SessionExpired,
            VaultError::SessionClosed,
            VaultError::Busy,
            VaultError::LedgerUnavailable { reason: "r".into() },
            VaultError::ChunkOutOfOrder { expected: 4 },
            VaultError::ChecksumMismatch,
            VaultError::SizeMismatch {
                expected: 5,
                actual: 6,
            },
            VaultError::UploadExpired,
            VaultError::UnlockConditionsNotMet {
                reason: "r".into(),
                time_gate_opens_at: Some(7),
            },
            VaultError::QuorumNotMet { have: 1, need: 2 },
            VaultError::AlreadyUnlocked,
            VaultError::RateLimited {
                retry_after_secs: 8,
            },
            VaultError::DownloadLimitReached { resets_at: 9 },
            VaultError::RecoveryBlocked,
            VaultError::Paused,
            VaultError::KeyDerivationUnavailable { reason: "r".into() },
        ]
    }

    /// The case names of a Candid variant type.
    fn variant_cases(ty: &Type) -> BTreeSet<String> {
        let TypeInner::Variant(fields) = ty.as_ref() else {
            panic!("not a variant: {ty}");
        };
        fields.iter().map(|f| f.id.to_string()).collect()
    }

    /// For one public type `E`: its Candid cases are `E::CASES`; exactly those domain cases
    /// map into it (the others are refused); a mapped case keeps its name and fields, and its
    /// encoding decodes into `VaultError` as the original value (Candid variant subtyping:
    /// every reply decodes into the big type, as the end-to-end tests and old clients do).
    fn check_type<E>(name: &str, cases: &[&str], case_name: impl Fn(&E) -> &'static str)
    where
        E: TryFrom<VaultError, Error = VaultError> + CandidType + std::fmt::Debug,
    {
        let declared: BTreeSet<String> = cases.iter().map(|c| c.to_string()).collect();
        assert_eq!(variant_cases(&E::ty()), declared, "{name}: Candid cases");
        assert_eq!(declared.len(), cases.len(), "{name}: duplicate case");
        let all = variant_cases(&VaultError::ty());
        assert!(
            declared.is_subset(&all),
            "{name} is not a subset of VaultError"
        );
        let mut mapped = BTreeSet::new();
        for e in every_case() {
            match E::try_from(e.clone()) {
                Ok(public) => {
                    assert_eq!(case_name(&public), e.name(), "{name}: {e:?}");
                    let bytes = candid::encode_one(Err::<(), &E>(&public)).unwrap();
                    let back: VaultResult<()> = candid::decode_one(&bytes)
                        .unwrap_or_else(|err| panic!("{name}: {e:?} does not decode: {err}"));
                    assert_eq!(back, Err(e.clone()), "{name}");
                    mapped.insert(e.name().to_string());
                }
                Err(same) => {
                    assert_eq!(same, e, "{name}: a refused case comes back unchanged");
                    assert!(!declared.contains(e.name()), "{name} refuses its own {e:?}");
                }
            }
        }
        assert_eq!(mapped, declared, "{name}: mapped cases");
    }

    #[test]
    fn every_public_type_maps_exactly_its_cases_and_decodes_as_vault_error() {
        assert_eq!(every_case().len(), variant_cases(&VaultError::ty()).len());
        check_type::<ReadError>("ReadError", ReadError::CASES, ReadError::name);
        check_type::<VaultsError>("VaultsError", VaultsError::CASES, VaultsError::name);
        check_type::<MembersError>("MembersError", MembersError::CASES, MembersError::name);
        check_type::<UnlockError>("UnlockError", UnlockError::CASES, UnlockError::name);
        check_type::<ContentError>("ContentError", ContentError::CASES, ContentError::name);
        check_type::<DownloadError>("DownloadError", DownloadError::CASES, DownloadError::name);
        check_type::<PaymentsError>("PaymentsError", PaymentsError::CASES, PaymentsError::name);
        check_type::<KeysError>("KeysError", KeysError::CASES, KeysError::name);
        check_type::<AdminError>("AdminError", AdminError::CASES, AdminError::name);
    }

    /// `public` passes `Ok` through and maps an `Err` of the type; a case outside the type is a
    /// programming error (a panic natively, a trap on the IC).
    #[test]
    fn public_maps_errors_and_refuses_undeclared_cases() {
        let ok: Result<u8, ReadError> = public("get_vault", Ok(1));
        assert_eq!(ok, Ok(1));
        let err: Result<u8, ReadError> = public("get_vault", Err(VaultError::NotFound));
        assert_eq!(err, Err(ReadError::NotFound));
        let outside = std::panic::catch_unwind(|| {
            let _: Result<u8, ReadError> = public("get_vault", Err(VaultError::Busy));
        });
        let message = *outside.unwrap_err().downcast::<String>().unwrap();
        assert!(
            message.starts_with("BUG: get_vault returned Busy"),
            "{message}"
        );
    }

    /// The cases each public type declares, by name.
    fn cases_of(type_name: &str) -> &'static [&'static str] {
        match type_name {
            "ReadError" => ReadError::CASES,
            "VaultsError" => VaultsError::CASES,
            "MembersError" => MembersError::CASES,
            "UnlockError" => UnlockError::CASES,
            "ContentError" => ContentError::CASES,
            "DownloadError" => DownloadError::CASES,
            "PaymentsError" => PaymentsError::CASES,
            "KeysError" => KeysError::CASES,
            "AdminError" => AdminError::CASES,
            other => panic!("unknown error type {other}"),
        }
    }

    /// [`ENDPOINT_ERRORS`] is the interface: every endpoint of the exported interface whose
    /// reply is `variant { Ok; Err }` has its row, and the row names the `Err` type of its
    /// reply (the `.did` equals the exported interface: `candid_interface` in lib.rs).
    #[test]
    fn endpoint_table_matches_the_exported_interface() {
        use candid_parser::{IDLProg, TypeEnv};
        let prog: IDLProg = crate::export::interface().parse().unwrap();
        let mut env = TypeEnv::new();
        let actor = candid_parser::check_prog(&mut env, &prog).unwrap().unwrap();
        // `service : (init args) -> { ... }` is a class: its service is the second part.
        let actor = env.trace_type(&actor).unwrap();
        let service = match actor.as_ref() {
            TypeInner::Class(_, service) => env.trace_type(service).unwrap(),
            _ => actor.clone(),
        };
        let TypeInner::Service(methods) = service.as_ref().clone() else {
            panic!("no service");
        };
        let table: std::collections::BTreeMap<&str, &str> =
            ENDPOINT_ERRORS.iter().copied().collect();
        assert_eq!(
            table.len(),
            ENDPOINT_ERRORS.len(),
            "an endpoint is listed twice"
        );
        let mut seen = BTreeSet::new();
        for (method, func) in methods {
            let TypeInner::Func(func) = func.as_ref() else {
                panic!("{method}: not a function");
            };
            let [reply] = func.rets.as_slice() else {
                panic!("{method}: one reply value");
            };
            let reply = env.trace_type(reply).unwrap();
            let TypeInner::Variant(fields) = reply.as_ref() else {
                assert!(!table.contains_key(method.as_str()), "{method} has no Err");
                continue;
            };
            let err = fields
                .iter()
                .find(|f| f.id.to_string() == "Err")
                .unwrap_or_else(|| panic!("{method}: no Err"));
            let TypeInner::Var(err_name) = err.ty.as_ref() else {
                panic!("{method}: Err is not a named type");
            };
            if err_name == "VaultError" {
                assert!(
                    !table.contains_key(method.as_str()),
                    "{method} still VaultError"
                );
                assert_eq!(method, "run_maintenance", "only the maintenance endpoint");
                continue;
            }
            assert_eq!(
                table.get(method.as_str()),
                Some(&err_name.as_str()),
                "{method}: the table and the interface differ"
            );
            let cases = variant_cases(&env.trace_type(&err.ty).unwrap());
            let declared: BTreeSet<String> =
                cases_of(err_name).iter().map(|c| c.to_string()).collect();
            assert_eq!(cases, declared, "{method}: {err_name}");
            seen.insert(method.clone());
        }
        let listed: BTreeSet<String> = table.keys().map(|k| k.to_string()).collect();
        assert_eq!(seen, listed, "rows for endpoints the interface lacks");
    }
    // ---- reachability: the cases each type declares are the cases its endpoints' code can
    // return, read from the source.

    /// The domain sources, test modules cut off.
    fn source(module: &str) -> &'static str {
        let text: &'static str = match module {
            "access" => include_str!("../domain/access.rs"),
            "admin" => include_str!("../domain/admin.rs"),
            "admin_trail" => include_str!("../domain/admin_trail.rs"),
            "config" => include_str!("../domain/config.rs"),
            // `mod.rs` last: its `mod tests;` line is where the text is cut.
            "content" => concat!(
                include_str!("../domain/content/hash.rs"),
                include_str!("../domain/content/uploads.rs"),
                include_str!("../domain/content/items.rs"),
                include_str!("../domain/content/downloads.rs"),
                include_str!("../domain/content/mod.rs"),
            ),
            "vault_core" => concat!(
                include_str!("../domain/vault_core/mod.rs"),
                include_str!("../domain/vault_core/audit.rs"),
                include_str!("../domain/vault_core/deadlines.rs"),
            ),
            "invites" => include_str!("../domain/invites.rs"),
            "keys" => include_str!("../domain/keys.rs"),
            "lifecycle" => include_str!("../domain/lifecycle.rs"),
            "payments" => include_str!("../domain/payments/mod.rs"),
            "payments/checks" => include_str!("../domain/payments/checks.rs"),
            "payments/guard" => include_str!("../domain/payments/guard.rs"),
            "pricing" => include_str!("../domain/pricing.rs"),
            "recovery" => include_str!("../domain/recovery.rs"),
            "tokens" => include_str!("../domain/tokens.rs"),
            "unlock" => include_str!("../domain/unlock.rs"),
            "validation" => include_str!("../domain/validation.rs"),
            "vaults" => include_str!("../domain/vaults.rs"),
            other => panic!("no source for {other}"),
        };
        text.split("\n#[cfg(test)]\nmod tests").next().unwrap()
    }

    /// The text of `fn name` in `src` (from its line to the closing brace at column 0).
    fn function<'a>(src: &'a str, name: &str) -> &'a str {
        let at = src
            .find(&format!("fn {name}("))
            .or_else(|| src.find(&format!("fn {name}<")))
            .unwrap_or_else(|| panic!("no fn {name}"));
        let start = src[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = src[start..].find("\n}\n").expect("closing brace") + start + 3;
        &src[start..end]
    }

    /// The `VaultError` cases the text constructs (`VaultError::X`, `VaultError::invalid`).
    fn constructed(text: &str) -> BTreeSet<String> {
        text.split("VaultError::")
            .skip(1)
            .filter_map(|rest| {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                match name.as_str() {
                    "invalid" => Some("InvalidInput".to_string()),
                    n if n.starts_with(|c: char| c.is_ascii_uppercase()) => Some(name),
                    _ => None,
                }
            })
            .collect()
    }

    /// What part of a module an endpoint group's code runs.
    enum Part {
        /// The whole module (minus tests).
        All,
        /// These functions.
        Fns(&'static [&'static str]),
        /// The whole module but these functions.
        AllBut(&'static [&'static str]),
    }

    /// The admission of updates (`api::admit_update`): anonymous callers, the rate limit, and
    /// a paused canister unless the endpoint runs while paused.
    fn admission(refuses_when_paused: bool) -> BTreeSet<String> {
        let mut cases: BTreeSet<String> = ["NotAuthorized", "RateLimited"].map(String::from).into();
        if refuses_when_paused {
            cases.insert("Paused".into());
        }
        cases
    }

    /// The domain code each public type's endpoints run: the feature's modules and every
    /// module they call that returns errors (audited from their imports: `vault_core` (transition,
    /// load_owned, capacity), `access::load`, `validation`, `lifecycle`, `pricing`, `tokens`,
    /// `config` validation, `access::require_admin`). Modules that construct no `VaultError`
    /// (audit appends, scheduler, metrics, records) add nothing and are left out.
    fn reach(type_name: &str) -> (Vec<(&'static str, Part)>, BTreeSet<String>) {
        use Part::*;
        match type_name {
            "ReadError" => (
                vec![
                    ("access", All),
                    ("validation", All),
                    ("pricing", All),
                    ("vaults", Fns(&["get_vault", "list_my_vaults"])),
                    ("vault_core", Fns(&["page"])),
                    ("content", Fns(&["list_items", "reader"])),
                    ("invites", Fns(&["list_invites", "list_members"])),
                    ("unlock", Fns(&["get_unlock_status"])),
                    (
                        "payments",
                        Fns(&[
                            "get_payment_session",
                            "list_payment_sessions",
                            "list_billing",
                        ]),
                    ),
                    ("access", Fns(&["require_admin"])),
                    ("admin", Fns(&["metrics", "list_vaults"])),
                    ("admin_trail", Fns(&["list"])),
                ],
                BTreeSet::new(),
            ),
            "VaultsError" => (
                vec![
                    ("vaults", All),
                    ("vault_core", All),
                    ("access", All),
                    ("lifecycle", All),
                    ("validation", All),
                    ("pricing", All),
                ],
                admission(true),
            ),
            "MembersError" => (
                vec![
                    ("invites", All),
                    ("recovery", All),
                    ("tokens", All),
                    ("vaults", All),
                    ("vault_core", All),
                    ("access", All),
                    ("lifecycle", All),
                    ("validation", All),
                ],
                admission(true),
            ),
            "UnlockError" => (
                vec![
                    ("unlock", All),
                    ("tokens", All),
                    ("access", All),
                    ("lifecycle", All),
                    ("vault_core", Fns(&["transition"])),
                ],
                admission(true),
            ),
            "ContentError" => (
                vec![
                    ("content", AllBut(&["download_chunk_loc"])),
                    ("vaults", All),
                    ("vault_core", All),
                    ("access", All),
                    ("lifecycle", All),
                    ("validation", All),
                ],
                admission(true),
            ),
            "DownloadError" => (
                vec![
                    ("content", Fns(&["download_chunk_loc", "reader"])),
                    ("access", All),
                ],
                BTreeSet::new(),
            ),
            "PaymentsError" => (
                vec![
                    ("payments", All),
                    ("payments/checks", All),
                    ("payments/guard", All),
                    ("vaults", All),
                    ("vault_core", All),
                    ("access", All),
                    ("lifecycle", All),
                    ("validation", All),
                    ("pricing", All),
                    ("config", All),
                    ("access", Fns(&["require_admin"])),
                ],
                admission(true),
            ),
            "KeysError" => (
                vec![
                    ("keys", All),
                    ("vaults", All),
                    ("vault_core", All),
                    ("access", All),
                    ("config", All),
                ],
                // derive_vetkey runs while paused.
                admission(false),
            ),
            "AdminError" => (
                vec![
                    ("admin", All),
                    ("admin_trail", All),
                    ("config", All),
                    ("validation", All),
                ],
                admission(false),
            ),
            other => panic!("unknown error type {other}"),
        }
    }

    /// Every public type holds exactly the cases its endpoints' code constructs (plus the
    /// admission's): none the code can return is missing (the mapping would trap), none is
    /// declared that the code cannot return.
    #[test]
    fn every_type_holds_exactly_the_cases_its_code_can_return() {
        let mut types: BTreeSet<&str> = ENDPOINT_ERRORS.iter().map(|(_, t)| *t).collect();
        types.insert("ReadError");
        for type_name in types {
            let (parts, mut cases) = reach(type_name);
            for (module, part) in parts {
                let src = source(module);
                match part {
                    Part::All => cases.extend(constructed(src)),
                    Part::Fns(names) => {
                        for name in names {
                            cases.extend(constructed(function(src, name)));
                        }
                    }
                    Part::AllBut(names) => {
                        let mut rest = src.to_string();
                        for name in names {
                            rest = rest.replace(function(src, name), "");
                        }
                        cases.extend(constructed(&rest));
                    }
                }
            }
            let declared: BTreeSet<String> =
                cases_of(type_name).iter().map(|c| c.to_string()).collect();
            assert_eq!(cases, declared, "{type_name}: reachable vs declared");
        }
    }

    #[test]
    fn the_source_scan_finds_constructions() {
        let src = "fn a() -> X {\n    Err(VaultError::NotFound)\n}\nfn b() {\n    VaultError::invalid(\"f\", \"r\"); e.name(); VaultError::ty();\n}\n";
        assert_eq!(
            constructed(function(src, "a")),
            ["NotFound".to_string()].into()
        );
        assert_eq!(
            constructed(function(src, "b")),
            ["InvalidInput".to_string()].into()
        );
    }
}
