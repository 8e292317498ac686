//! `upload`, `download` and `sha256`: content from and to files on disk, in the canister's
//! chunk size, with a progress bar ([`crate::progress`]).
//!
//! * `upload [--as NAME] --vault ID FILE [--kind file|letter|password] [--to ID,ID] [--meta TEXT]`
//!   computes the file's SHA-256, calls `begin_upload`, one `upload_chunk` per chunk of the
//!   size the canister returns, and `finish_upload` (which checks size and hash). The bytes
//!   are sent as they are: the file is expected to be ciphertext already, as a client would
//!   produce it. `--meta` is sent as the item's `encrypted_meta` (default: the file name).
//! * `download [--as NAME] --vault ID --item ID [--out FILE]` calls `request_download` and
//!   every `get_download_chunk`, checks size and SHA-256 against the ticket, then writes the
//!   file (default: `item-ID.bin`).
//! * `sha256 FILE` prints the file's SHA-256 in hex (what `begin_upload` expects as a blob).
//!
//! [`upload_bytes`] and [`download_bytes`] are the typed flows, usable on any [`Host`].

use super::{Args, Context};
use crate::progress::ProgressBar;
use anyhow::{anyhow, bail, ensure, Context as _, Result};
use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use livault_backend::domain::error::VaultError;
use livault_backend::model::types::*;
use local_replica::host::Host;
use local_replica::CallKind;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use std::path::Path;

/// What an upload or download did: the item, its hash and the host's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The item uploaded or downloaded.
    pub item_id: u64,
    /// Bytes moved.
    pub size: u64,
    /// Chunks moved.
    pub chunks: u32,
    /// SHA-256 of the payload.
    pub sha256: [u8; 32],
    /// Calls made.
    pub calls: u32,
    /// Instructions of all those calls (whole call trees).
    pub instructions: u64,
}

struct Caller<'a> {
    host: &'a mut Host,
    who: Principal,
    calls: u32,
    instructions: u64,
}

impl Caller<'_> {
    fn call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        query: bool,
        method: &str,
        args: A,
    ) -> Result<R> {
        let kind = if query {
            CallKind::Query
        } else {
            CallKind::Update
        };
        let reply =
            super::call_typed::<_, Result<R, VaultError>>(self.host, kind, self.who, method, args)?;
        self.calls += 1;
        self.instructions += reply.total_instructions;
        reply.value.map_err(|e| anyhow!("{method}: {e:?}"))
    }
}

/// Uploads `payload` into `vault` as `who`: `begin_upload` with its size and SHA-256, the
/// chunks in the canister's chunk size (a progress bar labelled `label` on stderr), then
/// `finish_upload`. Any error of the canister is returned as an error naming the method.
#[allow(clippy::too_many_arguments)]
pub fn upload_bytes(
    host: &mut Host,
    who: Principal,
    vault: u64,
    kind: ItemKind,
    payload: &[u8],
    encrypted_meta: Vec<u8>,
    recipients: Option<Vec<u32>>,
    label: &str,
) -> Result<Transfer> {
    let sha: [u8; 32] = Sha256::digest(payload).into();
    let mut c = Caller {
        host,
        who,
        calls: 0,
        instructions: 0,
    };
    let up: UploadView = c.call(
        false,
        "begin_upload",
        (BeginUploadArgs {
            vault_id: vault,
            kind,
            size: payload.len() as u64,
            sha256: ByteBuf::from(sha.to_vec()),
            encrypted_meta: ByteBuf::from(encrypted_meta),
            recipients,
            replaces: None,
            idempotency_key: None,
        },),
    )?;
    ensure!(
        up.chunk_bytes > 0,
        "the canister returned a chunk size of 0"
    );
    let mut bar = ProgressBar::new(label, payload.len() as u64);
    let mut chunks = 0u32;
    for (i, chunk) in payload.chunks(up.chunk_bytes as usize).enumerate() {
        let _: UploadView = c.call(
            false,
            "upload_chunk",
            (up.upload_id, i as u32, ByteBuf::from(chunk.to_vec())),
        )?;
        bar.inc(chunk.len() as u64);
        chunks += 1;
    }
    bar.finish();
    let item: ItemView = c.call(false, "finish_upload", (up.upload_id,))?;
    ensure!(
        item.sha256.as_slice() == sha.as_slice(),
        "the stored SHA-256 differs from the file's"
    );
    Ok(Transfer {
        item_id: item.item_id,
        size: item.size,
        chunks,
        sha256: sha,
        calls: c.calls,
        instructions: c.instructions,
    })
}

