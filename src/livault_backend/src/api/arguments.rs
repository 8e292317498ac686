//! Limits on call arguments, checked before an endpoint decodes its argument.
//!
//! ic-cdk's generated decoders apply only a skipping quota, and candid sets no recursion limit
//! on wasm (a stack overflow "cannot compromise the host"). The endpoint fuzzer
//! (docs/fuzzing.md) found that a type table of 10 000 nested records (51 kB) cost 545 M
//! instructions and then trapped with `call stack exhausted`, that an extra value of the type
//! `t = opt t` nested 3 000 deep (3 kB) trapped every endpoint, that nested types under the
//! 16 KiB ingress limit cost 58-84 M instructions per update before the rate limit, and that
//! queries decoded arguments of any size (917 M instructions for 1.5 MB).
//!
//! [`within_limits`] is the `guard` of every endpoint with parameters (the two hand-decoded
//! ones in `api::content` call [`check`] themselves). It walks the argument once — the Candid
//! binary format read iteratively with an explicit stack, no value built, no recursion — and
//! refuses it (a reject, code `CANISTER_REJECT`, nothing decoded or changed) when it is
//! - larger than the method's limit ([`max_arg_bytes`]: what
//!   `inspect_message` applies to ingress updates, now for queries and calls from canisters
//!   too);
//! - not Candid, or declares more than [`MAX_TYPE_TABLE`] types;
//! - nested deeper than [`MAX_DEPTH`] (opt, vec, record and variant levels);
//! - more than [`MAX_ARGS`] arguments or [`MAX_VALUES`] values (a `vec null` of 2^60 elements
//!   takes ten bytes);
//! - holding `func` or `service` references (no endpoint takes them).
//!
//! The endpoint's decoder then reads an argument whose size, type table and depth are bounded.
//! Our own argument types need at most 8 types and 4 levels.

/// Largest argument accepted for ordinary update calls.
pub const MAX_ARG_BYTES: usize = 16 * 1024;
/// Candid framing around a method's payload (header, type table, ids, lengths).
pub const ARG_OVERHEAD_BYTES: usize = 1024;

/// Argument size limit per method: `upload_chunk` carries up to `max_chunk_bytes`,
/// `begin_upload` up to 4 KiB of encrypted metadata; everything else 16 KiB. Also the
/// ingress filter's limit (`api::lifecycle`'s `inspect_message`).
pub fn max_arg_bytes(method: &str) -> usize {
    match method {
        "upload_chunk" => {
            super::read(|s| s.config().limits.max_chunk_bytes as usize) + ARG_OVERHEAD_BYTES
        }
        "begin_upload" => crate::domain::content::MAX_META_BYTES + MAX_ARG_BYTES,
        _ => MAX_ARG_BYTES,
    }
}

/// Most entries of an argument's type table.
pub const MAX_TYPE_TABLE: u64 = 64;
/// Deepest nesting of values in an argument (opt, vec, record, variant levels).
pub const MAX_DEPTH: usize = 32;
/// Most arguments a call may carry (ours take at most 3; candid skips extra ones).
pub const MAX_ARGS: u64 = 64;
/// Most values (and record or variant fields in the type table) an argument may hold; vectors
/// of fixed-size numbers count as one. Ours hold at most ~100 (32 admins, a gateway request's
/// headers). Decoding a value can cost ~50 k instructions (a record holding a variant), so this
/// bounds decoding too: 16 KiB of `TierInfo` records cost 45 M to decode before the limit.
pub const MAX_VALUES: u64 = 1_000;

/// The `guard` of every endpoint with parameters: see the module docs.
pub fn within_limits() -> Result<(), String> {
    let method = ic_cdk::api::msg_method_name();
    let refuse = |why: String| format!("{method}: argument refused: {why}");
    // The size first, without copying the argument.
    check_size(&method, ic0::msg_arg_data_size()).map_err(refuse)?;
    check(&method, &ic_cdk::api::msg_arg_data()).map_err(refuse)
}

