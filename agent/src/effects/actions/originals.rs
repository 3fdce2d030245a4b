//! The values files had before the agent first wrote them, kept on disk so a crash while throttled is
//! undone at the next start.
//!
//! The file is trusted for nothing. It is written atomically (a new file created exclusively, fsynced,
//! renamed over), one entry per line with a checksum of its own, closed by the count of entries and a
//! checksum of them all, so a cut or damaged file is told from a whole one and every intact entry of it
//! can still be used. When read, an entry is kept only if its path is one the current config may write
//! and its value looks like an attribute value; anything else is reported and set aside. A file that is
//! damaged, foreign or unreadable is renamed to `originals.json.rejected` for the operator, never
//! followed if it is a symlink, and never stops the actions layer.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::beneath::{SysfsRoot, Target};
use super::write::{WriteError, plausible_value, read_value};

pub const ORIGINALS_FILE: &str = "originals.json";
/// Where a damaged or foreign originals file is moved for the operator to look at.
pub const REJECTED_FILE: &str = "originals.json.rejected";
const VERSION: u32 = 2;
/// A larger originals file is not ours (a few entries per throttled device).
const MAX_SIZE: u64 = 1024 * 1024;

/// The value a file had before the agent first wrote it, and the device whose ladder wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Original {
    pub device: String,
    pub value: String,
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    path: String,
    device: String,
    value: String,
    sum: String,
}

/// The whole file, as parsed when it is intact.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Whole {
    version: u32,
    entries: Vec<Entry>,
    count: usize,
    sum: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn entry_sum(path: &str, device: &str, value: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("{path}\0{device}\0{value}").as_bytes());
    hex(&d.as_ref()[..8])
}

fn file_sum<'a>(sums: impl Iterator<Item = &'a str>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for s in sums {
        ctx.update(s.as_bytes());
        ctx.update(b"\n");
    }
    hex(ctx.finish().as_ref())
}

/// An entry set aside when the file was read, with why; its path and value are the file's (untrusted)
/// text, shown quoted.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub path: String,
    pub value: String,
    pub why: String,
}

/// What reading the file found besides the entries kept.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Why the file as a whole could not be trusted (cut short, checksum mismatch, unreadable, ...).
    pub damaged: Option<String>,
    /// Entries recovered from a damaged file.
    pub recovered: usize,
    pub rejected: Vec<Rejected>,
    /// Where the file was moved for the operator, when it was.
    pub moved_to: Option<PathBuf>,
}

/// Originals kept on disk.
#[derive(Debug)]
pub struct Originals {
    file: PathBuf,
    pub entries: BTreeMap<Target, Original>,
}

/// Why the originals file could not be read (its path is named by the report that says so).
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("it is a symlink")]
    Symlink,
    #[error("cannot open it: {0}")]
    Open(#[source] std::io::Error),
    #[error("cannot stat it: {0}")]
    Stat(#[source] std::io::Error),
    #[error("not a regular file")]
    NotAFile,
    #[error("{0} bytes, larger than any originals file")]
    TooLarge(u64),
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
}

/// Reads the file without following a symlink and only if it is a regular file of plausible size.
fn read_file(file: &Path) -> Result<Option<Vec<u8>>, ReadError> {
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(file);
    let f = match f {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(ReadError::Symlink),
        Err(e) => return Err(ReadError::Open(e)),
    };
    let meta = f.metadata().map_err(ReadError::Stat)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > MAX_SIZE {
        return Err(ReadError::TooLarge(meta.len()));
    }
    let mut bytes = Vec::new();
    f.take(MAX_SIZE).read_to_end(&mut bytes).map_err(ReadError::Read)?;
    Ok(Some(bytes))
}

/// The entries of the file: all of them when it is whole, else each line that is an intact entry.
/// Returns (path, device, value) triples and why the file is damaged, if it is.
fn parse(bytes: &[u8], root: &Path) -> (Vec<(String, Original)>, Option<String>) {
    // An entry whose checksum matches, or None.
    let checked = |e: Entry| -> Option<(String, Original)> {
        let intact = entry_sum(&e.path, &e.device, &e.value) == e.sum;
        intact.then_some((e.path, Original { device: e.device, value: e.value }))
    };
    match serde_json::from_slice::<Whole>(bytes) {
        Ok(w) if w.version == VERSION => {
            let expected = file_sum(w.entries.iter().map(|e| e.sum.as_str()));
            let whole = w.count == w.entries.len() && w.sum == expected;
            let mut out = Vec::new();
            let mut bad = 0;
            for e in w.entries {
                match checked(e) {
                    Some(kv) => out.push(kv),
                    None => bad += 1,
                }
            }
            let damaged = match (whole, bad) {
                (true, 0) => None,
                (_, 0) => Some("its checksum does not match its entries".to_owned()),
                (_, n) => Some(format!("{n} entries fail their checksum")),
            };
            return (out, damaged);
        }
        Ok(w) => return (Vec::new(), Some(format!("unknown version {}", w.version))),
        Err(_) => {}
    }
    // Written by an agent before version 2: a map of absolute paths. Still restorable (the paths are
    // checked like any other), so an upgrade while throttled loses nothing.
    if let Ok(v1) = serde_json::from_slice::<BTreeMap<PathBuf, Original>>(bytes) {
        let canonical_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
        let out = v1
            .into_iter()
            .map(|(p, o)| {
                let rel = p.strip_prefix(root).or_else(|_| p.strip_prefix(&canonical_root)).unwrap_or(&p);
                (rel.to_string_lossy().into_owned(), o)
            })
            .collect();
        return (out, None);
    }
    // Cut short or damaged: every line that is a whole entry with a matching checksum is recovered.
    let text = String::from_utf8_lossy(bytes);
    let out = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l.trim().trim_end_matches(',')).ok())
        .filter_map(checked)
        .collect();
    let why = if text.trim().is_empty() { "it is empty" } else { "it is cut short or not valid JSON" };
    (out, Some(why.to_owned()))
}

