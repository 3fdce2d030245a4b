//! The real captured sysfs tree lives in the repository as a text archive (sim/fixtures/real-sysfs.txt);
//! these tests show it unpacks with its symlinks, losslessly, and that the unpacker refuses what it does
//! not understand instead of guessing.

use std::fs;
use std::path::Path;

use accel_sim::sysfs_archive::{self, ArchiveError, Entry, HEADER};
use accel_sim::sysfs_tree::{real_sysfs, real_sysfs_archive};

#[test]
fn the_stored_archive_unpacks_and_packs_back_to_the_same_bytes() {
    let stored = fs::read_to_string(real_sysfs_archive()).unwrap();
    let tree = real_sysfs();
    let repacked = sysfs_archive::pack(tree.path()).unwrap();
    // Line by line first, so a difference is readable.
    for (n, (a, b)) in stored.lines().zip(repacked.lines()).enumerate() {
        assert_eq!(a, b, "line {}", n + 1);
    }
    assert_eq!(stored, repacked);
}

#[test]
fn the_real_tree_has_its_links_as_links() {
    let tree = real_sysfs();
    let root = tree.path();
    let entries = sysfs_archive::parse(&fs::read_to_string(real_sysfs_archive()).unwrap()).unwrap();
    let links: Vec<_> = entries.iter().filter(|e| matches!(e, Entry::Link { .. })).collect();
    let files = entries.iter().filter(|e| matches!(e, Entry::File { .. })).count();
    assert_eq!((links.len(), files), (92, 1976));

    // A class entry is a link to a directory (the kind of link a copy used to turn into an empty file).
    let hwmon0 = root.join("class/hwmon/hwmon0");
    assert!(fs::symlink_metadata(&hwmon0).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_link(&hwmon0).unwrap(), Path::new("../../devices/platform/coretemp.0/hwmon/hwmon0"));
    assert_eq!(fs::read_to_string(hwmon0.join("name")).unwrap(), "coretemp\n");
    assert_eq!(fs::read_to_string(hwmon0.join("temp1_input")).unwrap(), "55000\n");
    // The class and bus entries the agent and node_exporter walk resolve inside the tree. (Links deeper
    // under devices/, such as a PCI function's driver or iommu_group, point at parts of sysfs the capture
    // did not include; the archive keeps them as captured, and parsing proved they stay inside the tree.)
    let canonical_root = root.canonicalize().unwrap();
    let walked: Vec<_> =
        links.iter().filter(|l| l.path().starts_with("class/") || l.path().starts_with("bus/")).collect();
    assert_eq!(walked.len(), 30);
    for link in walked {
        let resolved = root.join(link.path()).canonicalize();
        let resolved = resolved.unwrap_or_else(|e| panic!("{} does not resolve: {e}", link.path()));
        assert!(resolved.starts_with(&canonical_root), "{} -> {}", link.path(), resolved.display());
    }
}

#[test]
fn escapes_round_trip_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<u8> = (0..=255u8).collect();
    fs::create_dir(dir.path().join("a b")).unwrap();
    fs::write(dir.path().join("a b/all"), &all).unwrap();
    fs::write(dir.path().join("a b/trailing space"), "x ").unwrap();
    fs::write(dir.path().join("empty"), "").unwrap();
    std::os::unix::fs::symlink("a b/all", dir.path().join("link")).unwrap();
    let text = sysfs_archive::pack(dir.path()).unwrap();
    assert!(text.bytes().all(|b| b == b'\n' || (0x20..=0x7e).contains(&b)), "printable ASCII only");
    assert!(text.lines().all(|l| !l.ends_with(' ')), "no line ends with a space");
    assert!(text.contains("\nfile a\\x20b/trailing\\x20space x\\x20\n"), "{text}");
    assert!(text.contains("\nfile empty\n"), "{text}");
    assert!(text.contains("\nlink link a\\x20b/all\n"), "{text}");

    let out = tempfile::tempdir().unwrap();
    sysfs_archive::unpack(&text, out.path()).unwrap();
    assert_eq!(fs::read(out.path().join("a b/all")).unwrap(), all);
    assert_eq!(fs::read(out.path().join("a b/trailing space")).unwrap(), b"x ");
    assert_eq!(fs::read(out.path().join("empty")).unwrap(), b"");
    assert_eq!(fs::read_link(out.path().join("link")).unwrap(), Path::new("a b/all"));
    assert_eq!(sysfs_archive::pack(out.path()).unwrap(), text);
}

