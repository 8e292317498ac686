//! Module rewriting done before a canister wasm is instantiated: the exports the host needs
//! and the IC's instruction metering.
//!
//! This module owns the *static* transformation of the canister module.
//!
//! # Exports
//!
//! Compiled canisters export neither their function table nor their mutable globals, but the
//! host needs both:
//!
//! * table 0 — the IC's callbacks (`call_new`'s `reply_fun`/`reject_fun`,
//!   `call_on_cleanup`'s `fun`) are indices into table 0, exactly as in the IC's own
//!   instrumentation;
//! * every mutable global (the Rust shadow stack pointer among them) — together with the
//!   linear memory they make up the heap snapshot restored when an execution traps and
//!   saved by the CLI between invocations.
//!
//! The rewrite appends exports named [`TABLE_EXPORT`] and `"{GLOBAL_EXPORT_PREFIX}{index}"`.
//!
//! # Instruction metering (the IC's rules)
//!
//! The IC counts instructions by instrumenting the module, not by the speed of its
//! machine: `rs/embedders/src/wasm_utils/instrumentation.rs` of the IC repository (functions
//! `instruction_to_cost`, `injections`, `inject_metering`). This module applies the same rules
//! with its own code:
//!
//! * an `i64` counter global is added (exported as [`COUNTER_EXPORT`]); the host sets it to
//!   the message's instruction limit and reads what is left afterwards;
//! * every function body is cut into basic blocks: a new block starts after `loop`, `if`,
//!   `else`, `br`, `br_if`, `br_table`, `end`, `return`, `unreachable`, `return_call` and
//!   `return_call_indirect`. (`block` and `call` do **not** end a block.) The operator that
//!   ends a block is charged to that block;
//! * at the start of each block the counter is decremented by the block's cost, the sum of
//!   [`instruction_cost`] of its operators; the function's first block also carries a base
//!   cost of 1 ("even empty functions consume some fuel");
//! * blocks that can be re-entered (a function's first block and the body of a `loop`) also
//!   check the counter: below zero, `out_of_instructions` is called (imported as
//!   [`METER_MODULE`]`.`[`OUT_OF_INSTRUCTIONS`]; the host traps with the IC's message).
//!   Other blocks are decremented without a check, and blocks of cost 0 get no code;
//! * `memory.copy`, `memory.fill`, `memory.init`, `table.copy`, `table.fill` and
//!   `table.init` cost a static 100 in their block **plus** their size argument (bytes or
//!   elements), charged right before the operator runs (with a check).
//!
//! The injected code itself is not counted (as on the IC). System-API costs are charged by
//! the host functions ([`crate::ic0`], [`crate::costs`]).

use std::collections::HashSet;
use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{Instruction, SectionId, ValType};
use wasmparser::{ExternalKind, Operator, Parser, Payload, TypeRef};

/// Name under which table 0 is exported by the rewrite.
pub const TABLE_EXPORT: &str = "__local_replica_table0";
/// Prefix of the exports of mutable globals (followed by the global index).
pub const GLOBAL_EXPORT_PREFIX: &str = "__local_replica_global_";
/// Name under which the instruction counter global is exported.
pub const COUNTER_EXPORT: &str = "__local_replica_instructions";
/// Import module of the function called when the counter goes below zero.
pub const METER_MODULE: &str = "__local_replica";
/// Import name of the function called when the counter goes below zero.
pub const OUT_OF_INSTRUCTIONS: &str = "out_of_instructions";
/// Initial value of the counter global: the budget of the module's start function (which
/// runs at instantiation, before the host sets the counter for an execution).
pub const START_BUDGET: i64 = crate::costs::INSTALL_LIMIT as i64;

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
    /// Number of entries of the type index space.
    pub num_types: u32,
    /// Number of globals (imported and defined).
    pub num_globals: u32,
    /// Parameter count of each type (0 for non-function types).
    pub type_params: Vec<u32>,
    /// Type index of each defined function, in order.
    pub func_types: Vec<u32>,
    /// Whether memory 0 is a 64-bit memory (loads and stores cost 2, bulk sizes are i64).
    pub memory64: bool,
}