impl Originals {
    /// Reads what a previous run left. `allowed` maps every target the current config may write to
    /// the device whose ladder writes it; only those are kept. Never fails: whatever cannot be used is
    /// in the report, and the file is moved aside when it was not whole and ours.
    pub fn load(state_dir: &Path, root: &Path, allowed: &BTreeMap<Target, String>) -> (Originals, LoadReport) {
        let file = state_dir.join(ORIGINALS_FILE);
        let mut report = LoadReport::default();
        let (raw, damaged) = match read_file(&file) {
            Ok(None) => (Vec::new(), None),
            Ok(Some(bytes)) => parse(&bytes, root),
            Err(why) => (Vec::new(), Some(why.to_string())),
        };
        let mut entries = BTreeMap::new();
        for (path, original) in raw {
            let quoted = || Rejected {
                path: path.chars().take(200).collect(),
                value: original.value.chars().take(64).collect(),
                why: String::new(),
            };
            let Some((target, device)) = Target::parse(&path).ok().and_then(|t| allowed.get_key_value(&t)) else {
                report.rejected.push(Rejected { why: "not a file the current config may write".into(), ..quoted() });
                continue;
            };
            if !plausible_value(&original.value) {
                report.rejected.push(Rejected { why: "not a plausible attribute value".into(), ..quoted() });
                continue;
            }
            if damaged.is_some() {
                report.recovered += 1;
            }
            // The config says whose file it is; the file's word for it is not needed.
            entries.insert(target.clone(), Original { device: device.clone(), value: original.value });
        }
        report.damaged = damaged;
        let originals = Originals { file, entries };
        if report.damaged.is_some() || !report.rejected.is_empty() {
            let aside = state_dir.join(REJECTED_FILE);
            // rename moves a symlink itself, never what it points to.
            if std::fs::rename(&originals.file, &aside).is_ok() {
                report.moved_to = Some(aside);
            }
            if let Err(e) = originals.persist() {
                tracing::error!("{e}");
            }
        }
        (originals, report)
    }

    /// Remembers `target`'s current value unless it is already remembered, durably, before any write.
    pub fn save_first(&mut self, root: &SysfsRoot, target: &Target, device: &str) -> Result<(), WriteError> {
        if self.entries.contains_key(target) {
            return Ok(());
        }
        let value = read_value(root, target)?;
        if !plausible_value(&value) {
            return Err(WriteError::BadValue { path: root.display(target), value: value.chars().take(64).collect() });
        }
        self.entries.insert(target.clone(), Original { device: device.to_owned(), value });
        if let Err(e) = self.persist() {
            // Not saved, not written: without its original on disk a crash could not undo the write.
            self.entries.remove(target);
            return Err(e);
        }
        Ok(())
    }

