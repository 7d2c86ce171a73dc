//! The stored unit of the decision log, agnostic of the record's fields: a
//! record's canonical JSON (the bytes its chain hash covers) and the hash as
//! 32 raw bytes; and how many of them are packed into one compressed block.
//!
//! The previous record's hash appears inside the canonical JSON as 64 hex
//! digits. It is implied by the record before, so it is cut out on disk and
//! put back when read (only its offset is kept): 64 incompressible bytes per
//! record saved, and the reconstructed bytes are exactly the hashed ones.

use std::io::Read;

use super::digest::to_hex;

/// The 64 hex digits of the previous hash are cut out at this offset; this
/// value means they were not found and the JSON is stored whole.
const WHOLE: u32 = u32::MAX;

/// One record as stored: canonical JSON, its hash and the hash it links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Position in the log (from the frame or block, not the JSON: the walk
    /// compares the two).
    pub seq: u64,
    pub timestamp_ms: u64,
    pub prev: [u8; 32],
    pub hash: [u8; 32],
    /// The canonical form, `prev_hash` included.
    pub canonical: Vec<u8>,
    /// False when the record was stored after another record than the one
    /// now before it (a block keeps 4 bytes of each record's previous hash
    /// for this): the chain was cut there, so the walk names the record
    /// before rather than blaming this one's content.
    pub links: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn bad(what: &str) -> DecodeError {
    DecodeError(what.to_owned())
}

/// Reads little-endian fields off the front of a byte slice.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(bad("truncated entry"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn hash(&mut self) -> Result<[u8; 32], DecodeError> {
        Ok(self.take(32)?.try_into().expect("32"))
    }
}

impl Stored {
    /// The line `audit export` prints: the canonical form with `hash` as
    /// its last field.
    pub fn line(&self) -> Vec<u8> {
        let mut out = self.canonical.clone();
        if out.last() == Some(&b'}') {
            out.pop();
        }
        out.extend_from_slice(b",\"hash\":\"");
        out.extend_from_slice(to_hex(&self.hash).as_bytes());
        out.extend_from_slice(b"\"}");
        out
    }

    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// The canonical JSON without the previous hash, and where it was.
    fn cut_prev(&self) -> (u32, &[u8], &[u8]) {
        // Made on the stack: this runs twice for every record written.
        const KEY: &[u8] = b"\"prev_hash\":\"";
        let mut needle = [0u8; KEY.len() + 65];
        needle[..KEY.len()].copy_from_slice(KEY);
        hex::encode_to_slice(self.prev, &mut needle[KEY.len()..KEY.len() + 64])
            .expect("64 hex digits for 32 bytes");
        needle[KEY.len() + 64] = b'"';
        // Where the writer puts it: last, before the closing brace (`hash`
        // is left out of the canonical form), so the search is skipped for
        // every record it writes. Found there, it is the last occurrence.
        let last = self.canonical.len().checked_sub(needle.len() + 1);
        let at_end = last.filter(|&i| self.canonical.get(i..i + needle.len()) == Some(&needle[..]));
        match at_end.or_else(|| memrfind(&self.canonical, &needle)) {
            Some(i) => {
                let at = i + KEY.len();
                (at as u32, &self.canonical[..at], &self.canonical[at + 64..])
            }
            None => (WHOLE, &self.canonical[..], &[][..]),
        }
    }

    fn put_prev(at: u32, json: &[u8], prev: &[u8; 32]) -> Result<Vec<u8>, DecodeError> {
        if at == WHOLE {
            return Ok(json.to_vec());
        }
        let at = at as usize;
        if at > json.len() {
            return Err(bad("previous-hash offset past the record"));
        }
        let mut out = Vec::with_capacity(json.len() + 64);
        out.extend_from_slice(&json[..at]);
        out.extend_from_slice(to_hex(prev).as_bytes());
        out.extend_from_slice(&json[at..]);
        Ok(out)
    }

    /// A journal frame's payload: `seq | time | prev | hash | at | json`.
    pub fn encode_raw(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_raw_into(&mut out);
        out
    }

    /// [`Self::encode_raw`] appended to `out`.
    pub fn encode_raw_into(&self, out: &mut Vec<u8>) {
        let (at, a, b) = self.cut_prev();
        out.reserve(84 + a.len() + b.len());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&self.prev);
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&at.to_le_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b);
    }

    pub fn decode_raw(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor(payload);
        let seq = c.u64()?;
        let timestamp_ms = c.u64()?;
        let prev = c.hash()?;
        let hash = c.hash()?;
        let at = c.u32()?;
        let canonical = Self::put_prev(at, c.0, &prev)?;
        Ok(Self {
            seq,
            timestamp_ms,
            prev,
            hash,
            canonical,
            links: true,
        })
    }
}

