//! Secrets out of anything the agent shows: events, API replies, the daemon log and the incident bundle.
//! One set of rules for every place, applied to argv arrays, free text and whole configs:
//!
//! | form | example | becomes |
//! | --- | --- | --- |
//! | secret-looking flag, value after it | `--token X`, `--bearer X`, `--api-key X`, `--password X`, `-p X` | `--token <redacted>` |
//! | secret-looking flag with `=` | `--token=X`, `--password=X` | `--token=<redacted>` |
//! | `KEY=VALUE` with a secret-looking key | `API_KEY=X`, `db_password=X` | `API_KEY=<redacted>` |
//! | secret header | `X-Auth-Token: X`, `X-API-Key:X`, `Cookie: X` | `X-Auth-Token: <redacted>` |
//! | authorization header | `Authorization: Bearer X`, `Authorization: X` | `Authorization: Bearer <redacted>` |
//! | URL user info | `https://ops:X@host/` | `https://ops:<redacted>@host/` |
//! | config key with a secret-looking name | `secret_key = "X"` | `secret_key = "<redacted>"` |
//!
//! A word is what lies between whitespace; quotes, commas and brackets around it stay, so a JSON log line
//! stays JSON. `-p` is taken as a password flag (mysql, sshpass, many vendor tools): a port written `-p 22`
//! is redacted too, which loses nothing that matters.

pub const REDACTED: &str = "<redacted>";

/// Names that mark a flag or `KEY=` as holding a secret.
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["pass", "secret", "token", "apikey", "api_key", "api-key", "credential", "auth", "private", "bearer", "cookie"]
        .iter()
        .any(|w| n.contains(w))
}

/// A flag whose next argument is a secret: `--token`, `--bearer`, `-p`, ...
fn secret_flag(word: &str) -> bool {
    word == "-p" || (word.starts_with('-') && !word.contains('=') && word.len() > 2 && secret_name(word))
}

/// A header name whose value is a secret (narrower than [`secret_name`]: "authorised:" in prose is none).
fn secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !n.is_empty()
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && (matches!(n.as_str(), "authorization" | "proxy-authorization" | "cookie" | "set-cookie")
            || ["token", "api-key", "apikey", "api_key", "secret", "password"].iter().any(|w| n.contains(w)))
}

/// Splits a word into (leading punctuation, core, trailing punctuation): quotes, brackets and commas
/// around a word are not part of it.
fn core(word: &str) -> (&str, &str, &str) {
    let lead = word.len() - word.trim_start_matches(['"', '\'', '(', '[', '{', '`']).len();
    let rest = &word[lead..];
    let core = rest.trim_end_matches(['"', '\'', ')', ']', '}', ',', ';', '`', '\\']);
    (&word[..lead], core, &rest[core.len()..])
}

/// Characters that end a secret inside a word: what follows is structure (a JSON string's end, a list).
const STOP: [char; 9] = ['"', '\'', ',', ';', ')', ']', '}', '`', '\\'];

/// `value` with its secret part (up to the first [`STOP`] character) replaced.
fn replace_secret(value: &str) -> String {
    let end = value.find(STOP).unwrap_or(value.len());
    format!("{REDACTED}{}", &value[end..])
}

/// What the word after the current one needs.
#[derive(Clone, Copy, PartialEq)]
enum Next {
    Keep,
    /// The value of a secret flag or header.
    Secret,
    /// After `Authorization:`: a scheme (kept) then the credentials, or the credentials alone.
    Scheme,
}

/// One word, given what the word before it asked for; returns the word and what the next one needs.
fn redact_word(word: &str, state: Next) -> (String, Next) {
    let (lead, c, trail) = core(word);
    if c.is_empty() {
        return (word.to_owned(), state);
    }
    match state {
        Next::Secret => return (format!("{lead}{}", replace_secret(&word[lead.len()..])), Next::Keep),
        Next::Scheme
            if ["bearer", "basic", "token", "digest", "negotiate"].contains(&c.to_ascii_lowercase().as_str()) =>
        {
            return (word.to_owned(), Next::Secret);
        }
        Next::Scheme => return (format!("{lead}{}", replace_secret(&word[lead.len()..])), Next::Keep),
        Next::Keep => {}
    }
    // Header name alone ("X-Auth-Token:"), the value follows.
    if let Some(name) = c.strip_suffix(':')
        && secret_header(name)
    {
        let next = if name.to_ascii_lowercase().ends_with("authorization") { Next::Scheme } else { Next::Secret };
        return (word.to_owned(), next);
    }
    if secret_flag(c) {
        return (word.to_owned(), Next::Secret);
    }
    // URL user info.
    if let Some((scheme, rest)) = c.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && !userinfo.contains('/')
    {
        let user = userinfo.split(':').next().unwrap_or("");
        return (format!("{lead}{scheme}://{user}:{REDACTED}@{host}{trail}"), Next::Keep);
    }
    // --token=X, API_KEY=X.
    if let Some((name, value)) = c.split_once('=')
        && !name.is_empty()
        && secret_name(name)
    {
        return (format!("{lead}{name}={}{trail}", replace_secret(value)), Next::Keep);
    }
    // Header and value in one word: "X-Auth-Token:X".
    if let Some((name, value)) = c.split_once(':')
        && !value.is_empty()
        && !value.starts_with("//")
        && secret_header(name)
    {
        return (format!("{lead}{name}:{}{trail}", replace_secret(value)), Next::Keep);
    }
    (word.to_owned(), Next::Keep)
}

