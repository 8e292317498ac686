//! Content endpoints: uploads, items, downloads.
//!
//! The two byte-heavy endpoints bypass the generic Candid paths to stay near the cost floor:
//! `upload_chunk` decodes its blob as a slice borrowed from the argument buffer (no copy), and
//! `get_download_chunk` writes its reply by reading stable memory straight into the reply
//! buffer (one stable read and one reply append per byte).

use serde_bytes::ByteBuf;

use crate::domain::content;
use crate::domain::error::{VaultError, VaultResult};
use crate::domain::types::{
    BeginUploadArgs, DownloadTicket, ItemId, ItemView, Page, PageArgs, TicketId, UploadId,
    UploadView, VaultId,
};
use crate::runtime::Runtime;
use crate::storage::pages::{self, ChunkLoc};

use super::{admit_update, read, rt, write, WhenPaused};

#[ic_cdk::update]
fn begin_upload(args: BeginUploadArgs) -> VaultResult<UploadView> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| content::begin_upload(s, &rt, args))
}

/// The `blob` argument of `upload_chunk`, kept inside the argument buffer it arrived in.
pub struct ChunkBytes {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ChunkBytes {
    /// The chunk's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

/// Decodes `(nat64, nat32, blob)` with the blob borrowed from the argument buffer. Malformed
/// arguments trap, like the generated decoders do.
pub fn decode_chunk_args(buf: Vec<u8>) -> (UploadId, u32, ChunkBytes) {
    let mut config = candid::DecoderConfig::new();
    config.set_skipping_quota(10_000);
    let (upload_id, index, start, end) = {
        let (upload_id, index, bytes): (u64, u32, &serde_bytes::Bytes) =
            candid::utils::decode_args_with_config(&buf, &config)
                .unwrap_or_else(|e| ic_cdk::trap(format!("upload_chunk: bad arguments: {e}")));
        let start = bytes.as_ptr() as usize - buf.as_ptr() as usize;
        (upload_id, index, start, start + bytes.len())
    };
    (upload_id, index, ChunkBytes { buf, start, end })
}

// `hidden`: with a custom decoder the macro would describe the argument as one blob; the
// interface is declared by `interface::upload_chunk` below instead.
#[ic_cdk::update(decode_with = "decode_chunk_args", hidden = true)]
fn upload_chunk(upload_id: UploadId, index: u32, bytes: ChunkBytes) -> VaultResult<UploadView> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| content::upload_chunk(s, &rt, upload_id, index, bytes.as_slice()))
}

#[ic_cdk::update]
fn finish_upload(upload_id: UploadId) -> VaultResult<ItemView> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| content::finish_upload(s, &rt, upload_id))
}

#[ic_cdk::update]
fn abort_upload(upload_id: UploadId) -> VaultResult<()> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Allow)?;
    write(|s| content::abort_upload(s, &rt, upload_id))
}

#[ic_cdk::update]
fn delete_item(vault_id: VaultId, item_id: ItemId) -> VaultResult<()> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Refuse)?;
    write(|s| content::delete_item(s, &rt, vault_id, item_id))
}

#[ic_cdk::query]
fn list_items(vault_id: VaultId, page: PageArgs) -> VaultResult<Page<ItemView>> {
    read(|s| content::list_items(s, &rt(), vault_id, page))
}

#[ic_cdk::update]
fn request_download(vault_id: VaultId, item_id: ItemId) -> VaultResult<DownloadTicket> {
    let rt = rt();
    admit_update(&rt, WhenPaused::Allow)?;
    write(|s| content::request_download(s, &rt, vault_id, item_id))
}

/// The reply of `get_download_chunk`: `variant { Ok : blob; Err : VaultError }`, holding
/// where the bytes are rather than the bytes (see [`encode_chunk_reply`]).
pub struct ChunkReply(VaultResult<ChunkLoc>);

/// Encodes `Ok(blob)` as the Candid encoding of `Ok(empty blob)` with its final length byte
/// replaced by the real LEB128 length, followed by the bytes read from stable memory
/// directly into the reply buffer.
pub fn encode_chunk_reply(reply: ChunkReply) -> Vec<u8> {
    match reply.0 {
        Err(e) => candid::encode_one(Err::<ByteBuf, VaultError>(e))
            .unwrap_or_else(|e| ic_cdk::trap(format!("BUG: encode error reply: {e}"))),
        Ok(loc) => {
            let mut out = candid::encode_one(Ok::<ByteBuf, VaultError>(ByteBuf::new()))
                .unwrap_or_else(|e| ic_cdk::trap(format!("BUG: encode reply: {e}")));
            // The empty blob is the last value: its length, LEB128 0, is the last byte.
            let zero = out.pop();
            debug_assert_eq!(zero, Some(0));
            let mut n = loc.len;
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
            read(|s| pages::read_append(s, &loc, &mut out));
            out
        }
    }
}

// `hidden`: see `upload_chunk`; declared by `interface::get_download_chunk`.
#[ic_cdk::query(encode_with = "encode_chunk_reply", hidden = true)]
fn get_download_chunk(ticket_id: TicketId, index: u32) -> ChunkReply {
    let rt = rt();
    ChunkReply(read(|s| {
        content::download_chunk_loc(s, &rt.caller(), rt.now(), ticket_id, index)
    }))
}

/// The Candid signatures of the two endpoints with custom codecs, for the exported
/// interface (they are never called).
#[cfg(test)]
#[allow(dead_code)]
mod interface {
    use super::*;

    #[candid::candid_method(update, rename = "upload_chunk")]
    fn upload_chunk(
        upload_id: UploadId,
        index: u32,
        bytes: serde_bytes::ByteBuf,
    ) -> VaultResult<UploadView> {
        unreachable!(
            "interface declaration only: {upload_id} {index} {}",
            bytes.len()
        )
    }

    #[candid::candid_method(query, rename = "get_download_chunk")]
    fn get_download_chunk(ticket_id: TicketId, index: u32) -> VaultResult<serde_bytes::ByteBuf> {
        unreachable!("interface declaration only: {ticket_id} {index}")
    }
}
