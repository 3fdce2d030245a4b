//! Gzip of /metrics that compresses only the text that changed since the previous generation.
//!
//! Compressing a scrape of a large host took about as long as encoding it twice, and most of its text
//! (limits, labels, counters at rest, info series) is the same from one collection to the next. So the
//! text is cut at family starts (`# HELP` lines) into segments of at least [`MIN_SEGMENT`] bytes, and
//! each segment is deflated on its own: a fresh dictionary, ended with a sync flush so that it ends on a
//! byte boundary. A segment whose text equals one of the previous generation's (same CRC-32 and length,
//! then compared byte for byte) is copied from it instead of compressed again. The member is the gzip
//! header, the segments, an empty final block and a trailer whose CRC-32 is combined from the segments'.
//! Decompressed, it is the text exactly; compressed, a few percent larger than one stream would be, as
//! no segment refers back into another.

use std::collections::HashMap;
use std::ops::Range;

use bytes::Bytes;
use flate2::{Compress, CompressError, Compression, FlushCompress};

/// The smallest segment: big enough that starting a new dictionary costs little, small enough that
/// a changed value recompresses only its neighbourhood.
pub const MIN_SEGMENT: usize = 16 * 1024;

/// Where each family begins in both text formats.
const FAMILY_START: &[u8] = b"\n# HELP ";

/// Magic, deflate, no flags, no time, no extra flags, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A final block with fixed Huffman codes and nothing in it: `BFINAL = 1`, `BTYPE = 01`, end of block.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

struct Segment {
    /// Where its text is in the generation it was cut from.
    text: Range<usize>,
    crc: u32,
    deflated: Vec<u8>,
}

/// The previous generation's segments, for one format.
#[derive(Default)]
pub struct SegmentedGzip {
    /// The text the segments were cut from (shared with the rendered generation, not copied).
    text: Bytes,
    segments: Vec<Segment>,
}

impl SegmentedGzip {
    /// `text` as one gzip member, reusing the previous call's compressed segments where the text is the
    /// same, and keeping this call's for the next.
    pub fn compress(&mut self, text: &Bytes) -> Result<Bytes, CompressError> {
        let previous: HashMap<(u32, usize), &Segment> =
            self.segments.iter().map(|s| ((s.crc, s.text.len()), s)).collect();
        let mut compressor = None;
        let mut segments = Vec::with_capacity(self.segments.len().max(8));
        for range in cut(text) {
            let piece = &text[range.clone()];
            let crc = crc32fast::hash(piece);
            let same = previous.get(&(crc, piece.len())).filter(|s| self.text[s.text.clone()] == *piece);
            let deflated = match same {
                Some(s) => s.deflated.clone(),
                // Level 1: metrics text compresses well even at the fastest level, on the scrape path.
                None => deflate(compressor.get_or_insert_with(|| Compress::new(Compression::fast(), false)), piece)?,
            };
            segments.push(Segment { text: range, crc, deflated });
        }
        let out = member(&segments, text.len());
        self.text = text.clone();
        self.segments = segments;
        Ok(out)
    }
}

/// Ranges of `text` that start at a family (or at 0) and are at least [`MIN_SEGMENT`] long, except the
/// last; together they cover `text`.
fn cut(text: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::with_capacity(text.len() / MIN_SEGMENT + 1);
    let mut start = 0;
    let finder = memchr::memmem::Finder::new(FAMILY_START);
    while start + MIN_SEGMENT < text.len() {
        // The newline belongs to the segment before; the next one starts at `#`.
        match finder.find(&text[start + MIN_SEGMENT..]) {
            Some(at) => {
                let end = start + MIN_SEGMENT + at + 1;
                out.push(start..end);
                start = end;
            }
            None => break,
        }
    }
    if start < text.len() || out.is_empty() {
        out.push(start..text.len());
    }
    out
}

