//! `basic_auth_users`: HTTP basic auth against bcrypt hashes.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10), so it runs on the blocking pool, a few at
//! a time, and a successful check is remembered: a scraper every 15 s pays for bcrypt once, not at every
//! scrape. Logins waiting for bcrypt are bounded in all and per client address; past the bound a login
//! is answered at once (429) rather than queued behind a flood of wrong passwords. The memory holds SHA-256 digests of user, password and hash, never a password.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use hyper::header::HeaderValue;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::WebConfigError;

/// How many distinct successful logins are remembered. One per user is the normal case; bcrypt ignores
/// password bytes past the 72nd, so someone who knows a password could vary its tail to add entries,
/// and the bound keeps that from growing memory.
const CACHE_ENTRIES: usize = 256;

pub struct BasicAuth {
    /// User name to bcrypt hash.
    users: HashMap<String, String>,
    /// A well-formed hash that no password matches, at the highest cost in `users`: an unknown user is
    /// checked against it so that it costs as much as a wrong password.
    dummy: String,
    cache: Mutex<AuthCache>,
    /// Bounds the CPU that failed logins can take: a flood of wrong passwords waits here, while
    /// scrapers whose credentials are cached never do.
    verifying: Arc<Semaphore>,
    /// One bcrypt at a time per client address, taken before `verifying`: a client sending a hundred
    /// wrong passwords at once queues behind itself, so another client's first login waits for at most
    /// one of its checks, not for all hundred. The queue is bounded (see [`Pending`]).
    pending: Mutex<Pending>,
}

/// Logins waiting for or running bcrypt, bounded in all and per client address: past a bound a login is
/// answered [`Verdict::Busy`] at once instead of holding its connection in a queue that a flood makes
/// longer than any client waits.
#[derive(Default)]
struct Pending {
    total: usize,
    lanes: HashMap<IpAddr, Lane>,
}

struct Lane {
    /// One bcrypt at a time for this address.
    turn: Arc<Semaphore>,
    /// Logins of this address waiting or running.
    pending: usize,
}

/// Logins one client address may have waiting or running: one checked, one next.
pub const MAX_PENDING_PER_CLIENT: usize = 2;
/// Logins all clients together may have waiting or running.
pub const MAX_PENDING: usize = 64;

/// What a login comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No credentials, or wrong ones: 401.
    Denied,
    /// Too many logins already waiting for bcrypt (from this address, or from all): 429.
    Busy,
}