    pub fn forget(&mut self, target: &Target) -> Result<(), WriteError> {
        if self.entries.remove(target).is_some() {
            self.persist()?;
        }
        Ok(())
    }

    /// The file's text: one entry per line, closed by the count and a checksum of all entries.
    fn render(&self) -> String {
        let lines: Vec<Entry> = self
            .entries
            .iter()
            .map(|(t, o)| Entry {
                path: t.as_str().to_owned(),
                device: o.device.clone(),
                value: o.value.clone(),
                sum: entry_sum(t.as_str(), &o.device, &o.value),
            })
            .collect();
        let sum = file_sum(lines.iter().map(|e| e.sum.as_str()));
        let body: Vec<String> =
            lines.iter().map(|e| serde_json::to_string(e).unwrap_or_else(|_| String::from("{}"))).collect();
        let entries = if body.is_empty() { String::new() } else { format!("\n{}\n", body.join(",\n")) };
        format!(
            "{{\"version\": {VERSION}, \"entries\": [{entries}], \"count\": {}, \"sum\": \"{sum}\"}}\n",
            lines.len()
        )
    }

    /// Write to a new file created exclusively (never through a symlink or a file someone else left),
    /// fsync, rename over, fsync the directory: a crash leaves the old or the new file, never half.
    fn persist(&self) -> Result<(), WriteError> {
        let err = |source| WriteError::Save { path: self.file.clone(), source };
        let dir = self.file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join(format!(".{ORIGINALS_FILE}.{}.tmp", std::process::id()));
        // Removes a symlink or stale file by that name itself; create_new then fails if one reappears.
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(err)?;
        let written = f.write_all(self.render().as_bytes()).and_then(|()| f.sync_all());
        drop(f);
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &self.file)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(paths: &[(&str, &str)]) -> BTreeMap<Target, String> {
        paths.iter().map(|(p, d)| (Target::parse(p).unwrap(), (*d).to_owned())).collect()
    }

    fn tree() -> (tempfile::TempDir, SysfsRoot) {
        let dir = tempfile::tempdir().unwrap();
        for (p, v) in [("devices/a/cur_state", "0\n"), ("devices/b/power1_cap", "300000000\n")] {
            std::fs::create_dir_all(dir.path().join(p).parent().unwrap()).unwrap();
            std::fs::write(dir.path().join(p), v).unwrap();
        }
        let root = SysfsRoot::open(dir.path()).unwrap();
        (dir, root)
    }

    const A: &str = "devices/a/cur_state";
    const B: &str = "devices/b/power1_cap";

    #[test]
    fn originals_survive_a_restart_and_are_kept_once() {
        let (dir, root) = tree();
        let state = tempfile::tempdir().unwrap();
        let ok = allowed(&[(A, "d0"), (B, "gaudi0")]);
        let (mut o, report) = Originals::load(state.path(), dir.path(), &ok);
        assert!(report.damaged.is_none() && report.rejected.is_empty());
        let b = Target::parse(B).unwrap();
        o.save_first(&root, &b, "gaudi0").unwrap();
        std::fs::write(dir.path().join(B), "150000000\n").unwrap();
        o.save_first(&root, &b, "gaudi0").unwrap();
        let (again, report) = Originals::load(state.path(), dir.path(), &ok);
        assert!(report.damaged.is_none(), "{report:?}");
        assert_eq!(again.entries[&b], Original { device: "gaudi0".into(), value: "300000000".into() });
        assert!(!state.path().join(REJECTED_FILE).exists());
    }

    #[test]
    fn a_cut_file_is_detected_and_its_whole_entries_recovered() {
        let (dir, root) = tree();
        let state = tempfile::tempdir().unwrap();
        let ok = allowed(&[(A, "d0"), (B, "d0")]);
        let (mut o, _) = Originals::load(state.path(), dir.path(), &ok);
        o.save_first(&root, &Target::parse(A).unwrap(), "d0").unwrap();
        o.save_first(&root, &Target::parse(B).unwrap(), "d0").unwrap();
        let file = state.path().join(ORIGINALS_FILE);
        let whole = std::fs::read_to_string(&file).unwrap();
        // Cut in the middle of the second entry: the first is whole, the second lost.
        let cut = whole.find(B).unwrap() + 5;
        std::fs::write(&file, &whole[..cut]).unwrap();
        let (o, report) = Originals::load(state.path(), dir.path(), &ok);
        assert!(report.damaged.as_deref().unwrap().contains("cut short"), "{report:?}");
        assert_eq!(report.recovered, 1);
        assert_eq!(o.entries.keys().map(Target::as_str).collect::<Vec<_>>(), [A]);
        assert_eq!(std::fs::read_to_string(state.path().join(REJECTED_FILE)).unwrap(), &whole[..cut], "kept aside");
        let (_, report) = Originals::load(state.path(), dir.path(), &ok);
        assert!(report.damaged.is_none(), "rewritten whole: {report:?}");

        // Cut after the last entry (the closing count and checksum lost): detected too.
        let whole = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, &whole[..whole.find("\"count\"").unwrap()]).unwrap();
        let (o, report) = Originals::load(state.path(), dir.path(), &ok);
        assert!(report.damaged.is_some());
        assert_eq!(o.entries.len(), 1);