/// `piece` as deflate blocks on their own, ending on a byte boundary and not final.
fn deflate(c: &mut Compress, piece: &[u8]) -> Result<Vec<u8>, CompressError> {
    c.reset();
    let base = c.total_in();
    let consumed = |c: &Compress| usize::try_from(c.total_in() - base).unwrap_or(usize::MAX).min(piece.len());
    let mut out = Vec::with_capacity(piece.len() / 8 + 64);
    loop {
        c.compress_vec(&piece[consumed(c)..], &mut out, FlushCompress::Sync)?;
        // Done when all input is in and the flush did not fill the output (so nothing is pending).
        if consumed(c) == piece.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64));
    }
}

/// The gzip member of `segments`, whose texts make `len` bytes.
fn member(segments: &[Segment], len: usize) -> Bytes {
    let body: usize = segments.iter().map(|s| s.deflated.len()).sum();
    let mut out = Vec::with_capacity(HEADER.len() + body + FINAL_BLOCK.len() + 8);
    out.extend_from_slice(&HEADER);
    let mut crc = crc32fast::Hasher::new();
    for s in segments {
        out.extend_from_slice(&s.deflated);
        crc.combine(&crc32fast::Hasher::new_with_initial_len(s.crc, s.text.len() as u64));
    }
    out.extend_from_slice(&FINAL_BLOCK);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952).
    out.extend_from_slice(&(len as u32).to_le_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b).read_to_end(&mut out).expect("valid gzip");
        out
    }

    /// A text of `families` families of 40 samples, the value of family `changed` differing by `v`.
    fn text(families: usize, changed: usize, v: u32) -> Bytes {
        let mut s = String::from("# HELP first a family at the very start\n");
        for f in 0..families {
            s.push_str(&format!("# HELP fam_{f} help of {f}\n# TYPE fam_{f} gauge\n"));
            for i in 0..40 {
                let value = if f == changed { v } else { 7 };
                s.push_str(&format!("fam_{f}{{chip=\"hwmon{i}\",sensor=\"temp{i}\"}} {value}.{i}\n"));
            }
        }
        Bytes::from(s)
    }

    #[test]
    fn segments_start_at_families_and_cover_the_text() {
        let t = text(100, usize::MAX, 0);
        let ranges = cut(&t);
        assert!(ranges.len() >= 8, "{} segments for {} bytes", ranges.len(), t.len());
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(t.len()));
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
            assert!(pair[0].len() >= MIN_SEGMENT);
            assert!(t[pair[1].start..].starts_with(b"# HELP "), "cut inside a family at {}", pair[1].start);
        }
        assert_eq!(cut(b""), vec![0..0]);
        assert_eq!(cut(b"x 1\n"), vec![0..4]);
    }

    #[test]
    fn decompresses_to_the_text_and_reuses_what_did_not_change() {
        let mut gz = SegmentedGzip::default();
        let first = text(100, usize::MAX, 0);
        assert_eq!(gunzip(&gz.compress(&first).unwrap()), first);
        let again = gz.compress(&first).unwrap();
        assert_eq!(gunzip(&again), first);

        // One family changes: its segment is compressed anew, every other one is the previous one's.
        let before: Vec<Vec<u8>> = gz.segments.iter().map(|s| s.deflated.clone()).collect();
        let second = text(100, 50, 9);
        let out = gz.compress(&second).unwrap();
        assert_eq!(gunzip(&out), second);
        let kept = gz.segments.iter().filter(|s| before.contains(&s.deflated)).count();
        assert_eq!(kept, gz.segments.len() - 1, "only the changed family's segment differs");

        // Bigger than one stream by little.
        let mut one = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        std::io::Write::write_all(&mut one, &second).unwrap();
        let one = one.finish().unwrap();
        assert!(out.len() < one.len() * 11 / 10, "{} bytes against {} in one stream", out.len(), one.len());
    }

    #[test]
    fn empty_and_small_texts() {
        let mut gz = SegmentedGzip::default();
        assert_eq!(gunzip(&gz.compress(&Bytes::new()).unwrap()), b"");
        let small = Bytes::from_static(b"# HELP a b\n# TYPE a gauge\na 1\n# EOF\n");
        assert_eq!(gunzip(&gz.compress(&small).unwrap()), &small[..]);
    }
}