impl ModuleInfo {
    fn num_func_imports(&self) -> u32 {
        self.func_imports.len() as u32
    }
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
    let mut defined_globals = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group?.into_types() {
                        let params = match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => f.params().len() as u32,
                            _ => 0,
                        };
                        info.type_params.push(params);
                    }
                }
            }
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
                        TypeRef::Memory(m) => info.memory64 |= m.memory64,
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for f in reader {
                    info.func_types.push(f?);
                }
            }
            Payload::TableSection(reader) if reader.count() > 0 => info.has_table = true,
            Payload::MemorySection(reader) => {
                if let Some(m) = reader.into_iter().next() {
                    info.memory64 |= m?.memory64;
                }
            }
            Payload::GlobalSection(reader) => {
                for (i, g) in reader.into_iter().enumerate() {
                    if g?.ty.mutable {
                        info.mutable_globals.push(imported_globals + i as u32);
                    }
                    defined_globals += 1;
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
    info.num_types = info.type_params.len() as u32;
    info.num_globals = imported_globals + defined_globals;
    Ok(info)
}

/// The IC's cost of one operator (`instruction_to_cost` in
/// `rs/embedders/src/wasm_utils/instrumentation.rs`; wasm32 unless `memory64`).
///
/// Bulk-memory operators get only their static part here; their size is charged at run time.
/// SIMD operators are not listed: this host's interpreter does not run SIMD modules.
pub fn instruction_cost(op: &Operator, memory64: bool) -> u64 {
    use Operator as O;
    match op {
        // Block structure: free.
        O::Block { .. } | O::Loop { .. } | O::Else | O::End => 0,
        // Integer division and remainder.
        O::I32DivS | O::I32DivU | O::I32RemS | O::I32RemU => 10,
        O::I64DivS | O::I64DivU | O::I64RemS | O::I64RemU => 10,
        // Floats.
        O::F32Add | O::F32Sub | O::F32Mul | O::F64Add | O::F64Sub | O::F64Mul => 2,
        O::F32Ceil | O::F32Floor | O::F32Trunc | O::F32Nearest => 2,
        O::F64Ceil | O::F64Floor | O::F64Trunc | O::F64Nearest => 2,
        O::F32Div => 3,
        O::F64Div => 5,
        O::F32Min | O::F32Max | O::F64Min | O::F64Max => 18,
        O::F32Copysign => 2,
        O::F64Copysign => 3,
        O::F32Sqrt => 5,
        O::F64Sqrt => 8,
        O::F32Eq | O::F32Ne | O::F32Lt | O::F32Gt | O::F32Le | O::F32Ge => 3,
        O::F64Eq | O::F64Ne | O::F64Lt | O::F64Gt | O::F64Le | O::F64Ge => 3,
        O::F32ConvertI32S | O::F64ConvertI64S | O::F32ConvertI64S | O::F64ConvertI32S => 3,
        O::F64ConvertI32U | O::F32ConvertI64U | O::F32ConvertI32U | O::F64ConvertI64U => 16,
        O::I64TruncSatF32S | O::I64TruncSatF32U | O::I64TruncSatF64S | O::I64TruncSatF64U => 20,
        O::I32TruncSatF32S | O::I32TruncSatF32U | O::I32TruncSatF64S | O::I32TruncSatF64U => 20,
        O::I32TruncF32S | O::I32TruncF32U | O::I32TruncF64S | O::I32TruncF64U => 20,
        O::I64TruncF32S | O::I64TruncF32U | O::I64TruncF64S | O::I64TruncF64U => 20,
        // Loads and stores: 2 on a 64-bit memory (1 on a 32-bit one: the default arm below).
        O::I32Load { .. }
        | O::I64Load { .. }
        | O::F32Load { .. }
        | O::F64Load { .. }
        | O::I32Load8S { .. }
        | O::I32Load8U { .. }
        | O::I32Load16S { .. }
        | O::I32Load16U { .. }
        | O::I64Load8S { .. }
        | O::I64Load8U { .. }
        | O::I64Load16S { .. }
        | O::I64Load16U { .. }
        | O::I64Load32S { .. }
        | O::I64Load32U { .. }
        | O::I32Store { .. }
        | O::I64Store { .. }
        | O::F32Store { .. }
        | O::F64Store { .. }
        | O::I32Store8 { .. }
        | O::I32Store16 { .. }
        | O::I64Store8 { .. }
        | O::I64Store16 { .. }
        | O::I64Store32 { .. }
            if memory64 =>
        {
            2
        }
        O::GlobalGet { .. } | O::GlobalSet { .. } => 2,
        O::TableGet { .. } | O::TableSet { .. } => 5,
        O::MemoryGrow { .. } | O::TableGrow { .. } => 300,
        O::MemorySize { .. } => 20,
        O::TableSize { .. } => 100,
        // Bulk memory: static part (the size is charged at run time).
        O::MemoryFill { .. }
        | O::MemoryCopy { .. }
        | O::MemoryInit { .. }
        | O::TableFill { .. }
        | O::TableCopy { .. }
        | O::TableInit { .. } => 100,
        O::DataDrop { .. } | O::ElemDrop { .. } => 300,
        O::Call { .. } => 5,
        O::CallIndirect { .. } => 10,
        O::ReturnCall { .. } => 3,
        O::ReturnCallIndirect { .. } => 60,
        O::If { .. } | O::Br { .. } | O::BrIf { .. } | O::BrTable { .. } => 2,
        O::RefIsNull => 5,
        O::RefFunc { .. } => 130,
        // Everything else: constants, integer arithmetic and comparisons, locals, select,
        // return, drop, nop, unreachable, extensions, float abs/neg, promote/demote,
        // reinterpretations, ref.null ...: 1.
        _ => 1,
    }
}

/// Cost of the dynamic part of a bulk-memory operator: its size operand is on top of the
/// stack. `Some(true)` when that operand is an `i64`.
fn bulk_size_is_i64(op: &Operator, memory64: bool) -> Option<bool> {
    match op {
        // Like the IC: the size of these four follows the main memory's index type.
        Operator::MemoryFill { .. }
        | Operator::MemoryCopy { .. }
        | Operator::TableCopy { .. }
        | Operator::TableFill { .. } => Some(memory64),
        // memory.init and table.init take an i32 size even on a 64-bit memory.
        Operator::MemoryInit { .. } | Operator::TableInit { .. } => Some(false),
        _ => None,
    }
}

/// What to inject before the operator at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charge {
    /// Decrement by a block's static cost; `check` for re-entrant blocks.
    Block { cost: u64, check: bool },
    /// Decrement by the size operand on top of the stack (`i64` or `i32`), then check.
    Size { i64: bool },
}

