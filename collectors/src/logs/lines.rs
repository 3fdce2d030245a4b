//! Cutting a byte stream into lines with bounded memory.
//!
//! A partial last line is held back until its newline arrives, but never beyond `max` bytes: a writer
//! that never ends its line (or a binary file) must not grow the agent. Over-long lines are cut at
//! `max` bytes, on a character boundary when the bytes are UTF-8, and the rest up to the newline is
//! dropped. Invalid UTF-8 is replaced, not rejected: a log line with one bad byte is still evidence.

/// One line of a log, without its line terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    /// The line was longer than the maximum line length and `text` is only its head.
    pub truncated: bool,
}

/// Splits bytes into [`Line`]s.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    partial: Vec<u8>,
    /// Drop bytes up to and including the next newline: the head of this line was already emitted cut,
    /// or reading started inside it.
    skipping: bool,
}

impl LineSplitter {
    pub fn new(max_line_bytes: usize) -> Self {
        LineSplitter { max: max_line_bytes.max(1), partial: Vec::new(), skipping: false }
    }

    /// Drops everything up to the next newline: for a start position that may be inside a line.
    pub fn skip_to_next_line(&mut self) {
        self.partial.clear();
        self.skipping = true;
    }

    /// Whether bytes of an unfinished line are held back.
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Appends complete lines of `data` to `out`; keeps a trailing partial line for the next call.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Line>) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.end_line(&data[..i], out);
                    data = &data[i + 1..];
                }
                None => {
                    self.hold(data, out);
                    return;
                }
            }
        }
    }

    /// The source ended (rotated away, truncated, deleted): a held partial line is complete as it is,
    /// since nothing more will be appended to it.
    pub fn finish(&mut self, out: &mut Vec<Line>) {
        if !self.partial.is_empty() {
            out.push(make_line(&self.partial, false));
            self.partial.clear();
        }
        self.skipping = false;
    }

    fn end_line(&mut self, seg: &[u8], out: &mut Vec<Line>) {
        if self.skipping {
            self.skipping = false;
            return;
        }
        if self.partial.is_empty() {
            let cut = seg.len() > self.max;
            out.push(make_line(&seg[..seg.len().min(self.max)], cut));
            return;
        }
        let room = self.max - self.partial.len();
        let cut = seg.len() > room;
        self.partial.extend_from_slice(&seg[..seg.len().min(room)]);
        out.push(make_line(&self.partial, cut));
        self.partial.clear();
    }

    fn hold(&mut self, data: &[u8], out: &mut Vec<Line>) {
        if self.skipping {
            return;
        }
        let room = self.max - self.partial.len();
        if data.len() <= room {
            self.partial.extend_from_slice(data);
            return;
        }
        self.partial.extend_from_slice(&data[..room]);
        out.push(make_line(&self.partial, true));
        self.partial.clear();
        self.skipping = true;
    }
}

fn make_line(bytes: &[u8], truncated: bool) -> Line {
    let bytes = if truncated {
        &bytes[..complete_utf8_len(bytes)]
    } else {
        // CRLF files (Windows-built SDKs) would otherwise leave a '\r' that breaks `$` in patterns.
        bytes.strip_suffix(b"\r").unwrap_or(bytes)
    };
    Line { text: String::from_utf8_lossy(bytes).into_owned(), truncated }
}

/// The length of `b` without a multibyte character that the cut split, so a cut line does not end in a
/// replacement character that was not in the log.
fn complete_utf8_len(b: &[u8]) -> usize {
    for back in 1..=b.len().min(4) {
        let i = b.len() - back;
        let c = b[i];
        if c & 0xC0 == 0x80 {
            continue;
        }
        let need = match c {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if back < need { i } else { b.len() };
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<(&str, bool)> {
        lines.iter().map(|l| (l.text.as_str(), l.truncated)).collect()
    }

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.push(b"one\ntw", &mut out);
        assert_eq!(texts(&out), [("one", false)]);
        assert!(s.has_partial());
        s.push(b"o\r\nthree", &mut out);
        assert_eq!(texts(&out), [("one", false), ("two", false)]);
        s.finish(&mut out);
        assert_eq!(texts(&out), [("one", false), ("two", false), ("three", false)]);
        assert!(!s.has_partial());
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_dropped() {
        let mut s = LineSplitter::new(5);
        let mut out = Vec::new();
        s.push(b"0123456789\nabcde\nxy", &mut out);
        s.push(b"z1234567", &mut out);
        s.push(b"89\nok\n", &mut out);
        assert_eq!(texts(&out), [("01234", true), ("abcde", false), ("xyz12", true), ("ok", false)]);
    }

    #[test]
    fn a_cut_does_not_split_a_character() {
        let mut s = LineSplitter::new(5);
        let mut out = Vec::new();
        // "ab" + 'é' (2 bytes) + '€' (3 bytes): the cut at 5 would split the euro sign.
        s.push("abé€x\n".as_bytes(), &mut out);
        assert_eq!(texts(&out), [("abé", true)]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.push(b"bad \xff\xfe byte\n", &mut out);
        assert_eq!(texts(&out), [("bad \u{FFFD}\u{FFFD} byte", false)]);
    }

    #[test]
    fn skipping_drops_the_first_partial_line_only() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.skip_to_next_line();
        s.push(b"tail of a line\nnext\n", &mut out);
        assert_eq!(texts(&out), [("next", false)]);
    }
}
