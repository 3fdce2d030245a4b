//! A text archive of a sysfs tree that records directories, files and symlinks explicitly, so no copy,
//! checkout or editor can turn a link into a file (or the other way round) without the unpacking failing.
//!
//! Format (sim/fixtures/README.md describes it for people): the first line is `accel-sysfs-archive 1`,
//! then one entry per line, in any order that lists a directory before what it holds:
//!
//! ```text
//! dir <path>
//! file <path>             (an empty file)
//! file <path> <content>
//! link <path> <target>
//! ```
//!
//! and `#` comment lines. `<path>` is relative to the tree's root, `/`-separated, with no `.`, `..` or empty
//! component; a link's `<target>` is relative and must stay inside the tree. Paths, targets and contents
//! are escaped so that every line is printable ASCII: `\\` is a backslash, `\n` a newline, `\t` a tab, and
//! `\xHH` any other byte. A space is written as `\x20` in paths and targets, and as the last byte of a
//! content (so stripping trailing whitespace cannot change a file). Anything else is an error naming the
//! line: nothing is guessed and nothing is written as an empty file in place of what was not understood.
//! File modes are not recorded: files are unpacked 0644, directories 0755.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// The first line of every archive.
pub const HEADER: &str = "accel-sysfs-archive 1";

/// Why an archive could not be read or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("line {line}: {path}: {source}")]
    Write { line: usize, path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
}

/// One entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { path: String },
    File { path: String, content: Vec<u8> },
    Link { path: String, target: String },
}

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path } | Entry::File { path, .. } | Entry::Link { path, .. } => path,
        }
    }
}

/// Parses an archive, checking every line (syntax, escapes, paths, order, links staying inside).
pub fn parse(text: &str) -> Result<Vec<Entry>, ArchiveError> {
    Ok(parse_numbered(text)?.into_iter().map(|(_, e)| e).collect())
}

/// The entries with their line numbers.
fn parse_numbered(text: &str) -> Result<Vec<(usize, Entry)>, ArchiveError> {
    let mut lines = text.split('\n').enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, HEADER)) => {}
        _ => return Err(syntax(1, format!("the first line must be `{HEADER}`"))),
    }
    let mut dirs: HashSet<String> = HashSet::new();
    let mut taken: HashSet<String> = HashSet::new();
    let mut entries = Vec::new();
    let mut last_line_empty = false;
    for (n, line) in lines {
        if last_line_empty {
            return Err(syntax(n - 1, "empty line".to_owned()));
        }
        if line.is_empty() {
            // Allowed only as the end of the text (the newline ending the last line).
            last_line_empty = true;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if let Some(bad) = line.bytes().find(|b| !(0x20..=0x7e).contains(b)) {
            return Err(syntax(n, format!("raw byte 0x{bad:02x} (bytes outside printable ASCII must be escaped)")));
        }
        if line.ends_with(' ') {
            return Err(syntax(n, "the line ends with a raw space (a final space is written `\\x20`)".to_owned()));
        }
        let (kind, rest) = line.split_once(' ').ok_or_else(|| syntax(n, format!("`{line}` has no path")))?;
        let (raw_path, arg) = match rest.split_once(' ') {
            Some((p, a)) => (p, Some(a)),
            None => (rest, None),
        };
        let path = unescape_text(raw_path, n, "path")?;
        check_relative(&path).map_err(|r| syntax(n, format!("path `{path}`: {r}")))?;
        let parent = path.rsplit_once('/').map(|(p, _)| p);
        if let Some(parent) = parent
            && !dirs.contains(parent)
        {
            return Err(syntax(n, format!("`{path}`: its directory `{parent}` is not listed before it")));
        }
        if !taken.insert(path.clone()) {
            return Err(syntax(n, format!("`{path}` is listed twice")));
        }
        let entry = match (kind, arg) {
            ("dir", None) => {
                dirs.insert(path.clone());
                Entry::Dir { path }
            }
            ("file", None) => Entry::File { path, content: Vec::new() },
            ("file", Some("")) => return Err(syntax(n, format!("`file {path}` has a separator but no content"))),
            ("file", Some(c)) => Entry::File { path, content: unescape(c, n)? },
            ("link", Some(t)) => {
                let target = unescape_text(t, n, "link target")?;
                let depth = parent.map_or(0, |p| p.split('/').count());
                check_target(depth, &target).map_err(|r| syntax(n, format!("link `{path}` -> `{target}`: {r}")))?;
                Entry::Link { path, target }
            }
            ("dir", Some(_)) => return Err(syntax(n, format!("`dir {path}` takes nothing after the path"))),
            ("link", None) => return Err(syntax(n, format!("`link {path}` has no target"))),
            (other, _) => return Err(syntax(n, format!("unknown entry kind `{other}` (expected dir, file or link)"))),
        };
        entries.push((n, entry));
    }
    if !last_line_empty {
        return Err(syntax(text.split('\n').count(), "the archive must end with a newline".to_owned()));
    }
    Ok(entries)
}