fn memrfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// What a block says of itself, uncompressed, so the index is built without
/// decompressing: `first_seq | count | min time | max time | prev hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub first_seq: u64,
    pub count: u32,
    pub min_ms: u64,
    pub max_ms: u64,
    /// The hash the block's first record links to.
    pub prev: [u8; 32],
}

pub const BLOCK_HEADER: usize = 60;

impl BlockHeader {
    pub fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor(payload);
        Ok(Self {
            first_seq: c.u64()?,
            count: c.u32()?,
            min_ms: c.u64()?,
            max_ms: c.u64()?,
            prev: c.hash()?,
        })
    }

    pub fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count).saturating_sub(1)
    }
}

/// The two fields of a record's own JSON that storage also keeps beside it
/// (for the index): only the JSON is covered by the hash.
#[derive(serde::Deserialize)]
struct Own {
    seq: u64,
    timestamp_ms: u64,
}

/// The sequence number and time a record's canonical JSON says.
pub fn own_seq_time(canonical: &[u8]) -> Result<(u64, u64), DecodeError> {
    serde_json::from_slice::<Own>(canonical)
        .map(|o| (o.seq, o.timestamp_ms))
        .map_err(|e| DecodeError(format!("no seq and time in the record: {e}")))
}

/// What storage says of a record (its position, its time) that the record
/// itself does not: a rewritten index field, since the hash covers only the
/// JSON. `None` when they agree or the JSON cannot be read (the walk reports
/// that on its own).
pub fn record_disagreement(r: &Stored) -> Option<String> {
    let (seq, ms) = own_seq_time(&r.canonical).ok()?;
    if seq != r.seq {
        return Some(format!("storage places record {seq} at position {}", r.seq));
    }
    (ms != r.timestamp_ms).then(|| {
        format!(
            "storage gives record {seq} the time {} but the record says {ms}",
            r.timestamp_ms
        )
    })
}

/// The cheap part of [`block_disagreement`], for every read: the header's
/// first seq against the first record's own, its times against the stored
/// ones.
pub fn header_mismatch(header: &BlockHeader, records: &[Stored]) -> Option<String> {
    let (first, _) = own_seq_time(&records.first()?.canonical).ok()?;
    let min = records.iter().map(|r| r.timestamp_ms).min()?;
    let max = records.iter().map(|r| r.timestamp_ms).max()?;
    (first != header.first_seq || (header.min_ms, header.max_ms) != (min, max)).then(|| {
        format!(
            "the block header (first record {}, times {}..{}) disagrees with its records (first {first}, times {min}..{max}): rewritten",
            header.first_seq, header.min_ms, header.max_ms
        )
    })
}

/// What a block's header (first seq, count, min and max time) or its
/// records' stored positions and times say that the records do not. Readers
/// rely on the header to skip blocks, so a rewritten one hides records.
pub fn block_disagreement(header: &BlockHeader, records: &[Stored]) -> Option<String> {
    // Only the first record's position is stored (the header's first seq);
    // the others follow from it, and a record removed inside the block is
    // the chain walk's to name.
    let (first, _) = own_seq_time(&records.first()?.canonical).ok()?;
    if first != header.first_seq {
        return Some(format!(
            "the block header says it starts at record {} but its first record is {first}",
            header.first_seq
        ));
    }
    let moved = records.iter().find_map(|r| {
        let (seq, ms) = own_seq_time(&r.canonical).ok()?;
        (ms != r.timestamp_ms).then(|| {
            format!(
                "the index gives record {seq} the time {} but the record says {ms}",
                r.timestamp_ms
            )
        })
    });
    if moved.is_some() {
        return moved;
    }
    if records.len() != header.count as usize {
        return Some(format!(
            "the block header counts {} records but the block holds {}",
            header.count,
            records.len()
        ));
    }
    let min = records.iter().map(|r| r.timestamp_ms).min()?;
    let max = records.iter().map(|r| r.timestamp_ms).max()?;
    ((header.min_ms, header.max_ms) != (min, max)).then(|| {
        format!(
            "the block header's times {}..{} are not its records' {min}..{max}",
            header.min_ms, header.max_ms
        )
    })
}

/// Records per compressed block: enough for zstd to find the repetition
/// between records, few enough that the journal stays small.
pub const BLOCK_RECORDS: usize = 1024;

/// Segment bytes for `records`: block frames of [`BLOCK_RECORDS`] each.
pub fn block_frames(records: &[Stored]) -> Vec<u8> {
    records
        .chunks(BLOCK_RECORDS)
        .flat_map(|chunk| super::frame::encode(super::frame::Kind::Block, &encode_block(chunk)))
        .collect()
}