/// The metering plan of one function body: `(operator position, charge)`, sorted by
/// position (stable: at the same position, a size charge stays before a block charge, as
/// on the IC).
fn plan(ops: &[Operator], memory64: bool) -> Vec<(usize, Charge)> {
    let mut out = Vec::new();
    // (position, cost, re-entrant) of the open block; the function's entry is re-entrant and
    // has a base cost of 1.
    let mut cur = (0usize, 1u64, true);
    for (i, op) in ops.iter().enumerate() {
        cur.1 += instruction_cost(op, memory64);
        let next = match op {
            Operator::Loop { .. } => Some(true),
            Operator::If { .. }
            | Operator::Else
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::End
            | Operator::Return
            | Operator::Unreachable
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. } => Some(false),
            _ => {
                if let Some(i64) = bulk_size_is_i64(op, memory64) {
                    out.push((i, Charge::Size { i64 }));
                }
                None
            }
        };
        if let Some(reentrant) = next {
            out.push((
                cur.0,
                Charge::Block {
                    cost: cur.1,
                    check: cur.2,
                },
            ));
            cur = (i + 1, 0, reentrant);
        }
    }
    out.push((
        cur.0,
        Charge::Block {
            cost: cur.1,
            check: cur.2,
        },
    ));
    out.retain(|(_, c)| match c {
        Charge::Block { cost, check } => *check || *cost > 0,
        Charge::Size { .. } => true,
    });
    out.sort_by_key(|(pos, _)| *pos);
    out
}

struct Rewriter<'a> {
    info: &'a ModuleInfo,
    /// Sections that were present (or already inserted).
    done: HashSet<u8>,
    /// Index of the next defined function body.
    next_body: usize,
}