fn check_size(method: &str, size: usize) -> Result<(), String> {
    let limit = max_arg_bytes(method);
    if size > limit {
        return Err(format!("{size} bytes exceed the limit of {limit}"));
    }
    Ok(())
}

/// `Ok` if `arg` is within the limits of `method`, else the reason.
pub fn check(method: &str, arg: &[u8]) -> Result<(), String> {
    check_size(method, arg.len())?;
    if arg.is_empty() {
        // ic-cdk reads an empty argument as no values.
        return Ok(());
    }
    walk(arg)
}

/// A type of the wire: a primitive (negative Candid opcode) or an entry of the type table.
#[derive(Clone, Copy)]
enum Ty {
    Prim(i64),
    Table(usize),
}

enum Entry {
    Opt(Ty),
    Vec(Ty),
    Record(Vec<Ty>),
    Variant(Vec<Ty>),
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or("unexpected end of the argument")?;
        self.at += 1;
        Ok(b)
    }
    fn skip(&mut self, n: u64) -> Result<(), String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|end| *end <= self.bytes.len())
            .ok_or("unexpected end of the argument")?;
        self.at = end;
        Ok(())
    }
    fn leb(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err("LEB128 number too large".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("LEB128 number too large".into())
    }
    fn sleb(&mut self) -> Result<i64, String> {
        let mut v = 0i64;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift >= 63 && b & 0x7f != 0 && b & 0x7f != 0x7f {
                return Err("SLEB128 number too large".into());
            }
            if shift < 64 {
                v |= i64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1 << shift;
                }
                return Ok(v);
            }
            if shift > 70 {
                return Err("SLEB128 number too large".into());
            }
        }
    }
    /// A variable-length integer (nat / int): its bytes up to the last.
    fn skip_leb(&mut self) -> Result<(), String> {
        while self.byte()? & 0x80 != 0 {}
        Ok(())
    }
    fn ty(&mut self, table_len: u64) -> Result<Ty, String> {
        match self.sleb()? {
            i if i >= 0 && (i as u64) < table_len => Ok(Ty::Table(i as usize)),
            i @ (-17..=-1 | -24) => Ok(Ty::Prim(i)),
            i => Err(format!("invalid type {i}")),
        }
    }
}

fn too_many() -> String {
    format!("more values than allowed (at most {MAX_VALUES})")
}

/// Bytes of a fixed-size primitive value (`None` for the others).
fn fixed_size(code: i64) -> Option<u64> {
    match code {
        -1 | -16 => Some(0), // null, reserved
        -2 | -5 | -9 => Some(1),
        -6 | -10 => Some(2),
        -7 | -11 | -13 => Some(4),
        -8 | -12 | -14 => Some(8),
        _ => None,
    }
}

