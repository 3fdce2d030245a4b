//! Opening files beneath the sysfs root so that nothing can steer a write outside it.
//!
//! A target is resolved once (when the config loads, or when its device first appears): the directory
//! part follows symlinks only while they stay beneath the root, as sysfs' own class and bus links do, and
//! the result is a canonical [`Target`] with no symlink, `.` or `..` left in it. Every later open of that
//! target follows no symlink at all: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`
//! relative to the root's descriptor, or, where the kernel has no `openat2` (before 5.6, or a seccomp
//! filter that hides it), a walk of `openat(O_NOFOLLOW)` one component at a time. The opened descriptor
//! must be a regular file with one link on the root's filesystem; the write and its read-back go to that
//! descriptor. Swapping any component for a symlink at any moment therefore makes the open fail; it can
//! never make it land elsewhere.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Symlinks followed while resolving one target, as the kernel's own limit (ELOOP beyond).
const MAX_LINKS: usize = 40;
/// Longer target paths are refused (PATH_MAX).
const MAX_PATH: usize = 4096;

/// Why an open beneath the root was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A symlink leaves the root (absolute, or `..` above it).
    OutsideRoot { link: String },
    /// A component is a symlink (or not a directory) at the moment of the open.
    Symlink,
    /// The file is a directory, FIFO, socket or device node: sysfs attributes are regular files.
    NotRegular,
    /// The file has other names: it may be a hard link to a file outside the root.
    HardLinked { links: u64 },
    /// The file opened has no name any more: something was renamed over it (or removed it) between
    /// the open and the check, which is what swapping in a symlink looks like.
    Replaced,
    /// A component is on another filesystem than the root (a mount beneath it).
    OtherFilesystem,
    /// More than [`MAX_LINKS`] symlinks.
    TooManyLinks,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::OutsideRoot { link } => write!(f, "a symlink to {link:?} leads outside the sysfs root"),
            Refusal::Symlink => {
                write!(f, "a path component is a symlink (or not a directory); writes follow no symlink")
            }
            Refusal::NotRegular => write!(f, "not a regular file"),
            Refusal::HardLinked { links } => write!(f, "the file has {links} hard links"),
            Refusal::Replaced => {
                write!(f, "the file was replaced while it was opened (renamed over, as in a symlink swap)")
            }
            Refusal::OtherFilesystem => write!(f, "a path component is on another filesystem than the sysfs root"),
            Refusal::TooManyLinks => write!(f, "more than {MAX_LINKS} symlinks"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("{}: refusing to touch it: {why}", path.display())]
    Refused { path: PathBuf, why: Refusal },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{path:?}: not a path relative to the sysfs root ({why})")]
    BadPath { path: String, why: &'static str },
}

/// A file beneath the sysfs root, relative to it, with no symlink, empty, `.` or `..` component: the only
/// kind of path the actions layer opens.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Target(String);