/// Downloads `item` of `vault` as `who`: `request_download`, then every chunk (a progress
/// bar on stderr); fails unless size and SHA-256 equal the ticket's.
pub fn download_bytes(
    host: &mut Host,
    who: Principal,
    vault: u64,
    item: u64,
    label: &str,
) -> Result<(Vec<u8>, Transfer)> {
    let mut c = Caller {
        host,
        who,
        calls: 0,
        instructions: 0,
    };
    let t: DownloadTicket = c.call(false, "request_download", (vault, item))?;
    let mut bytes = Vec::with_capacity(t.size.min(1 << 30) as usize);
    let mut bar = ProgressBar::new(label, t.size);
    for i in 0..t.chunk_count {
        let chunk: ByteBuf = c.call(true, "get_download_chunk", (t.ticket_id, i))?;
        bar.inc(chunk.len() as u64);
        bytes.extend_from_slice(&chunk);
    }
    bar.finish();
    ensure!(
        bytes.len() as u64 == t.size,
        "downloaded {} bytes, the ticket says {}",
        bytes.len(),
        t.size
    );
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    ensure!(
        sha.as_slice() == t.sha256.as_slice(),
        "the SHA-256 of the downloaded bytes differs from the ticket's"
    );
    let transfer = Transfer {
        item_id: item,
        size: t.size,
        chunks: t.chunk_count,
        sha256: sha,
        calls: c.calls,
        instructions: c.instructions,
    };
    Ok((bytes, transfer))
}

/// Parses `--kind` (`file`, `letter`, `password`, any case).
pub fn parse_kind(s: &str) -> Result<ItemKind> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "file" => ItemKind::File,
        "letter" => ItemKind::Letter,
        "password" => ItemKind::Password,
        _ => bail!("unknown --kind {s:?} (file, letter, password)"),
    })
}

/// Parses `--to 1,2` (heir member ids).
pub fn parse_recipients(s: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .map_err(|_| anyhow!("invalid member id {p:?} in --to (e.g. --to 1,2)"))
        })
        .collect()
}

fn parse_id(flag: &str, s: &str) -> Result<u64> {
    s.replace('_', "")
        .parse()
        .map_err(|_| anyhow!("{flag} needs a number, got {s:?}"))
}

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes).into())
}

/// `upload [--as NAME] --vault ID FILE [--kind K] [--to IDS] [--meta TEXT]`.
pub fn upload(ctx: &mut Context, mut args: Args) -> Result<()> {
    let as_name = args.flag("--as")?;
    let vault = parse_id("--vault", &args.required("--vault")?)?;
    let kind = parse_kind(&args.flag("--kind")?.unwrap_or_else(|| "file".into()))?;
    let recipients = args
        .flag("--to")?
        .map(|s| parse_recipients(&s))
        .transpose()?;
    let meta = args.flag("--meta")?;
    let Some(file) = args.next_positional() else {
        bail!("usage: upload [--as NAME] --vault ID FILE [--kind file|letter|password] [--to ID,ID] [--meta TEXT]");
    };
    args.finish()?;
    let (_, who) = ctx.identities.resolve(as_name.as_deref())?;
    let path = Path::new(&file);
    let payload = std::fs::read(path).with_context(|| format!("reading {file}"))?;
    let meta = meta.unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let label = format!("upload {file}");
    let t = upload_bytes(
        &mut ctx.host,
        who,
        vault,
        kind,
        &payload,
        meta.into_bytes(),
        recipients,
        &label,
    )?;
    ctx.info(format!(
        "{} calls, {} instructions",
        t.calls, t.instructions
    ));
    println!(
        "item {} ({} bytes in {} chunks) sha256 {}",
        t.item_id,
        t.size,
        t.chunks,
        hex::encode(t.sha256)
    );
    Ok(())
}

/// `download [--as NAME] --vault ID --item ID [--out FILE]`.
pub fn download(ctx: &mut Context, mut args: Args) -> Result<()> {
    let as_name = args.flag("--as")?;
    let vault = parse_id("--vault", &args.required("--vault")?)?;
    let item = parse_id("--item", &args.required("--item")?)?;
    let out = args
        .flag("--out")?
        .unwrap_or_else(|| format!("item-{item}.bin"));
    args.finish()?;
    let (_, who) = ctx.identities.resolve(as_name.as_deref())?;
    let (bytes, t) = download_bytes(&mut ctx.host, who, vault, item, "download")?;
    std::fs::write(&out, &bytes).with_context(|| format!("writing {out}"))?;
    ctx.info(format!(
        "{} calls, {} instructions",
        t.calls, t.instructions
    ));
    println!(
        "{out}: {} bytes in {} chunks, sha256 {} (equals the ticket's)",
        t.size,
        t.chunks,
        hex::encode(t.sha256)
    );
    Ok(())
}

/// `sha256 FILE`.
pub fn sha256(_ctx: &mut Context, mut args: Args) -> Result<()> {
    let Some(file) = args.next_positional() else {
        bail!("usage: sha256 FILE");
    };
    args.finish()?;
    println!("{}  {file}", hex::encode(sha256_file(Path::new(&file))?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_and_recipients() {
        assert_eq!(parse_kind("Letter").unwrap(), ItemKind::Letter);
        assert_eq!(parse_kind("file").unwrap(), ItemKind::File);
        assert!(parse_kind("photo").is_err());
        assert_eq!(parse_recipients("1, 2").unwrap(), vec![1, 2]);
        assert!(parse_recipients("1,x").is_err());
        assert_eq!(parse_id("--vault", "1_000").unwrap(), 1000);
    }

    #[test]
    fn hashes_files() {
        let p = std::env::temp_dir().join(format!("livault-sha-{}", std::process::id()));
        std::fs::write(&p, b"abc").unwrap();
        let h = sha256_file(&p).unwrap();
        let _ = std::fs::remove_file(&p);
        assert_eq!(
            hex::encode(h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