impl Rewriter<'_> {
    /// Type index of the injected `out_of_instructions: [] -> []`.
    fn ooi_type(&self) -> u32 {
        self.info.num_types
    }
    /// Function index of the injected import (after the module's own function imports).
    fn ooi_func(&self) -> u32 {
        self.info.num_func_imports()
    }
    /// Global index of the injected counter (after all of the module's globals).
    fn counter(&self) -> u32 {
        self.info.num_globals
    }

    fn add_type(&self, types: &mut wasm_encoder::TypeSection) {
        types.ty().function([], []);
    }

    fn add_import(&self, imports: &mut wasm_encoder::ImportSection) {
        imports.import(
            METER_MODULE,
            OUT_OF_INSTRUCTIONS,
            wasm_encoder::EntityType::Function(self.ooi_type()),
        );
    }

    fn add_global(&self, globals: &mut wasm_encoder::GlobalSection) {
        globals.global(
            wasm_encoder::GlobalType {
                val_type: ValType::I64,
                mutable: true,
                shared: false,
            },
            &wasm_encoder::ConstExpr::i64_const(START_BUDGET),
        );
    }

    fn add_exports(&self, exports: &mut wasm_encoder::ExportSection) {
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
        exports.export(
            COUNTER_EXPORT,
            wasm_encoder::ExportKind::Global,
            self.counter(),
        );
    }

    /// The code charging a block (see the module docs).
    fn block_charge(&self, f: &mut wasm_encoder::Function, cost: u64, check: bool) {
        let g = self.counter();
        f.instruction(&Instruction::GlobalGet(g));
        f.instruction(&Instruction::I64Const(cost as i64));
        f.instruction(&Instruction::I64Sub);
        f.instruction(&Instruction::GlobalSet(g));
        if check {
            self.check(f);
        }
    }

    /// `if counter < 0 { out_of_instructions() }`.
    fn check(&self, f: &mut wasm_encoder::Function) {
        f.instruction(&Instruction::GlobalGet(self.counter()));
        f.instruction(&Instruction::I64Const(0));
        f.instruction(&Instruction::I64LtS);
        f.instruction(&Instruction::If(wasm_encoder::BlockType::Empty));
        f.instruction(&Instruction::Call(self.ooi_func()));
        f.instruction(&Instruction::End);
    }

    fn instrument_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error<std::convert::Infallible>> {
        let body = self.next_body;
        self.next_body += 1;
        let params = self
            .info
            .func_types
            .get(body)
            .and_then(|t| self.info.type_params.get(*t as usize))
            .copied()
            .unwrap_or(0);
        let mut locals = Vec::new();
        let mut num_locals = params;
        for pair in func.get_locals_reader()? {
            let (count, ty) = pair?;
            locals.push((count, self.val_type(ty)?));
            num_locals += count;
        }
        let mut reader = func.get_operators_reader()?;
        let mut ops = Vec::new();
        while !reader.eof() {
            ops.push(reader.read()?);
        }
        let memory64 = self.info.memory64;
        let plan = plan(&ops, memory64);
        // Scratch locals holding a bulk operator's size while it is charged.
        let needs = |want: bool| {
            plan.iter()
                .any(|(_, c)| matches!(c, Charge::Size { i64 } if *i64 == want))
        };
        let mut next_local = num_locals;
        let mut scratch = |ty: ValType, locals: &mut Vec<(u32, ValType)>| {
            locals.push((1, ty));
            next_local += 1;
            next_local - 1
        };
        let scratch32 = needs(false).then(|| scratch(ValType::I32, &mut locals));
        let scratch64 = needs(true).then(|| scratch(ValType::I64, &mut locals));
        let mut f = wasm_encoder::Function::new(locals);
        let mut charges = plan.iter().peekable();
        for (i, op) in ops.into_iter().enumerate() {
            while let Some((_, charge)) = charges.next_if(|(pos, _)| *pos == i) {
                match *charge {
                    Charge::Block { cost, check } => self.block_charge(&mut f, cost, check),
                    Charge::Size { i64 } => {
                        let g = self.counter();
                        let local = if i64 { scratch64 } else { scratch32 }
                            .expect("scratch local allocated for every size charge");
                        f.instruction(&Instruction::LocalTee(local));
                        f.instruction(&Instruction::GlobalGet(g));
                        f.instruction(&Instruction::LocalGet(local));
                        if !i64 {
                            f.instruction(&Instruction::I64ExtendI32U);
                        }
                        f.instruction(&Instruction::I64Sub);
                        f.instruction(&Instruction::GlobalSet(g));
                        self.check(&mut f);
                    }
                }
            }
            f.instruction(&self.instruction(op)?);
        }
        code.function(&f);
        Ok(())
    }
}

