//! The framing of the decision log's files: each file is a sequence of
//! frames `magic | kind | length | CRC32 | payload`.
//!
//! The magic lets a reader find the next frame after damaged bytes (resync);
//! the CRC tells *corruption* (bytes changed without the checksum being
//! rewritten) from content that was rewritten consistently, which only the
//! hash chain can catch. The CRC covers kind, length and payload, so a
//! flipped length is caught too.

/// Marks the start of every frame: "EDLG" (etax decision log).
pub const MAGIC: [u8; 4] = *b"EDLG";
/// magic (4) + kind (1) + payload length (4, LE) + CRC32 (4, LE).
pub const HEADER: usize = 13;
/// No frame is larger: a length beyond it is damage, not a frame.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// One record, uncompressed (the journal: durable before it is blocked).
    Record = 1,
    /// Many records compressed together (the segments).
    Block = 2,
}

impl Kind {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Kind::Record),
            2 => Some(Kind::Block),
            _ => None,
        }
    }
}

fn crc(kind: u8, len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// One frame's bytes.
pub fn encode(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    encode_into(kind, payload, &mut out);
    out
}

/// One frame's bytes, appended to `out` (the writer's commit buffer, so a
/// frame is not first made on its own and then copied).
pub fn encode_into(kind: Kind, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("frames are under 4 GiB");
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc(kind as u8, len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Whether a frame read as its header bytes and payload still has the
/// checksum it was written with: a read must not serve a frame the disk or
/// a hand changed (verify then says which record).
pub fn checksum_holds(head: &[u8], payload: &[u8]) -> bool {
    let Some(stored) = head.get(9..13) else {
        return false;
    };
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    stored == crc(head[4], len, payload).to_le_bytes()
}

/// A frame header read on its own (the index is built from headers only).
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub kind: u8,
    pub len: usize,
}

/// Parses a frame header; `None` if the bytes do not start one.
pub fn header(bytes: &[u8]) -> Option<Header> {
    if bytes.len() < HEADER || bytes[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(bytes[5..9].try_into().expect("4 bytes")) as usize;
    (len <= MAX_PAYLOAD).then_some(Header {
        kind: bytes[4],
        len,
    })
}

/// What a reader finds at a position of a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A whole frame whose CRC matches.
    Frame {
        at: usize,
        kind: u8,
        payload: &'a [u8],
    },
    /// A frame whose extent is plausible (the next frame or the end of the
    /// file follows it) but whose CRC does not match: corrupted.
    Damaged {
        at: usize,
        kind: u8,
        payload: &'a [u8],
    },
    /// Bytes that are no frame, up to the next good frame or the end.
    Garbage { at: usize, end: usize },
    /// A frame cut off by the end of the file (a write a crash interrupted).
    Torn { at: usize },
}

/// The frames of a file's bytes, resynchronizing after damage.
pub struct Frames<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub fn frames(buf: &[u8]) -> Frames<'_> {
    Frames { buf, pos: 0 }
}

impl<'a> Frames<'a> {
    /// A frame at `at` that is whole and whose CRC matches.
    fn good_at(&self, at: usize) -> Option<usize> {
        let h = header(&self.buf[at..])?;
        let end = at.checked_add(HEADER + h.len)?;
        let payload = self.buf.get(at + HEADER..end)?;
        let stored = u32::from_le_bytes(self.buf[at + 9..at + 13].try_into().expect("4 bytes"));
        (crc(h.kind, h.len as u32, payload) == stored).then_some(end)
    }

    /// The next position after `from` where a good frame starts.
    fn resync(&self, from: usize) -> Option<usize> {
        (from..self.buf.len().saturating_sub(HEADER - 1))
            .filter(|&i| self.buf[i..i + 4] == MAGIC)
            .find(|&i| self.good_at(i).is_some())
    }

    fn garbage(&mut self, at: usize) -> Item<'a> {
        let end = self.resync(at + 1).unwrap_or(self.buf.len());
        self.pos = end;
        Item::Garbage { at, end }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        let at = self.pos;
        let rest = self.buf.get(at..).filter(|r| !r.is_empty())?;
        let Some(h) = header(rest) else {
            // The start of a header the end of the file cut off.
            if rest.len() < HEADER && MAGIC.starts_with(&rest[..rest.len().min(4)]) {
                self.pos = self.buf.len();
                return Some(Item::Torn { at });
            }
            return Some(self.garbage(at));
        };
        let end = at + HEADER + h.len;
        if end > self.buf.len() {
            // Either a frame the crash cut, or a damaged length: a good
            // frame further on says which.
            return Some(match self.resync(at + 1) {
                Some(_) => self.garbage(at),
                None => {
                    self.pos = self.buf.len();
                    Item::Torn { at }
                }
            });
        }
        let payload = &self.buf[at + HEADER..end];
        if self.good_at(at).is_some() {
            self.pos = end;
            return Some(Item::Frame {
                at,
                kind: h.kind,
                payload,
            });
        }
        if end == self.buf.len() || self.good_at(end).is_some() {
            self.pos = end;
            return Some(Item::Damaged {
                at,
                kind: h.kind,
                payload,
            });
        }
        Some(self.garbage(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resyncs_after_damage_and_sees_a_torn_end() {
        let mut file = Vec::new();
        for p in [&b"one"[..], b"two", b"three"] {
            file.extend(encode(Kind::Record, p));
        }
        let whole: Vec<_> = frames(&file).collect();
        assert_eq!(whole.len(), 3);
        // A flipped payload byte: the frame is damaged, the next still read.
        let mut flipped = file.clone();
        flipped[HEADER + 1] ^= 1;
        let items: Vec<_> = frames(&flipped).collect();
        assert!(matches!(items[0], Item::Damaged { at: 0, .. }), "{items:?}");
        assert!(matches!(
            items[1],
            Item::Frame {
                payload: b"two",
                ..
            }
        ));
        // A flipped magic: garbage up to the next frame.
        let mut garbled = file.clone();
        garbled[0] ^= 0xff;
        let items: Vec<_> = frames(&garbled).collect();
        assert_eq!(items[0], Item::Garbage { at: 0, end: 16 });
        // A cut-off final frame.
        let cut = &file[..file.len() - 2];
        let items: Vec<_> = frames(cut).collect();
        assert!(
            matches!(items.last(), Some(Item::Torn { at: 32 })),
            "{items:?}"
        );
    }
}