/// A place in the bcrypt queue, given back when the login is decided or abandoned (its connection shed
/// or closed).
struct Place<'a> {
    auth: &'a BasicAuth,
    client: IpAddr,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut p = self.auth.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.total = p.total.saturating_sub(1);
        if let Some(lane) = p.lanes.get_mut(&self.client) {
            lane.pending = lane.pending.saturating_sub(1);
            // The lane goes once nobody holds or waits for it: the map stays as small as the set of
            // clients checking right now.
            if lane.pending == 0 {
                p.lanes.remove(&self.client);
            }
        }
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth").field("users", &self.users.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Validates every hash (a typo'd hash would otherwise lock its user out silently).
    pub(super) fn new(path: &Path, users: BTreeMap<String, String>) -> Result<BasicAuth, WebConfigError> {
        let mut max_cost = 0;
        for (user, hash) in &users {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                return Err(WebConfigError::invalid(
                    path,
                    key,
                    "a user name cannot contain ':' (basic auth splits user and password at the first one)",
                ));
            }
            let parts: bcrypt::HashParts = hash.parse().map_err(|e| {
                WebConfigError::invalid(
                    path,
                    &key,
                    format!("not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters; e.g. from `htpasswd -nBC 10 {user}`): {e}"),
                )
            })?;
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(WebConfigError::invalid(path, key, format!("bcrypt cost {cost} is outside 4..=31")));
            }
            max_cost = max_cost.max(cost);
        }
        let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Ok(BasicAuth {
            dummy: dummy_hash(max_cost),
            users: users.into_iter().collect(),
            cache: Mutex::new(AuthCache::new(CACHE_ENTRIES)),
            // Half the cores: a login flood must leave room for collection and for cached scrapes.
            verifying: Arc::new(Semaphore::new((parallel / 2).max(1))),
            pending: Mutex::new(Pending::default()),
        })
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Whether an `Authorization` header carries the credentials of a configured user; [`Verdict::Busy`]
    /// when the login would have to wait for bcrypt behind too many others. A remembered login never waits.
    pub async fn check(&self, header: Option<&HeaderValue>, client: IpAddr) -> Verdict {
        let Some((user, password)) = header.and_then(|h| parse_basic(h.as_bytes())) else {
            return Verdict::Denied;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (self.dummy.clone(), false),
        };
        let key = cache_key(&user, &password, &hash);
        if self.cached(&key) {
            return if known { Verdict::Allowed } else { Verdict::Denied };
        }
        let Some((_place, turn)) = self.queue(client) else {
            return Verdict::Busy;
        };
        let Ok(_own_turn) = turn.acquire_owned().await else {
            return Verdict::Denied;
        };
        let Ok(permit) = Arc::clone(&self.verifying).acquire_owned().await else {
            return Verdict::Denied;
        };
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // An error means a malformed hash, which `new` has ruled out; it counts as a mismatch.
            bcrypt::verify(&password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = verified && known;
        if ok {
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
            Verdict::Allowed
        } else {
            tracing::debug!(user = %user, known, "basic auth failed");
            Verdict::Denied
        }
    }

    /// A place in the bcrypt queue for `client`, and its address's turn to wait for; `None` past a bound.
    fn queue(&self, client: IpAddr) -> Option<(Place<'_>, Arc<Semaphore>)> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.total >= MAX_PENDING {
            return None;
        }
        let lane = p.lanes.entry(client).or_insert_with(|| Lane { turn: Arc::new(Semaphore::new(1)), pending: 0 });
        if lane.pending >= MAX_PENDING_PER_CLIENT {
            return None;
        }
        lane.pending += 1;
        let turn = Arc::clone(&lane.turn);
        p.total += 1;
        Some((Place { auth: self, client }, turn))
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).contains(key)
    }
}

/// A syntactically valid bcrypt hash (all-zero salt and digest) at `cost` that no password produces in
/// practice; checking against it takes as long as checking against a real hash of that cost.
fn dummy_hash(cost: u32) -> String {
    format!("$2b${:02}${}", cost.max(4), ".".repeat(53))
}

/// `Basic base64(user:password)` to user and password; `None` for anything else.
fn parse_basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// The cache key of a login: SHA-256 over user, hash and password, each length-prefixed so that no two
/// different triples share an encoding. Including the hash means a changed hash never matches an old entry.
pub fn cache_key(user: &str, password: &[u8], hash: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Remembered successful logins, oldest first.
#[derive(Debug)]
pub struct AuthCache {
    entries: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl AuthCache {
    pub fn new(capacity: usize) -> AuthCache {
        AuthCache { entries: VecDeque::with_capacity(capacity.min(64)), capacity: capacity.max(1) }
    }

    /// Compares against every entry in constant time, so the time taken says nothing about how close a
    /// guess came to a remembered digest.
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        let mut found = subtle::Choice::from(0);
        for e in &self.entries {
            found |= e.ct_eq(key);
        }
        found.into()
    }

    pub fn insert(&mut self, key: [u8; 32]) {
        if self.contains(&key) {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(key);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
impl Verdict {
    pub(super) fn is_allowed(self) -> bool {
        self == Verdict::Allowed
    }
}

#[cfg(test)]
impl BasicAuth {
    pub(super) fn cached_logins(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub(super) fn dummy(&self) -> &str {
        &self.dummy
    }
}