/// Free text (an event message, a log line, a shell script in an argv element) with secrets replaced.
/// Whitespace is kept as it was.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut state = Next::Keep;
    let mut rest = text;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        let (word, next) = redact_word(&rest[..end], state);
        out.push_str(&word);
        state = next;
        rest = &rest[end..];
    }
    out
}

/// An argv with secrets replaced: element by element, the element after a secret flag or header whole.
pub fn redact_argv<S: AsRef<str>>(argv: &[S]) -> Vec<String> {
    let mut state = Next::Keep;
    argv.iter()
        .map(|a| {
            let a = a.as_ref();
            match state {
                Next::Secret => {
                    state = Next::Keep;
                    REDACTED.to_owned()
                }
                _ if !a.contains(char::is_whitespace) => {
                    let (word, next) = redact_word(a, state);
                    state = next;
                    word
                }
                // A whole script or a header with its value in one element: word by word.
                _ => {
                    state = Next::Keep;
                    redact_text(a)
                }
            }
        })
        .collect()
}

/// How a command is shown in events and logs: the program's name and its arguments, secrets redacted.
pub fn display_command<S: AsRef<str>>(argv: &[S]) -> String {
    let Some((program, args)) = argv.split_first() else { return String::new() };
    let program = program.as_ref();
    let name = program.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or(program);
    let mut out = name.to_owned();
    for a in redact_argv(args) {
        out.push(' ');
        out.push_str(&a);
    }
    out
}

fn redact_value(key: &str, v: &mut toml::Value) {
    match v {
        toml::Value::String(s) if secret_name(key) => *s = REDACTED.to_owned(),
        toml::Value::String(s) => *s = redact_text(s),
        toml::Value::Array(items) if items.iter().all(|i| i.is_str()) && !secret_name(key) => {
            let argv: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
            *items = redact_argv(&argv).into_iter().map(toml::Value::String).collect();
        }
        toml::Value::Array(items) => items.iter_mut().for_each(|i| redact_value(key, i)),
        toml::Value::Table(t) => redact_table(t),
        _ => {}
    }
}

/// A parsed config with secrets replaced, in place.
pub fn redact_table(t: &mut toml::Table) {
    for (k, v) in t.iter_mut() {
        redact_value(k, v);
    }
}

/// The config text with secrets replaced; comments are lost (the file is re-serialised).
pub fn redact_config(text: &str) -> Result<String, RedactError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| RedactError::Parse {
        // toml's own message quotes the line, which may hold a secret: only its number and the reason.
        line: e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
        reason: e.message().to_owned(),
    })?;
    redact_table(&mut table);
    Ok(toml::to_string_pretty(&table)?)
}

