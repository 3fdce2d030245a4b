//! Secrets out of a config before it leaves the host in a bundle: values of secret-looking keys, the
//! password of URLs, and secret arguments of commands (`--token X`, `--password=X`, `API_KEY=X`).

const REDACTED: &str = "<redacted>";

fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["pass", "secret", "token", "apikey", "api_key", "api-key", "credential", "auth", "private"]
        .iter()
        .any(|w| n.contains(w))
}

/// A string word by word, so a shell script inside an argv element is covered too: URL userinfo,
/// `--flag=value`, `NAME=value`, and the word after a secret flag.
fn redact_str(s: &str) -> String {
    if let Some(rest) = s.strip_prefix("Authorization:").or_else(|| s.strip_prefix("authorization:")) {
        let scheme = rest.split_whitespace().next().unwrap_or("");
        return format!("Authorization: {scheme} {REDACTED}");
    }
    if !s.contains(char::is_whitespace) {
        return redact_word(s);
    }
    let mut after_flag = false;
    let words: Vec<String> = s
        .split_whitespace()
        .map(|w| {
            let out = if after_flag { REDACTED.to_owned() } else { redact_word(w) };
            after_flag = w.starts_with('-') && !w.contains('=') && secret_name(w);
            out
        })
        .collect();
    words.join(" ")
}

fn redact_word(s: &str) -> String {
    if let Some((scheme, rest)) = s.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && !userinfo.contains('/')
    {
        let user = userinfo.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}:{REDACTED}@{host}");
    }
    if let Some((name, _)) = s.split_once('=')
        && secret_name(name)
        && !name.contains(' ')
    {
        return format!("{name}={REDACTED}");
    }
    s.to_owned()
}

fn redact_value(key: &str, v: &mut toml::Value) {
    match v {
        toml::Value::String(s) if secret_name(key) => *s = REDACTED.to_owned(),
        toml::Value::String(s) => *s = redact_str(s),
        toml::Value::Array(items) => {
            // An argv: the argument after a secret-looking flag is the secret.
            let mut after_flag = false;
            for item in items.iter_mut() {
                match item {
                    toml::Value::String(s) if after_flag || secret_name(key) => *s = REDACTED.to_owned(),
                    toml::Value::String(s) => {
                        after_flag = s.starts_with('-') && !s.contains('=') && secret_name(s);
                        *s = redact_str(s);
                        continue;
                    }
                    other => redact_value(key, other),
                }
                after_flag = false;
            }
        }
        toml::Value::Table(t) => redact_table(t),
        _ => {}
    }
}

pub fn redact_table(t: &mut toml::Table) {
    for (k, v) in t.iter_mut() {
        redact_value(k, v);
    }
}

/// The config text with secrets replaced; comments are lost (the file is re-serialised).
pub fn redact_config(text: &str) -> Result<String, String> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    redact_table(&mut table);
    toml::to_string_pretty(&table).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_go_and_everything_else_stays() {
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
[actions]
[[actions.hook]]
on = ["unhealthy"]
command = ["curl", "-H", "Authorization: Bearer s3cr3t-4", "https://ops:s3cr3t-5@hooks.example/x"]
[device.extra]
secret_key = "s3cr3t-6"
"#;
        let out = redact_config(text).unwrap();
        for n in 1..=8 {
            assert!(!out.contains(&format!("s3cr3t-{n}")), "secret {n} leaked:\n{out}");
        }
        for kept in ["photon-cli", "--device", "\"ph0\"", "hooks.example/x", "https://ops:", "0.0.0.0:9860", "--token"]
        {
            assert!(out.contains(kept), "{kept} lost:\n{out}");
        }
    }
}