/// zstd level: the writer compresses every block, so a fast level. On
/// blocks of the bureau-scale mix's records level 1 was both smaller (x7.5
/// against x7.2) and twice as fast (560 against 275 MB/s) as level 3
/// (BENCHMARKS.md, session 13). Reading does not depend on it.
const LEVEL: i32 = 1;

/// A block frame's payload for consecutive records: the header, then
/// zstd(`hash | link | time | at | len | json` per record), `link` the first
/// 4 bytes of the record's previous hash. The records' own
/// previous hashes are implied: the header's, then each one's predecessor.
pub fn encode_block(records: &[Stored]) -> Vec<u8> {
    let first = records.first().expect("a block holds records");
    // Each entry's fixed fields are 52 bytes; its JSON loses 64.
    let mut body = Vec::with_capacity(records.iter().map(|r| r.canonical.len()).sum());
    for r in records {
        let (at, a, b) = r.cut_prev();
        body.extend_from_slice(&r.hash);
        body.extend_from_slice(&r.prev[..4]);
        body.extend_from_slice(&r.timestamp_ms.to_le_bytes());
        body.extend_from_slice(&at.to_le_bytes());
        body.extend_from_slice(&((a.len() + b.len()) as u32).to_le_bytes());
        body.extend_from_slice(a);
        body.extend_from_slice(b);
    }
    let mut out = Vec::with_capacity(BLOCK_HEADER + body.len() / 4);
    out.extend_from_slice(&first.seq.to_le_bytes());
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    let min = records.iter().map(|r| r.timestamp_ms).min().unwrap_or(0);
    let max = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
    out.extend_from_slice(&min.to_le_bytes());
    out.extend_from_slice(&max.to_le_bytes());
    out.extend_from_slice(&first.prev);
    out.extend(zstd::bulk::compress(&body, LEVEL).expect("zstd compresses in memory"));
    out
}

/// The records of a block. Fails if the body cannot be decompressed or
/// parsed; the entries decoded before a failure are lost with it (the walk
/// then names the block's first record).
pub fn decode_block(payload: &[u8]) -> Result<(BlockHeader, Vec<Stored>), DecodeError> {
    let header = BlockHeader::parse(payload)?;
    let mut body = Vec::new();
    zstd::stream::read::Decoder::new(&payload[BLOCK_HEADER..])
        .and_then(|mut d| d.read_to_end(&mut body))
        .map_err(|e| DecodeError(format!("block does not decompress: {e}")))?;
    let mut c = Cursor(&body);
    let mut prev = header.prev;
    let mut out = Vec::with_capacity(header.count as usize);
    for i in 0..u64::from(header.count) {
        let hash = c.hash()?;
        let link = c.take(4)?;
        let timestamp_ms = c.u64()?;
        let at = c.u32()?;
        let len = c.u32()? as usize;
        let json = c.take(len)?;
        out.push(Stored {
            seq: header.first_seq + i,
            timestamp_ms,
            prev,
            hash,
            canonical: Stored::put_prev(at, json, &prev)?,
            links: link == &prev[..4],
        });
        prev = hash;
    }
    if !c.0.is_empty() {
        return Err(bad("bytes after the block's last record"));
    }
    Ok((header, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(seq: u64, prev: [u8; 32]) -> Stored {
        let canonical = format!(
            "{{\"seq\":{seq},\"x\":\"y\",\"prev_hash\":\"{}\"}}",
            hex::encode(prev)
        )
        .into_bytes();
        Stored {
            seq,
            timestamp_ms: 100 + seq,
            prev,
            hash: super::super::digest::ChainHash::Sha256.digest(&canonical),
            canonical,
            links: true,
        }
    }

    #[test]
    fn records_round_trip_through_journal_frames_and_blocks() {
        let a = stored(7, [0; 32]);
        let b = stored(8, a.hash);
        assert_eq!(Stored::decode_raw(&a.encode_raw()).unwrap(), a);
        let raw = a.encode_raw();
        assert_eq!(
            raw.len(),
            84 + a.canonical.len() - 64,
            "the prev hash is cut"
        );
        let (h, back) = decode_block(&encode_block(&[a.clone(), b.clone()])).unwrap();
        assert_eq!((h.first_seq, h.count, h.min_ms, h.max_ms), (7, 2, 107, 108));
        assert_eq!(back, vec![a.clone(), b]);
        assert!(a
            .line()
            .ends_with(format!(",\"hash\":\"{}\"}}", a.hash_hex()).as_bytes()));
    }
}