/// Why a config's text could not be redacted: it did not parse, or would not serialise again. Neither
/// message quotes the text.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("not valid TOML{}: {reason}", line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Parse { line: Option<usize>, reason: String },
    #[error("cannot write it again as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form the module documents, as text and as argv.
    #[test]
    fn every_form_is_covered() {
        let cases = [
            ("vendor --token s3cr3t status", "vendor --token <redacted> status"),
            ("vendor --token=s3cr3t status", "vendor --token=<redacted> status"),
            ("vendor --bearer s3cr3t", "vendor --bearer <redacted>"),
            ("vendor --api-key s3cr3t", "vendor --api-key <redacted>"),
            ("mysql -u ops -p s3cr3t", "mysql -u ops -p <redacted>"),
            ("vendor --password s3cr3t", "vendor --password <redacted>"),
            ("vendor --password=s3cr3t", "vendor --password=<redacted>"),
            ("curl -H X-Auth-Token: s3cr3t url", "curl -H X-Auth-Token: <redacted> url"),
            ("curl -H X-Auth-Token:s3cr3t url", "curl -H X-Auth-Token:<redacted> url"),
            ("curl -H Authorization: Bearer s3cr3t url", "curl -H Authorization: Bearer <redacted> url"),
            ("curl -H Authorization: s3cr3t url", "curl -H Authorization: <redacted> url"),
            ("API_KEY=s3cr3t vendor", "API_KEY=<redacted> vendor"),
            ("env DB_PASSWORD=s3cr3t x", "env DB_PASSWORD=<redacted> x"),
            ("https://ops:s3cr3t@hooks.example/x", "https://ops:<redacted>@hooks.example/x"),
        ];
        for (given, want) in cases {
            assert_eq!(redact_text(given), want, "text: {given}");
            let argv: Vec<&str> = given.split(' ').collect();
            assert_eq!(redact_argv(&argv).join(" "), want, "argv: {given}");
        }
    }

    #[test]
    fn punctuation_around_a_secret_stays_so_json_stays_json() {
        let line = r#"{"message":"hook ran: curl --token s3cr3t","level":"INFO"}"#;
        assert_eq!(redact_text(line), r#"{"message":"hook ran: curl --token <redacted>","level":"INFO"}"#);
        let line = r#"{"message":"ran vendor --bearer s3cr3t"}"#;
        assert_eq!(redact_text(line), r#"{"message":"ran vendor --bearer <redacted>"}"#);
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "not authorised: changes need root or membership of the group accel-agent",
            "config reloaded: 2 device(s) declared",
            "throttle held at level 2 of 3 for 30m",
            "curl -H Content-Type: application/json https://hooks.example/x",
            "photon-cli status --device ph0 --timeout 5",
        ] {
            assert_eq!(redact_text(text), text);
        }
    }

    #[test]
    fn an_argv_element_holding_a_header_or_a_script_is_redacted_inside() {
        let argv = ["curl", "-H", "X-Auth-Token: s3cr3t", "-H", "Authorization: Bearer s3cr3t", "https://x/"];
        assert_eq!(
            redact_argv(&argv),
            ["curl", "-H", "X-Auth-Token: <redacted>", "-H", "Authorization: Bearer <redacted>", "https://x/"]
        );
        let argv = ["/bin/sh", "-c", "vendor --api-key s3cr3t --secret=s3cr3t status"];
        assert_eq!(display_command(&argv), "sh -c vendor --api-key <redacted> --secret=<redacted> status");
    }

    #[test]
    fn commands_show_the_program_name_and_redacted_arguments() {
        assert_eq!(
            display_command(&["/opt/vendor/bin/photon-debug", "--reconnect-device", "ph0", "--bearer", "s3cr3t"]),
            "photon-debug --reconnect-device ph0 --bearer <redacted>"
        );
        assert_eq!(display_command::<&str>(&[]), "");
    }

    #[test]
    fn a_config_loses_its_secrets_and_keeps_everything_else() {
        let text = r#"
listen = "0.0.0.0:9860"
[[device]]
id = "ph0"
kind = "photonic"
[[device.probe]]
name = "status"
command = ["photon-cli", "status", "--token", "s3cr3t-1", "--password=s3cr3t-2", "API_KEY=s3cr3t-3", "--device", "ph0"]
[[device.probe]]
name = "script"
command = ["/bin/sh", "-c", "vendor --api-key s3cr3t-7 --secret=s3cr3t-8 status"]
[[device.probe]]
name = "db"
command = ["mysql", "-p", "s3cr3t-9", "-H", "X-Auth-Token: s3cr3t-10", "--bearer", "s3cr3t-11"]
[actions]
[[actions.hook]]
on = ["unhealthy"]
command = ["curl", "-H", "Authorization: Bearer s3cr3t-4", "https://ops:s3cr3t-5@hooks.example/x"]
[device.extra]
secret_key = "s3cr3t-6"
"#;
        let out = redact_config(text).unwrap();
        for n in 1..=11 {
            assert!(!out.contains(&format!("s3cr3t-{n}\"")), "secret {n} leaked:\n{out}");
        }
        for kept in ["photon-cli", "--device", "\"ph0\"", "hooks.example/x", "https://ops:", "0.0.0.0:9860", "--token"]
        {
            assert!(out.contains(kept), "{kept} lost:\n{out}");
        }
    }

    #[test]
    fn a_file_that_does_not_parse_is_refused_without_quoting_it() {
        let e = redact_config("a = 1\ntoken = \"s3cr3t\nb = 2\n").unwrap_err().to_string();
        assert!(e.starts_with("not valid TOML at line 2: "), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
