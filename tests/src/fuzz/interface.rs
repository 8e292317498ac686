//! The canister interface as the fuzzer sees it: every method of `candid/livault_backend.did`
//! with its argument and result types, parsed at run time so a new endpoint is fuzzed without
//! editing the fuzzer.

use candid::types::{Type, TypeEnv};
use candid::IDLArgs;

/// One method of the service.
#[derive(Clone, Debug)]
pub struct Method {
    pub name: String,
    pub args: Vec<Type>,
    pub rets: Vec<Type>,
    pub query: bool,
}

/// The parsed `.did`.
pub struct Interface {
    pub env: TypeEnv,
    pub methods: Vec<Method>,
}

/// Path of the interface file.
pub fn did_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../candid/livault_backend.did")
}

impl Interface {
    /// Parses the `.did` (panics with the reason if it does not parse).
    pub fn load() -> Interface {
        let path = did_path();
        let (env, actor) = candid_parser::utils::CandidSource::File(&path)
            .load()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let actor = actor.expect("the .did declares a service");
        let service = env.as_service(&actor).expect("a service type");
        let methods = service
            .iter()
            .map(|(name, ty)| {
                let f = env.as_func(ty).expect("a method type");
                Method {
                    name: name.clone(),
                    args: f.args.clone(),
                    rets: f.rets.clone(),
                    query: f.is_query(),
                }
            })
            .collect();
        Interface { env, methods }
    }

    /// The method called `name`.
    pub fn method(&self, name: &str) -> Option<&Method> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// Whether `bytes` is a valid argument of `m`: the reference decoding with the `.did`
    /// argument types (candid's `IDLValue` decoder, no quotas). An empty argument is read as
    /// `DIDL\0\0` (no values), as ic-cdk's generated decoders do.
    ///
    /// The canister's decoders (ic-cdk's generated ones and the two in `api::content`) also
    /// have a skipping quota of 10 000 (no decoding quota): they
    /// may refuse valid arguments that carry too many extra values. The reference does not
    /// apply it: candid charges every value an `IDLValue` decoder reads to the skipping quota
    /// (it decodes them "untyped"), so it would refuse ordinary texts over 10 000 bytes.
    pub fn decode_args(&self, m: &Method, bytes: &[u8]) -> Result<IDLArgs, String> {
        let bytes: &[u8] = if bytes.is_empty() && !is_hand_decoded(&m.name) {
            b"DIDL\x00\x00"
        } else {
            bytes
        };
        IDLArgs::from_bytes_with_types(bytes, &self.env, &m.args).map_err(|e| e.to_string())
    }

    /// The reply decoded with the `.did` result types.
    pub fn decode_reply(&self, m: &Method, bytes: &[u8]) -> Result<IDLArgs, String> {
        IDLArgs::from_bytes_with_types(bytes, &self.env, &m.rets).map_err(|e| e.to_string())
    }
}

/// The endpoints whose arguments the canister decodes by hand (`api::content`), with trap
/// messages `"<method>: bad arguments: ..."`.
pub fn is_hand_decoded(method: &str) -> bool {
    matches!(method, "upload_chunk" | "get_download_chunk")
}
