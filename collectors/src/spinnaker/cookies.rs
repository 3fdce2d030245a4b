//! The cookies of one spalloc REST session, as SpiNNMan's `requests.Session` keeps them: every
//! `Set-Cookie` a reply carries replaces the cookie of that name, and every request sends them all.
//! One service, one path, HTTPS only: domains, paths, expiry and `Secure` need no handling here (a
//! lapsed session is a 401, which logs in again with an empty jar).

use crate::http::Reply;

/// The cookie that carries the session (Spring's, which JavaSpiNNaker uses).
pub const SESSION: &str = "JSESSIONID";

#[derive(Default, Clone)]
pub struct CookieJar {
    cookies: Vec<(String, String)>,
}

/// The values are session secrets: `Debug` names the cookies only.
impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.cookies.iter().map(|(name, _)| name)).finish()
    }
}

impl CookieJar {
    /// Keeps the `name=value` of every `Set-Cookie` in `reply`; the attributes after it are dropped.
    pub fn store(&mut self, reply: &Reply) {
        for set in reply.header_values("set-cookie") {
            let pair = set.split(';').next().unwrap_or("").trim();
            let Some((name, value)) = pair.split_once('=') else { continue };
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            self.cookies.retain(|(n, _)| n != name);
            self.cookies.push((name.to_owned(), value.trim().to_owned()));
        }
    }

    /// The value of the cookie `name`, if one was set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The `Cookie` header's value, or None while the jar is empty.
    pub fn header(&self) -> Option<String> {
        (!self.cookies.is_empty())
            .then(|| self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; "))
    }

    pub fn clear(&mut self) {
        self.cookies.clear();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hyper::StatusCode;
    use hyper::header::{HeaderMap, HeaderValue, SET_COOKIE};

    use super::*;

    fn reply(set: &[&'static str]) -> Reply {
        let mut headers = HeaderMap::new();
        for s in set {
            headers.append(SET_COOKIE, HeaderValue::from_static(s));
        }
        Reply { status: StatusCode::OK, headers, body: Bytes::new() }
    }

    #[test]
    fn a_new_cookie_replaces_the_old_one_of_its_name_and_all_are_sent() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.header(), None);
        jar.store(&reply(&["JSESSIONID=anon1; Path=/spalloc; Secure; HttpOnly", "XSRF=x1"]));
        jar.store(&reply(&["JSESSIONID=logged-in2; Path=/spalloc", "=nameless", "no-equals"]));
        assert_eq!(jar.get(SESSION), Some("logged-in2"));
        assert_eq!(jar.header().as_deref(), Some("XSRF=x1; JSESSIONID=logged-in2"));
        assert!(!format!("{jar:?}").contains("logged-in2"), "{jar:?}");
        jar.clear();
        assert_eq!(jar.header(), None);
    }
}