/// Canonical position of a section in a module (custom sections excluded).
fn rank(id: SectionId) -> u8 {
    match id {
        SectionId::Type => 1,
        SectionId::Import => 2,
        SectionId::Function => 3,
        SectionId::Table => 4,
        SectionId::Memory => 5,
        SectionId::Tag => 6,
        SectionId::Global => 7,
        SectionId::Export => 8,
        SectionId::Start => 9,
        SectionId::Element => 10,
        SectionId::DataCount => 11,
        SectionId::Code => 12,
        SectionId::Data => 13,
        _ => 0,
    }
}

impl Reencode for Rewriter<'_> {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> u32 {
        // The injected import comes right after the module's own function imports.
        if func >= self.info.num_func_imports() {
            func + 1
        } else {
            func
        }
    }

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        self.done.insert(SectionId::Type as u8);
        reencode::utils::parse_type_section(self, types, section)?;
        self.add_type(types);
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        self.done.insert(SectionId::Import as u8);
        reencode::utils::parse_import_section(self, imports, section)?;
        self.add_import(imports);
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        self.done.insert(SectionId::Global as u8);
        reencode::utils::parse_global_section(self, globals, section)?;
        self.add_global(globals);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        self.done.insert(SectionId::Export as u8);
        reencode::utils::parse_export_section(self, exports, section)?;
        self.add_exports(exports);
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        self.instrument_body(code, func)
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        // Insert each section the rewrite needs but the module lacks, at its proper place.
        let after = after.map(rank).unwrap_or(0);
        let before = before.map(rank).unwrap_or(u8::MAX);
        for id in [
            SectionId::Type,
            SectionId::Import,
            SectionId::Global,
            SectionId::Export,
        ] {
            let r = rank(id);
            if self.done.contains(&(id as u8)) || !(after < r && r < before) {
                continue;
            }
            self.done.insert(id as u8);
            match id {
                SectionId::Type => {
                    let mut s = wasm_encoder::TypeSection::new();
                    self.add_type(&mut s);
                    module.section(&s);
                }
                SectionId::Import => {
                    let mut s = wasm_encoder::ImportSection::new();
                    self.add_import(&mut s);
                    module.section(&s);
                }
                SectionId::Global => {
                    let mut s = wasm_encoder::GlobalSection::new();
                    self.add_global(&mut s);
                    module.section(&s);
                }
                _ => {
                    let mut s = wasm_encoder::ExportSection::new();
                    self.add_exports(&mut s);
                    module.section(&s);
                }
            }
        }
        Ok(())
    }
}

/// Rewrites `wasm`: exports table 0 and all mutable globals and adds the IC's instruction
/// metering (see the module docs). Returns the new module bytes and the [`ModuleInfo`] of
/// the original module.
pub fn instrument(wasm: &[u8]) -> Result<(Vec<u8>, ModuleInfo), InstrumentError> {
    let info = inspect(wasm)?;
    let mut rewriter = Rewriter {
        info: &info,
        done: HashSet::new(),
        next_body: 0,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads and stores cost 1 on a 32-bit memory and 2 on a 64-bit one (IC
    /// `instruction_to_cost`, `WasmMemoryType`); the host's interpreter runs only 32-bit
    /// memories, so this rule is checked on the table rather than on a module.
    #[test]
    fn loads_and_stores_cost_two_on_a_64_bit_memory() {
        let memarg = wasmparser::MemArg {
            align: 0,
            max_align: 0,
            offset: 0,
            memory: 0,
        };
        for op in [
            Operator::I32Load { memarg },
            Operator::I64Store8 { memarg },
            Operator::F64Load { memarg },
        ] {
            assert_eq!(instruction_cost(&op, false), 1, "{op:?}");
            assert_eq!(instruction_cost(&op, true), 2, "{op:?}");
        }
        // Other operators do not depend on the memory type.
        assert_eq!(instruction_cost(&Operator::I32Add, true), 1);
        assert_eq!(
            instruction_cost(
                &Operator::MemoryCopy {
                    dst_mem: 0,
                    src_mem: 0
                },
                true
            ),
            100
        );
    }
}