/// Walks a Candid argument (see the module docs).
fn walk(arg: &[u8]) -> Result<(), String> {
    let mut r = Reader { bytes: arg, at: 0 };
    if arg.get(..4) != Some(b"DIDL".as_slice()) {
        return Err("not Candid (no DIDL magic)".into());
    }
    r.at = 4;
    let table_len = r.leb()?;
    if table_len > MAX_TYPE_TABLE {
        return Err(format!(
            "{table_len} types in the type table (at most {MAX_TYPE_TABLE})"
        ));
    }
    let mut table = Vec::with_capacity(table_len as usize);
    let mut count = 0u64;
    for _ in 0..table_len {
        let entry = match r.sleb()? {
            -18 => Entry::Opt(r.ty(table_len)?),
            -19 => Entry::Vec(r.ty(table_len)?),
            code @ (-20 | -21) => {
                let n = r.leb()?;
                let mut fields = Vec::new();
                for _ in 0..n {
                    count += 1;
                    if count > MAX_VALUES {
                        return Err(too_many());
                    }
                    r.leb()?;
                    fields.push(r.ty(table_len)?);
                }
                if code == -20 {
                    Entry::Record(fields)
                } else {
                    Entry::Variant(fields)
                }
            }
            -22 | -23 => return Err("func and service references are not accepted".into()),
            code => return Err(format!("invalid type table entry {code}")),
        };
        table.push(entry);
    }
    let args = r.leb()?;
    if args > MAX_ARGS {
        return Err(format!("{args} arguments (at most {MAX_ARGS})"));
    }
    // Every value is counted when it is pushed, so the stack never holds more than
    // MAX_VALUES entries (a vector of 1 000 vectors of 1 000 elements is refused at once).
    let mut stack: Vec<(Ty, usize)> = Vec::new();
    let mut push =
        |stack: &mut Vec<(Ty, usize)>, n: u64, items: &mut dyn Iterator<Item = (Ty, usize)>| {
            count = count.saturating_add(n);
            if count > MAX_VALUES {
                return Err(too_many());
            }
            stack.extend(items);
            Ok(())
        };
    let mut arg_types = Vec::new();
    for _ in 0..args {
        arg_types.push(r.ty(table_len)?);
    }
    push(
        &mut stack,
        args,
        &mut arg_types.into_iter().rev().map(|t| (t, 0)),
    )?;
    while let Some((ty, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        let entry = match ty {
            Ty::Prim(code) => {
                match (code, fixed_size(code)) {
                    (_, Some(n)) => r.skip(n)?,
                    (-3 | -4, _) => r.skip_leb()?,
                    (-15, _) => {
                        let n = r.leb()?;
                        r.skip(n)?;
                    }
                    (-24, _) => {
                        if r.byte()? != 1 {
                            return Err("opaque principal reference".into());
                        }
                        let n = r.leb()?;
                        if n > 29 {
                            return Err("principal longer than 29 bytes".into());
                        }
                        r.skip(n)?;
                    }
                    _ => return Err("a value of type empty".into()),
                }
                continue;
            }
            Ty::Table(i) => &table[i],
        };
        let child = depth + 1;
        match entry {
            Entry::Opt(t) => match r.byte()? {
                0 => {}
                1 => push(&mut stack, 1, &mut std::iter::once((*t, child)))?,
                b => return Err(format!("invalid opt tag {b}")),
            },
            Entry::Vec(t) => {
                let n = r.leb()?;
                match *t {
                    // Numbers (and null, reserved): their bytes are skipped at once, null and
                    // reserved elements (no bytes) are counted.
                    Ty::Prim(code) if fixed_size(code).is_some() => {
                        let size = fixed_size(code).unwrap_or(0);
                        if size == 0 {
                            push(&mut stack, n, &mut std::iter::empty())?;
                        } else {
                            r.skip(n.checked_mul(size).ok_or("vector too long")?)?;
                        }
                    }
                    t => {
                        let n_usize = usize::try_from(n).map_err(|_| too_many())?;
                        push(&mut stack, n, &mut std::iter::repeat_n((t, child), n_usize))?;
                    }
                }
            }
            Entry::Record(fields) => push(
                &mut stack,
                fields.len() as u64,
                &mut fields.iter().rev().map(|t| (*t, child)),
            )?,
            Entry::Variant(fields) => {
                let i = r.leb()?;
                let t = usize::try_from(i)
                    .ok()
                    .and_then(|i| fields.get(i))
                    .ok_or_else(|| format!("variant index {i} out of range"))?;
                push(&mut stack, 1, &mut std::iter::once((*t, child)))?;
            }
        }
    }
    if r.at != arg.len() {
        return Err(format!("{} bytes after the arguments", arg.len() - r.at));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(arg: &[u8]) -> bool {
        check("get_vault", arg).is_ok()
    }

    #[test]
    fn ordinary_arguments_pass() {
        use crate::model::types::{BeginUploadArgs, ItemKind, PageArgs};
        assert!(ok(b""));
        assert!(ok(&candid::encode_one(7u64).unwrap()));
        assert!(ok(&candid::encode_args((
            7u64,
            PageArgs::default(),
            "x",
            vec![1u32; 100]
        ))
        .unwrap()));
        let upload = BeginUploadArgs {
            vault_id: 1,
            kind: ItemKind::File,
            size: 3,
            sha256: serde_bytes::ByteBuf::from(vec![0; 32]),
            encrypted_meta: serde_bytes::ByteBuf::from(vec![0; 4096]),
            recipients: Some(vec![1, 2]),
            replaces: Some(3),
            idempotency_key: Some("k".into()),
        };
        let arg = candid::encode_one(upload).unwrap();
        assert!(check("begin_upload", &arg).is_ok());
        // Variants of every style, nested records, principals, big numbers.
        type Entry = (candid::Principal, candid::Nat, Option<()>);
        let v: Result<Option<Vec<Entry>>, String> = Ok(Some(vec![(
            candid::Principal::anonymous(),
            candid::Nat::from(1u64 << 63),
            None,
        )]));
        assert!(ok(&candid::encode_one(v).unwrap()));
        assert!(ok(
            &candid::encode_one(Err::<(), _>("e".to_string())).unwrap()
        ));
    }

    #[test]
    fn depth_type_table_size_and_work_are_bounded() {
        // Nesting: opt opt ... 7u64.
        fn nested(n: u32) -> Vec<u8> {
            let mut b = b"DIDL".to_vec();
            b.push(n as u8);
            for i in 0..n {
                b.push(0x6e);
                b.push(if i + 1 < n { (i + 1) as u8 } else { 0x78 });
            }
            b.extend([1, 0]);
            b.extend(std::iter::repeat_n(1u8, n as usize));
            b.extend(7u64.to_le_bytes());
            b
        }
        assert!(ok(&nested(30)));
        let deep = check("get_vault", &nested(40)).unwrap_err();
        assert!(deep.contains("nested deeper than 32"), "{deep}");
        // A recursive type nested far deeper, as an extra argument.
        let mut b = b"DIDL\x01\x6e\x00\x02\x78\x00".to_vec();
        b.extend(1u64.to_le_bytes());
        b.extend(std::iter::repeat_n(1u8, 10_000));
        b.push(0);
        let e = check("get_download_chunk", &b).unwrap_err();
        assert!(e.contains("nested deeper than 32"), "{e}");
        // A record that contains itself (no bytes per level).
        let own = b"DIDL\x01\x6c\x01\x00\x00\x01\x00".to_vec();
        assert!(check("get_vault", &own)
            .unwrap_err()
            .contains("nested deeper"));
        // 65 types.
        let mut t = b"DIDL\x41".to_vec();
        for _ in 0..65 {
            t.extend([0x6e, 0x78]);
        }
        t.extend([1, 0, 0]);
        assert!(
            check("get_vault", &t).unwrap_err().contains("type table"),
            "{t:?}"
        );
        // A vec null of 2^40 elements in a few bytes.
        let mut v = b"DIDL\x01\x6d\x7f\x01\x00".to_vec();
        v.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
        assert!(check("get_vault", &v)
            .unwrap_err()
            .contains("values than allowed (at most 1000)"));
        // Values are counted when pushed: 998 empty vectors pass, 1 000 do not (with the
        // argument itself and the type table's fields nothing else counts here).
        let vecs = |n: u16| {
            let mut b = b"DIDL\x02\x6d\x01\x6d\x7f\x01\x00".to_vec();
            b.extend([(n & 0x7f) as u8 | 0x80, (n >> 7) as u8]);
            b.extend(std::iter::repeat_n(0u8, n as usize));
            b
        };
        assert!(ok(&vecs(998)), "{:?}", check("get_vault", &vecs(998)));
        assert!(check("get_vault", &vecs(1_000))
            .unwrap_err()
            .contains("values than allowed"));
        // Size.
        let big = candid::encode_one("x".repeat(20_000)).unwrap();
        assert!(check("get_vault", &big)
            .unwrap_err()
            .contains("exceed the limit"));
        // Not Candid.
        assert!(check("get_vault", b"garbage").is_err());
    }
}