/// Unpacks an archive into `root` (an existing, empty directory). Nothing is written unless the whole
/// archive parses.
pub fn unpack(text: &str, root: &Path) -> Result<(), ArchiveError> {
    for (line, entry) in parse_numbered(text)? {
        let to = root.join(entry.path());
        let result = match &entry {
            Entry::Dir { .. } => fs::create_dir(&to),
            Entry::File { content, .. } => fs::write(&to, content),
            Entry::Link { target, .. } => symlink(target, &to),
        };
        result.map_err(|source| ArchiveError::Write { line, path: to, source })?;
    }
    Ok(())
}

/// Packs the tree under `root` (directories, regular files and symlinks; anything else is an error),
/// in byte order of the paths, each directory before its contents.
pub fn pack(root: &Path) -> Result<String, ArchiveError> {
    let mut out = format!("{HEADER}\n");
    pack_dir(root, "", &mut out)?;
    Ok(out)
}

fn pack_dir(dir: &Path, rel: &str, out: &mut String) -> Result<(), ArchiveError> {
    let read = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Read { path: path.clone(), source }
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(read(dir))? {
        names.push(entry.map_err(read(dir))?.file_name());
    }
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for name in names {
        let full = dir.join(&name);
        let name = name.to_str().ok_or_else(|| ArchiveError::Unsupported {
            path: full.clone(),
            reason: "the name is not UTF-8".to_owned(),
        })?;
        let rel = if rel.is_empty() { name.to_owned() } else { format!("{rel}/{name}") };
        let meta = fs::symlink_metadata(&full).map_err(read(&full))?;
        let path = escape(rel.as_bytes(), true);
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&full).map_err(read(&full))?;
            let target = target.to_str().ok_or_else(|| ArchiveError::Unsupported {
                path: full.clone(),
                reason: "the link target is not UTF-8".to_owned(),
            })?;
            let _ = writeln!(out, "link {path} {}", escape(target.as_bytes(), true));
        } else if meta.is_dir() {
            let _ = writeln!(out, "dir {path}");
            pack_dir(&full, &rel, out)?;
        } else if meta.is_file() {
            let content = fs::read(&full).map_err(read(&full))?;
            if content.is_empty() {
                let _ = writeln!(out, "file {path}");
            } else {
                let _ = writeln!(out, "file {path} {}", escape(&content, false));
            }
        } else {
            return Err(ArchiveError::Unsupported {
                path: full,
                reason: "neither a directory, a regular file nor a symlink".to_owned(),
            });
        }
    }
    Ok(())
}

/// Escapes bytes as the format says; `in_path` also escapes every space.
pub fn escape(bytes: &[u8], in_path: bool) -> String {
    let mut s = String::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b' ' if in_path || i + 1 == bytes.len() => s.push_str("\\x20"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

fn unescape(s: &str, line: usize) -> Result<Vec<u8>, ArchiveError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => out.push(b'\\'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| {
                    syntax(line, format!("`\\x` must be followed by two hex digits at column {}", i + 1))
                })?;
                out.push(byte);
                i += 4;
                continue;
            }
            Some(&c) => return Err(syntax(line, format!("unknown escape `\\{}` at column {}", char::from(c), i + 1))),
            None => return Err(syntax(line, "a lone `\\` at the end of the line".to_owned())),
        }
        i += 2;
    }
    Ok(out)
}

fn unescape_text(s: &str, line: usize, what: &str) -> Result<String, ArchiveError> {
    String::from_utf8(unescape(s, line)?).map_err(|_| syntax(line, format!("the {what} is not UTF-8")))
}

fn check_relative(path: &str) -> Result<(), String> {
    if path.is_empty() || path.starts_with('/') {
        return Err("must be relative and not empty".to_owned());
    }
    if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("has an empty, `.` or `..` component".to_owned());
    }
    if path.bytes().any(|b| b == 0) {
        return Err("has a NUL byte".to_owned());
    }
    Ok(())
}

/// Whether a relative `target` from a link `depth` directories below the root stays inside the tree.
fn check_target(depth: usize, target: &str) -> Result<(), String> {
    if target.is_empty() || target.starts_with('/') {
        return Err("the target must be relative and not empty".to_owned());
    }
    if target.bytes().any(|b| b == 0) {
        return Err("the target has a NUL byte".to_owned());
    }
    let mut d = depth as i64;
    for part in target.split('/') {
        match part {
            ".." => d -= 1,
            "." | "" => {}
            _ => d += 1,
        }
        if d < 0 {
            return Err("the target leaves the tree".to_owned());
        }
    }
    Ok(())
}

fn syntax(line: usize, reason: String) -> ArchiveError {
    ArchiveError::Syntax { line, reason }
}
