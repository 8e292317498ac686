//! Candid text ⇄ bytes with the types of a `.did` file (same syntax as dfx).

use anyhow::{anyhow, bail, Context, Result};
use candid::types::{Type, TypeInner};
use candid::{IDLArgs, TypeEnv};
use std::path::Path;

/// A loaded interface.
pub struct Interface {
    env: TypeEnv,
    actor: Option<Type>,
}

/// Default interface path.
pub const DEFAULT_DID: &str = "candid/livault_backend.did";

impl Interface {
    /// Loads and type-checks a `.did` file.
    pub fn load(path: &Path) -> Result<Self> {
        let (env, actor) = candid_parser::utils::CandidSource::File(path)
            .load()
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("loading Candid interface {}", path.display()))?;
        Ok(Interface { env, actor })
    }

    /// Argument and return types of `method`, and whether it is a query.
    pub fn method(&self, method: &str) -> Result<(Vec<Type>, Vec<Type>, bool)> {
        let actor = self
            .actor
            .as_ref()
            .ok_or_else(|| anyhow!("the interface has no service"))?;
        let f = self
            .env
            .get_method(actor, method)
            .map_err(|_| anyhow!("the interface has no method '{method}'"))?;
        Ok((f.args.clone(), f.rets.clone(), f.is_query()))
    }

    /// Init argument types (`service : (Init) -> {...}`), empty if none.
    pub fn init_args(&self) -> Vec<Type> {
        match self.actor.as_ref().map(|t| t.as_ref()) {
            Some(TypeInner::Class(args, _)) => args.clone(),
            _ => vec![],
        }
    }

    /// Encodes Candid text with the given types.
    pub fn encode(&self, text: &str, types: &[Type]) -> Result<Vec<u8>> {
        encode_with(&self.env, text, types)
    }

    /// Decodes reply bytes with the given types into Candid text (as dfx prints it).
    pub fn decode(&self, bytes: &[u8], types: &[Type]) -> Result<String> {
        let args = IDLArgs::from_bytes_with_types(bytes, &self.env, types)
            .map_err(|e| anyhow!("cannot decode the reply: {e}"))?;
        Ok(args.to_string())
    }
}

fn encode_with(env: &TypeEnv, text: &str, types: &[Type]) -> Result<Vec<u8>> {
    let mut args = candid_parser::parse_idl_args(text)
        .map_err(|e| anyhow!("invalid Candid argument {text:?}: {e}"))?;
    // Like dfx: missing trailing `opt`/`null`/`reserved` arguments default to null.
    while args.args.len() < types.len() {
        let t = env
            .trace_type(&types[args.args.len()])
            .map_err(|e| anyhow!("{e}"))?;
        match t.as_ref() {
            TypeInner::Opt(_) => args.args.push(candid::IDLValue::None),
            TypeInner::Null => args.args.push(candid::IDLValue::Null),
            TypeInner::Reserved => args.args.push(candid::IDLValue::Reserved),
            _ => break,
        }
    }
    args.to_bytes_with_types(env, types)
        .map_err(|e| anyhow!("argument does not match the method's types: {e}"))
}

/// Encodes Candid text without type information (values as written).
pub fn encode_untyped(text: &str) -> Result<Vec<u8>> {
    let args = candid_parser::parse_idl_args(text)
        .map_err(|e| anyhow!("invalid Candid argument {text:?}: {e}"))?;
    args.to_bytes().map_err(|e| anyhow!("cannot encode: {e}"))
}

/// Decodes bytes without type information.
pub fn decode_untyped(bytes: &[u8]) -> Result<String> {
    match IDLArgs::from_bytes(bytes) {
        Ok(a) => Ok(a.to_string()),
        Err(_) => {
            if bytes.is_empty() {
                bail!("empty reply")
            }
            Ok(format!("blob \"{}\"", hex::encode(bytes)))
        }
    }
}
