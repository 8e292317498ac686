//! Module rewriting done before a canister wasm is instantiated.
//!
//! This module owns the *static* transformation of the canister module. Compiled
//! canisters export neither their function table nor their mutable globals, but the host
//! needs both:
//!
//! * table 0 — the IC's callbacks (`call_new`'s `reply_fun`/`reject_fun`,
//!   `call_on_cleanup`'s `fun`) are indices into table 0, exactly as in the IC's own
//!   instrumentation;
//! * every mutable global (the Rust shadow stack pointer among them) — together with the
//!   linear memory they make up the heap snapshot restored when an execution traps and
//!   saved by the CLI between invocations.
//!
//! The rewrite appends exports named [`TABLE_EXPORT`] and `"{GLOBAL_EXPORT_PREFIX}{index}"`
//! and re-encodes everything else unchanged (via `wasm-encoder`'s reencoder). Instruction
//! counting is *not* done here: it is done by `wasmi` fuel metering with the IC's cost table
//! (see [`crate::costs`]).

use std::collections::HashSet;
use wasm_encoder::reencode::{self, Reencode};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef};

/// Name under which table 0 is exported by the rewrite.
pub const TABLE_EXPORT: &str = "__livault_table0";
/// Prefix of the exports of mutable globals (followed by the global index).
pub const GLOBAL_EXPORT_PREFIX: &str = "__livault_global_";

/// Summary of a module found while rewriting it.
#[derive(Debug, Clone, Default)]
pub struct ModuleInfo {
    /// Function imports as `(module, name)`.
    pub func_imports: Vec<(String, String)>,
    /// Indices (in the global index space) of the mutable globals that were exported.
    pub mutable_globals: Vec<u32>,
    /// Whether the module has a table 0 (then exported as [`TABLE_EXPORT`]).
    pub has_table: bool,
    /// Names of the module's own exports (before the rewrite).
    pub exports: Vec<String>,
}

/// Errors of the rewrite: the input is not a valid wasm module.
#[derive(Debug, thiserror::Error)]
pub enum InstrumentError {
    /// wasmparser could not parse the module.
    #[error("invalid wasm module: {0}")]
    Parse(#[from] wasmparser::BinaryReaderError),
    /// The re-encoder failed.
    #[error("could not re-encode wasm module: {0}")]
    Reencode(String),
}

/// Scans `wasm` and returns its [`ModuleInfo`] without rewriting.
pub fn inspect(wasm: &[u8]) -> Result<ModuleInfo, InstrumentError> {
    let mut info = ModuleInfo::default();
    let mut imported_globals = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ImportSection(reader) => {
                for import in reader {
                    let import = import?;
                    match import.ty {
                        TypeRef::Func(_) => info
                            .func_imports
                            .push((import.module.to_string(), import.name.to_string())),
                        TypeRef::Global(g) => {
                            if g.mutable {
                                info.mutable_globals.push(imported_globals);
                            }
                            imported_globals += 1;
                        }
                        TypeRef::Table(_) => info.has_table = true,
                        _ => {}
                    }
                }
            }
            Payload::TableSection(reader) if reader.count() > 0 => info.has_table = true,
            Payload::GlobalSection(reader) => {
                for (i, g) in reader.into_iter().enumerate() {
                    if g?.ty.mutable {
                        info.mutable_globals.push(imported_globals + i as u32);
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader {
                    info.exports.push(e?.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

struct Rewriter<'a> {
    info: &'a ModuleInfo,
    export_section_seen: bool,
    added: bool,
}

impl Rewriter<'_> {
    fn add_exports(&mut self, exports: &mut wasm_encoder::ExportSection) {
        let taken: HashSet<&str> = self.info.exports.iter().map(String::as_str).collect();
        if self.info.has_table && !taken.contains(TABLE_EXPORT) {
            exports.export(TABLE_EXPORT, wasm_encoder::ExportKind::Table, 0);
        }
        for g in &self.info.mutable_globals {
            let name = format!("{GLOBAL_EXPORT_PREFIX}{g}");
            if !taken.contains(name.as_str()) {
                exports.export(&name, wasm_encoder::ExportKind::Global, *g);
            }
        }
        self.added = true;
    }
}

impl Reencode for Rewriter<'_> {
    type Error = std::convert::Infallible;

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        self.export_section_seen = true;
        reencode::utils::parse_export_section(self, exports, section)?;
        self.add_exports(exports);
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        after: Option<wasm_encoder::SectionId>,
        before: Option<wasm_encoder::SectionId>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        use wasm_encoder::SectionId as S;
        // A module without an export section: insert one at the proper position.
        if self.export_section_seen || self.added || self.info_has_nothing_to_export() {
            return Ok(());
        }
        let after_ok = match after {
            None => true,
            Some(s) => (s as u8) < (S::Export as u8) || s == S::Tag,
        };
        let before_ok = match before {
            None => true,
            Some(s) => matches!(s, S::Start | S::Element | S::DataCount | S::Code | S::Data),
        };
        if after_ok && before_ok {
            let mut exports = wasm_encoder::ExportSection::new();
            self.add_exports(&mut exports);
            module.section(&exports);
        }
        Ok(())
    }
}

impl Rewriter<'_> {
    fn info_has_nothing_to_export(&self) -> bool {
        !self.info.has_table && self.info.mutable_globals.is_empty()
    }
}

/// Rewrites `wasm`: exports table 0 and all mutable globals. Returns the new module bytes
/// and the [`ModuleInfo`] of the original module.
pub fn instrument(wasm: &[u8]) -> Result<(Vec<u8>, ModuleInfo), InstrumentError> {
    let info = inspect(wasm)?;
    let mut rewriter = Rewriter {
        info: &info,
        export_section_seen: false,
        added: false,
    };
    let mut module = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .map_err(|e| InstrumentError::Reencode(format!("{e:?}")))?;
    Ok((module.finish(), info))
}

/// Returns the exported names (kind function) of `wasm`.
pub fn exported_functions(wasm: &[u8]) -> Result<Vec<String>, InstrumentError> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::ExportSection(reader) = payload? {
            for e in reader {
                let e = e?;
                if e.kind == ExternalKind::Func {
                    out.push(e.name.to_string());
                }
            }
        }
    }
    Ok(out)
}