        // An entry whose value was changed in place fails its checksum.
        let whole = std::fs::read_to_string(&file).unwrap().replace("\"value\":\"0\"", "\"value\":\"9\"");
        std::fs::write(&file, whole).unwrap();
        let (o, report) = Originals::load(state.path(), dir.path(), &ok);
        assert!(report.damaged.as_deref().unwrap().contains("checksum"), "{report:?}");
        assert!(o.entries.is_empty());

        for junk in ["", "\0\0\0\0", "{\"version\": 2"] {
            std::fs::write(&file, junk).unwrap();
            let (o, report) = Originals::load(state.path(), dir.path(), &ok);
            assert!(report.damaged.is_some() && o.entries.is_empty(), "{junk:?}");
        }
    }

    #[test]
    fn entries_the_config_does_not_write_are_set_aside() {
        let (dir, _root) = tree();
        let state = tempfile::tempdir().unwrap();
        let file = state.path().join(ORIGINALS_FILE);
        let victim = "/etc/victim";
        // A forged file in the format of older agents, and one in the current format with valid sums.
        let forged_v1 = format!(
            "{{\"{victim}\": {{\"device\": \"acc0\", \"value\": \"x\"}}, \"{}\": {{\"device\": \"acc0\", \"value\": \"0\"}}}}",
            dir.path().join(A).display()
        );
        std::fs::write(&file, forged_v1).unwrap();
        let ok = allowed(&[(A, "d0")]);
        let (o, report) = Originals::load(state.path(), dir.path(), &ok);
        assert_eq!(report.rejected.len(), 1, "{report:?}");
        assert_eq!(report.rejected[0].path, victim);
        assert!(report.rejected[0].why.contains("not a file the current config may write"));
        let a = Target::parse(A).unwrap();
        assert_eq!(o.entries[&a], Original { device: "d0".into(), value: "0".into() }, "the config names the device");
        assert!(state.path().join(REJECTED_FILE).exists());

        let mut forged = Originals { file: file.clone(), entries: BTreeMap::new() };
        forged
            .entries
            .insert(Target::parse("devices/b/power1_cap").unwrap(), Original { device: "x".into(), value: "1".into() });
        forged.entries.insert(a.clone(), Original { device: "d0".into(), value: "0\u{1b}[2J".into() });
        forged.persist().unwrap();
        let (o, report) = Originals::load(state.path(), dir.path(), &ok);
        assert!(o.entries.is_empty());
        let whys: Vec<&str> = report.rejected.iter().map(|r| r.why.as_str()).collect();
        assert_eq!(whys, ["not a plausible attribute value", "not a file the current config may write"]);
    }

    #[test]
    fn the_file_is_never_read_or_written_through_a_symlink() {
        let (dir, root) = tree();
        let state = tempfile::tempdir().unwrap();
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "secret\n").unwrap();
        let file = state.path().join(ORIGINALS_FILE);
        std::os::unix::fs::symlink(secret.path(), &file).unwrap();
        let ok = allowed(&[(A, "d0")]);
        let (mut o, report) = Originals::load(state.path(), dir.path(), &ok);
        assert_eq!(report.damaged.as_deref(), Some("it is a symlink"));
        // A symlink planted where the temporary file goes is removed, not followed.
        let tmp = state.path().join(format!(".{ORIGINALS_FILE}.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(secret.path(), &tmp).unwrap();
        o.save_first(&root, &Target::parse(A).unwrap(), "d0").unwrap();
        assert_eq!(std::fs::read_to_string(secret.path()).unwrap(), "secret\n");
        assert!(!std::fs::symlink_metadata(&file).unwrap().file_type().is_symlink());
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
    }
}
