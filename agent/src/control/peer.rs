//! Who is on the other end of the control socket, and whether they may change things.
//!
//! The kernel vouches for the peer: SO_PEERCRED gives the uid, gid and pid it had when it connected, and
//! SO_PEERGROUPS its supplementary groups (someone added to the control group with `usermod -aG` has it
//! only there, not as their primary gid).

use std::os::fd::AsRawFd;

/// The credentials of a connected client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    pub groups: Vec<u32>,
}

impl Peer {
    pub fn of(stream: &tokio::net::UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        Ok(Peer { uid: cred.uid(), gid: cred.gid(), pid: cred.pid(), groups: peer_groups(stream.as_raw_fd()) })
    }

    /// For the journal: "uid 1000, pid 4242".
    pub fn describe(&self) -> String {
        match self.pid {
            Some(pid) => format!("uid {}, pid {pid}", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// SO_PEERGROUPS is 59 in the generic Linux ABI (x86_64, aarch64, riscv); the libc crate does not export
/// it for every target.
const SO_PEERGROUPS: libc::c_int = 59;

/// The peer's supplementary groups; empty if the kernel predates SO_PEERGROUPS (4.13).
fn peer_groups(fd: libc::c_int) -> Vec<u32> {
    let mut groups = vec![0 as libc::gid_t; 64];
    for _ in 0..2 {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the buffer is valid for `len` bytes and the kernel writes at most that many.
        let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, SO_PEERGROUPS, groups.as_mut_ptr().cast(), &mut len) };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return groups;
        }
        // ERANGE: the kernel said how much room it needs; try once more with that.
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) || n <= groups.len() {
            break;
        }
        groups.resize(n, 0);
    }
    Vec::new()
}

/// The control group, resolved once at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorizer {
    /// As configured: a name or a numeric gid.
    pub group: String,
    /// None when the group does not exist on this host: then only root may mutate.
    pub gid: Option<u32>,
}

impl Authorizer {
    /// Looks the group up (a number is taken as a gid as is).
    pub fn resolve(group: &str) -> Authorizer {
        let gid = match group.parse::<u32>() {
            Ok(gid) => Some(gid),
            Err(_) => nix::unistd::Group::from_name(group).ok().flatten().map(|g| g.gid.as_raw()),
        };
        Authorizer { group: group.to_owned(), gid }
    }

    /// Root, or a member of the control group (primary or supplementary).
    pub fn allows(&self, peer: &Peer) -> bool {
        peer.uid == 0 || self.gid.is_some_and(|gid| peer.gid == gid || peer.groups.contains(&gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer { uid, gid, pid: Some(1), groups: groups.to_vec() }
    }

    #[test]
    fn root_and_members_of_the_control_group_only() {
        let auth = Authorizer { group: "accel-agent".into(), gid: Some(990) };
        assert!(auth.allows(&peer(0, 0, &[])));
        assert!(auth.allows(&peer(1000, 990, &[])), "primary group");
        assert!(auth.allows(&peer(1000, 1000, &[4, 990])), "supplementary group");
        assert!(!auth.allows(&peer(1000, 1000, &[4, 24])));
        let missing = Authorizer { group: "nosuchgroup".into(), gid: None };
        assert!(missing.allows(&peer(0, 0, &[])));
        assert!(!missing.allows(&peer(1000, 1000, &[])));
        assert_eq!(Authorizer::resolve("4242").gid, Some(4242));
        assert_eq!(Authorizer::resolve("root").gid, Some(0));
        assert_eq!(Authorizer::resolve("no-such-group-here").gid, None);
    }

    #[tokio::test]
    async fn reads_the_credentials_of_a_real_peer() {
        let (a, _b) = tokio::net::UnixStream::pair().unwrap();
        let p = Peer::of(&a).unwrap();
        assert_eq!(p.uid, nix::unistd::getuid().as_raw());
        assert_eq!(p.gid, nix::unistd::getgid().as_raw());
        assert_eq!(p.pid, Some(std::process::id() as i32));
    }
}