/// Unpacks `body` (after the header) and returns the error, checking that nothing was written.
fn refused(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let err = sysfs_archive::unpack(&format!("{HEADER}\n{body}"), dir.path()).expect_err(body);
    assert!(matches!(err, ArchiveError::Syntax { .. }), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written for {body:?}");
    err.to_string()
}

#[test]
fn what_the_unpacker_does_not_understand_is_an_error_naming_the_line() {
    let cases: &[(&str, &str)] = &[
        ("dir a\nsymlink a/b ../x\n", "line 3: unknown entry kind `symlink`"),
        ("dir a\nfile a/b 1\r\n", "line 3: raw byte 0x0d"),
        ("file a\t1\n", "line 2: raw byte 0x09"),
        ("file a 1 \n", "line 2: the line ends with a raw space"),
        ("file a 1\\q\n", "line 2: unknown escape `\\q`"),
        ("file a \\x4\n", "line 2: `\\x` must be followed by two hex digits"),
        ("file a 1\\\n", "line 2: a lone `\\`"),
        ("file a/b 1\n", "line 2: `a/b`: its directory `a` is not listed before it"),
        ("dir a\nlink a/l ../b\nfile a/l/x 1\n", "line 4: `a/l/x`: its directory `a/l` is not listed"),
        ("file a 1\nfile a 2\n", "line 3: `a` is listed twice"),
        ("file /etc/passwd x\n", "line 2: path `/etc/passwd`: must be relative"),
        ("dir a\nfile a/../b 1\n", "line 3: path `a/../b`: has an empty, `.` or `..` component"),
        ("dir a\nlink a/l ../../etc\n", "line 3: link `a/l` -> `../../etc`: the target leaves the tree"),
        ("link l /etc\n", "line 2: link `l` -> `/etc`: the target must be relative"),
        ("link l\n", "line 2: `link l` has no target"),
        ("dir a x\n", "line 2: `dir a` takes nothing after the path"),
        ("file a \n", "line 2: the line ends with a raw space"),
        ("file a 1", "line 2: the archive must end with a newline"),
        ("file a 1\n\nfile b 2\n", "line 3: empty line"),
        ("dir\n", "line 2: `dir` has no path"),
    ];
    for (body, want) in cases {
        let got = refused(body);
        assert!(got.starts_with(want), "{body:?}: got {got:?}, want {want:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let err = sysfs_archive::unpack("file a 1\n", dir.path()).unwrap_err().to_string();
    assert_eq!(err, format!("line 1: the first line must be `{HEADER}`"));
}

#[test]
fn comments_are_skipped_and_line_numbers_still_count_them() {
    let dir = tempfile::tempdir().unwrap();
    sysfs_archive::unpack(&format!("{HEADER}\n# a comment\ndir a\nfile a/x 1\\n\n"), dir.path()).unwrap();
    assert_eq!(fs::read_to_string(dir.path().join("a/x")).unwrap(), "1\n");
    assert!(refused("# one\n# two\nbogus x\n").starts_with("line 4: unknown entry kind `bogus`"));
}

#[test]
fn packing_refuses_what_the_format_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let err = sysfs_archive::pack(dir.path()).unwrap_err().to_string();
    assert_eq!(err, format!("{}: neither a directory, a regular file nor a symlink", fifo.display()));
}