impl Target {
    /// Checks the form of a path read from disk (the originals file). Whether it is a file the config
    /// may write is the caller's question.
    pub fn parse(s: &str) -> Result<Target, BeneathError> {
        let bad = |why| BeneathError::BadPath { path: s.chars().take(200).collect(), why };
        if s.is_empty() || s.len() > MAX_PATH {
            return Err(bad("empty or too long"));
        }
        if s.starts_with('/') {
            return Err(bad("absolute"));
        }
        if s.bytes().any(|b| b == 0 || b.is_ascii_control()) {
            return Err(bad("control characters"));
        }
        if s.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(bad("empty, . or .. component"));
        }
        Ok(Target(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl TryFrom<String> for Target {
    type Error = BeneathError;
    fn try_from(s: String) -> Result<Target, BeneathError> {
        Target::parse(&s)
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        t.0
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How targets are opened without following symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV` (Linux 5.6+).
    Openat2,
    /// `openat(O_NOFOLLOW)` one component at a time, each checked to be a directory on the root's
    /// filesystem.
    Walk,
}

/// What an open is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Write and read back through the same descriptor.
    ReadWrite,
    /// Write-only attributes (reset, remove, unbind): nothing to read back.
    Write,
}

impl Access {
    fn flags(self) -> libc::c_int {
        match self {
            Access::Read => libc::O_RDONLY,
            Access::ReadWrite => libc::O_RDWR,
            Access::Write => libc::O_WRONLY,
        }
    }
}

/// The sysfs root, held open: every target is opened relative to this descriptor.
#[derive(Debug)]
pub struct SysfsRoot {
    path: PathBuf,
    dir: OwnedFd,
    dev: u64,
    mechanism: Mechanism,
}

fn c_name(name: &str) -> Result<CString, io::Error> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: `st` is plain old data the kernel fills in; `fd` is a descriptor we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

fn openat(dir: RawFd, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let name = c_name(name)?;
    // SAFETY: a plain syscall on a NUL-terminated name; the returned descriptor is owned from here on.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOCTTY, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat2(dir: RawFd, path: &str, flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    let path = c_name(path)?;
    // SAFETY: open_how is plain old data; zeroed is its valid "no options" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    // openat2 refuses flags that mean nothing with O_PATH (O_NOCTTY among them) where openat ignores them.
    let extra = if flags & libc::O_PATH != 0 { libc::O_CLOEXEC } else { libc::O_CLOEXEC | libc::O_NOCTTY };
    how.flags = (flags | extra) as u64;
    how.resolve = resolve;
    // SAFETY: the kernel reads `size_of::<open_how>()` bytes from `how` and the NUL-terminated path.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat2 and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn readlinkat(dir: RawFd, name: &str) -> io::Result<Vec<u8>> {
    let name = c_name(name)?;
    let mut buf = vec![0u8; MAX_PATH];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

const RESOLVE_STRICT: u64 =
    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV;

impl SysfsRoot {
    /// Opens the root (the operator's configured path, followed as given) and picks the mechanism.
    pub fn open(path: &Path) -> Result<SysfsRoot, BeneathError> {
        let probe = |dir: RawFd| match openat2(dir, ".", libc::O_PATH | libc::O_DIRECTORY, RESOLVE_STRICT) {
            Ok(_) => Mechanism::Openat2,
            Err(e) => {
                tracing::info!("openat2 is not usable here ({e}); writes open each path component with O_NOFOLLOW");
                Mechanism::Walk
            }
        };
        SysfsRoot::open_inner(path, probe)
    }

    /// Opens the root with a given mechanism (tests prove both).
    pub fn open_with(path: &Path, mechanism: Mechanism) -> Result<SysfsRoot, BeneathError> {
        SysfsRoot::open_inner(path, |_| mechanism)
    }

    fn open_inner(path: &Path, mechanism: impl FnOnce(RawFd) -> Mechanism) -> Result<SysfsRoot, BeneathError> {
        let io = |source| BeneathError::Io { path: path.to_owned(), source };
        let c =
            CString::new(path.as_os_str().as_bytes()).map_err(|_| io(io::Error::from_raw_os_error(libc::EINVAL)))?;
        // SAFETY: a plain open of a NUL-terminated path; the descriptor is owned from here on.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io(io::Error::last_os_error()));
        }
        // SAFETY: just opened, owned by nobody else.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        let dev = fstat(dir.as_raw_fd()).map_err(io)?.st_dev;
        let mechanism = mechanism(dir.as_raw_fd());
        Ok(SysfsRoot { path: path.to_owned(), dir, dev, mechanism })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The full path of a target, for messages.
    pub fn display(&self, target: &Target) -> PathBuf {
        self.path.join(target.as_str())
    }

    /// Resolves `rel` (as the config names it) to its canonical target. Symlinks in the directory part
    /// are followed while they stay beneath the root; the last component is taken as it is (sysfs
    /// attributes are never symlinks, and the open that writes it refuses one).
    pub fn resolve(&self, rel: &str) -> Result<Target, BeneathError> {
        let joined = self.path.join(rel);
        let refused = |why| BeneathError::Refused { path: joined.clone(), why };
        let io = |source| BeneathError::Io { path: joined.clone(), source };
        let mut pending: Vec<String> =
            rel.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_owned).collect();
        let last = pending.pop().filter(|c| c != "..").ok_or_else(|| BeneathError::BadPath {
            path: rel.chars().take(200).collect(),
            why: "does not name a file",
        })?;
        // Work through `pending` from the back: push in reverse.
        pending.reverse();
        let mut names: Vec<String> = Vec::new();
        let mut dirs: Vec<OwnedFd> = Vec::new();
        let mut links = 0;
        while let Some(c) = pending.pop() {
            let here = dirs.last().map_or(self.dir.as_raw_fd(), AsRawFd::as_raw_fd);
            if c == ".." {
                if names.pop().is_none() {
                    return Err(refused(Refusal::OutsideRoot { link: "..".into() }));
                }
                dirs.pop();
                continue;
            }
            match readlinkat(here, &c) {
                Ok(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(refused(Refusal::TooManyLinks));
                    }
                    let Some(text) = OsStr::from_bytes(&target).to_str() else {
                        let link = OsStr::from_bytes(&target).to_string_lossy().into_owned();
                        return Err(BeneathError::BadPath { path: link, why: "a symlink that is not UTF-8" });
                    };
                    // RESOLVE_BENEATH refuses absolute symlinks too: they would start again above the root.
                    if text.starts_with('/') {
                        return Err(refused(Refusal::OutsideRoot { link: text.to_owned() }));
                    }
                    pending.extend(text.split('/').filter(|c| !c.is_empty() && *c != ".").rev().map(str::to_owned));
                }
                // Not a symlink: it must be a directory on the root's filesystem.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    let fd =
                        openat(here, &c, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW).map_err(|e| {
                            match e.raw_os_error() {
                                Some(libc::ENOTDIR | libc::ELOOP) => refused(Refusal::Symlink),
                                _ => io(e),
                            }
                        })?;
                    let st = fstat(fd.as_raw_fd()).map_err(io)?;
                    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                        return Err(refused(Refusal::Symlink));
                    }
                    if st.st_dev != self.dev {
                        return Err(refused(Refusal::OtherFilesystem));
                    }
                    names.push(c);
                    dirs.push(fd);
                }
                Err(e) => return Err(io(e)),
            }
        }
        names.push(last);
        Target::parse(&names.join("/"))
    }

    /// Opens a target without following any symlink, and checks what was opened: a regular file with a
    /// single link on the root's filesystem. Opening has no effect on such a file (no O_TRUNC, no
    /// O_CREAT); a FIFO or device swapped in is refused without blocking (O_NONBLOCK).
    pub fn open_target(&self, target: &Target, access: Access) -> Result<File, BeneathError> {
        let path = self.display(target);
        let flags = access.flags() | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let opened = match self.mechanism {
            Mechanism::Openat2 => openat2(self.dir.as_raw_fd(), target.as_str(), flags, RESOLVE_STRICT),
            Mechanism::Walk => self.walk(target, flags),
        };
        let fd = opened.map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => BeneathError::Refused { path: path.clone(), why: Refusal::Symlink },
            Some(libc::EXDEV) => BeneathError::Refused { path: path.clone(), why: Refusal::OtherFilesystem },
            _ => BeneathError::Io { path: path.clone(), source: e },
        })?;
        let st = fstat(fd.as_raw_fd()).map_err(|source| BeneathError::Io { path: path.clone(), source })?;
        let why = if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            Some(Refusal::NotRegular)
        } else if st.st_nlink == 0 {
            Some(Refusal::Replaced)
        } else if st.st_nlink != 1 {
            Some(Refusal::HardLinked { links: st.st_nlink })
        } else if st.st_dev != self.dev {
            Some(Refusal::OtherFilesystem)
        } else {
            None
        };
        match why {
            Some(why) => Err(BeneathError::Refused { path, why }),
            None => Ok(File::from(fd)),
        }
    }

    /// The fallback: each directory opened with O_NOFOLLOW relative to the last, checked to be a
    /// directory on the root's filesystem, the file itself opened with O_NOFOLLOW.
    fn walk(&self, target: &Target, flags: libc::c_int) -> io::Result<OwnedFd> {
        let mut components: Vec<&str> = target.components().collect();
        let last = components.pop().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let mut dir: Option<OwnedFd> = None;
        for c in components {
            let here = dir.as_ref().map_or(self.dir.as_raw_fd(), AsRawFd::as_raw_fd);
            let next = openat(here, c, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)?;
            let st = fstat(next.as_raw_fd())?;
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            if st.st_dev != self.dev {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
            dir = Some(next);
        }
        openat(dir.as_ref().map_or(self.dir.as_raw_fd(), AsRawFd::as_raw_fd), last, flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::actions::write::{read_value, write_once, write_verified};
    use std::os::unix::fs::symlink;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    const BOTH: [Mechanism; 2] = [Mechanism::Openat2, Mechanism::Walk];

    /// A sysfs-like tree: a real device directory, a class link to it, and a victim file outside.
    struct Tree {
        root: tempfile::TempDir,
        outside: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Tree {
            let root = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            let dev = root.path().join("devices/virtual/thermal/cooling_device0");
            std::fs::create_dir_all(&dev).unwrap();
            std::fs::write(dev.join("cur_state"), "0\n").unwrap();
            std::fs::create_dir_all(root.path().join("class/thermal")).unwrap();
            symlink("../../devices/virtual/thermal/cooling_device0", root.path().join("class/thermal/cooling_device0"))
                .unwrap();
            std::fs::write(outside.path().join("cur_state"), "victim\n").unwrap();
            Tree { root, outside }
        }

        fn victim(&self) -> String {
            std::fs::read_to_string(self.outside.path().join("cur_state")).unwrap()
        }

        fn dev(&self) -> PathBuf {
            self.root.path().join("devices/virtual/thermal/cooling_device0")
        }
    }

    #[test]
    fn targets_follow_links_beneath_the_root_and_no_further() {
        let tree = Tree::new();
        let root = SysfsRoot::open(tree.root.path()).unwrap();
        assert_eq!(root.mechanism(), Mechanism::Openat2, "this kernel has openat2");
        let t = root.resolve("class/thermal/cooling_device0/cur_state").unwrap();
        assert_eq!(t.as_str(), "devices/virtual/thermal/cooling_device0/cur_state");
        assert_eq!(root.resolve("class/thermal/../thermal/./cooling_device0/cur_state").unwrap(), t);

        // Out through an absolute link, or through `..` above the root: refused, whatever lies there.
        symlink(tree.outside.path(), tree.root.path().join("class/thermal/cooling_device1")).unwrap();
        symlink("../../..", tree.root.path().join("class/thermal/up")).unwrap();
        for rel in ["class/thermal/cooling_device1/cur_state", "class/thermal/up/cur_state", "../x/cur_state"] {
            let e = root.resolve(rel).unwrap_err();
            assert!(matches!(e, BeneathError::Refused { why: Refusal::OutsideRoot { .. }, .. }), "{rel}: {e}");
            assert!(e.to_string().contains("outside the sysfs root"), "{e}");
        }
        // A loop of links ends.
        symlink("loop_b", tree.root.path().join("class/thermal/loop_a")).unwrap();
        symlink("loop_a", tree.root.path().join("class/thermal/loop_b")).unwrap();
        let e = root.resolve("class/thermal/loop_a/cur_state").unwrap_err();
        assert!(matches!(e, BeneathError::Refused { why: Refusal::TooManyLinks, .. }), "{e}");
    }

    #[test]
    fn a_symlink_swapped_in_anywhere_after_resolution_is_refused_by_both_mechanisms() {
        for mechanism in BOTH {
            let tree = Tree::new();
            let root = SysfsRoot::open_with(tree.root.path(), mechanism).unwrap();
            let t = root.resolve("class/thermal/cooling_device0/cur_state").unwrap();
            write_verified(&root, &t, "1").unwrap();

            // The file itself becomes a symlink to the victim.
            let file = tree.dev().join("cur_state");
            std::fs::remove_file(&file).unwrap();
            symlink(tree.outside.path().join("cur_state"), &file).unwrap();
            let e = write_verified(&root, &t, "2").unwrap_err();
            assert!(e.to_string().contains("symlink"), "{mechanism:?}: {e}");
            assert!(read_value(&root, &t).is_err(), "reads are confined too");
            assert_eq!(tree.victim(), "victim\n", "{mechanism:?}");

            // A directory on the way becomes a symlink to the victim's directory.
            std::fs::remove_file(&file).unwrap();
            let moved = tree.root.path().join("devices/virtual/thermal/moved");
            std::fs::rename(tree.dev(), &moved).unwrap();
            symlink(tree.outside.path(), tree.dev()).unwrap();
            let e = write_once(&root, &t, "3").unwrap_err();
            assert!(e.to_string().contains("symlink"), "{mechanism:?}: {e}");
            assert_eq!(tree.victim(), "victim\n", "{mechanism:?}");
        }
    }

    #[test]
    fn fifos_hard_links_and_directories_are_refused_without_blocking() {
        for mechanism in BOTH {
            let tree = Tree::new();
            let root = SysfsRoot::open_with(tree.root.path(), mechanism).unwrap();
            let t = root.resolve("class/thermal/cooling_device0/cur_state").unwrap();
            let file = tree.dev().join("cur_state");

            std::fs::remove_file(&file).unwrap();
            std::fs::hard_link(tree.outside.path().join("cur_state"), &file).unwrap();
            let e = write_verified(&root, &t, "2").unwrap_err();
            assert!(e.to_string().contains("hard links"), "{mechanism:?}: {e}");
            assert_eq!(tree.victim(), "victim\n");

            std::fs::remove_file(&file).unwrap();
            nix::unistd::mkfifo(&file, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            let started = Instant::now();
            assert!(write_verified(&root, &t, "2").is_err(), "{mechanism:?}");
            assert!(read_value(&root, &t).is_err(), "{mechanism:?}");
            assert!(started.elapsed() < Duration::from_secs(2), "a FIFO does not block");

            std::fs::remove_file(&file).unwrap();
            std::fs::create_dir(&file).unwrap();
            let e = write_verified(&root, &t, "2").unwrap_err();
            assert!(matches!(&e, crate::effects::actions::write::WriteError::Beneath(_)), "{mechanism:?}: {e}");
        }
    }

    /// The check-then-write race: a thread flips the target between a regular file and a symlink to a
    /// victim outside the root (atomic renames) while writes go on, for a bounded time. Some writes land,
    /// some are refused; the victim is never written.
    #[test]
    fn a_file_flipping_to_a_symlink_during_writes_never_lets_one_out() {
        for mechanism in BOTH {
            let tree = Tree::new();
            let root = SysfsRoot::open_with(tree.root.path(), mechanism).unwrap();
            let t = root.resolve("class/thermal/cooling_device0/cur_state").unwrap();
            let dev = tree.dev();
            let stop = Arc::new(AtomicBool::new(false));
            let flipper = {
                let stop = Arc::clone(&stop);
                let victim = tree.outside.path().join("cur_state");
                std::thread::spawn(move || {
                    let (file, regular, link) = (dev.join("cur_state"), dev.join(".regular"), dev.join(".link"));
                    let mut flips = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // A symlink to the victim, then a fresh regular file, each renamed over atomically.
                        let _ = symlink(&victim, &link);
                        let _ = std::fs::rename(&link, &file);
                        std::thread::yield_now();
                        let _ = std::fs::write(&regular, "0\n");
                        let _ = std::fs::rename(&regular, &file);
                        flips += 1;
                    }
                    flips
                })
            };
            let (mut ok, mut refused) = (0u64, 0u64);
            let started = Instant::now();
            // Long enough to hit both sides of the race on a busy machine, bounded either way.
            while started.elapsed() < Duration::from_secs(10)
                && (started.elapsed() < Duration::from_millis(500) || ok == 0 || refused == 0)
            {
                match write_verified(&root, &t, "1") {
                    Ok(()) => ok += 1,
                    Err(_) => refused += 1,
                }
            }
            stop.store(true, Ordering::Relaxed);
            let flips = flipper.join().unwrap();
            assert_eq!(tree.victim(), "victim\n", "{mechanism:?}: the victim was written");
            assert!(
                ok > 0 && refused > 0,
                "{mechanism:?}: both sides of the race were hit ({ok} written, {refused} refused, {flips} flips)"
            );
        }
    }

    #[test]
    fn a_mount_beneath_the_root_is_not_crossed() {
        // With `/` as the root, /proc is a mount beneath it (procfs is never the root's filesystem). Only
        // opened for reading here, so a regression cannot write anything.
        for mechanism in BOTH {
            let root = SysfsRoot::open_with(Path::new("/"), mechanism).unwrap();
            let e = root.resolve("proc/self/status").unwrap_err();
            assert!(e.to_string().contains("another filesystem"), "{mechanism:?}: {e}");
            let t = Target::parse("proc/version").unwrap();
            let e = root.open_target(&t, Access::Read).unwrap_err();
            assert!(e.to_string().contains("another filesystem"), "{mechanism:?}: {e}");
        }
    }

    #[test]
    fn targets_read_from_disk_must_be_plain_relative_paths() {
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/\n", "a/\0b"] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Target::parse("devices/x/cur_state").unwrap().as_str(), "devices/x/cur_state");
    }
}
