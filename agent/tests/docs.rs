//! The README and docs/ say only what the programs accept: every `--flag` given to `accel-agent` or
//! `agentctl` in a code span or code block exists in that program's command line (any of its
//! subcommands), every flag quoted on its own exists in one of them, and every relative link in the
//! README and docs/ points at a file (and heading) that exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("agent/ lies in the repository").to_owned()
}

/// The README and every page under docs/, with their text.
fn pages() -> Vec<(PathBuf, String)> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap())).collect()
}

/// Every long flag of a command and its subcommands, without the dashes.
fn flags(cmd: clap::Command) -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeSet<String>) {
        out.extend(cmd.get_arguments().filter_map(|a| a.get_long().map(str::to_owned)));
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut cmd = cmd;
    cmd.build();
    let mut out = BTreeSet::from(["help".to_owned(), "version".to_owned()]);
    walk(&cmd, &mut out);
    out
}

/// A piece of code in a page.
struct Code {
    line: usize,
    text: String,
    /// An inline code span (else a line of a fenced block).
    inline: bool,
}

/// The code in a page: inline code spans and the lines of fenced code blocks.
fn code(text: &str) -> Vec<Code> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            out.push(Code { line: i + 1, text: line.to_owned(), inline: false });
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let Some(span) = parts.next() {
            out.push(Code { line: i + 1, text: span.to_owned(), inline: true });
            parts.next();
        }
    }
    out
}

/// The `--flags` given to `program` in a piece of code: after the program's name, up to the end of
/// that shell command.
fn flags_given_to(program: &str, code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let tokens: Vec<&str> = code.split_whitespace().collect();
    for (i, t) in tokens.iter().enumerate() {
        let word = t.trim_matches(|c| c == '"' || c == '\'' || c == ',' || c == '[' || c == ']');
        if word != program && !word.ends_with(&format!("/{program}")) {
            continue;
        }
        for t in &tokens[i + 1..] {
            // The end of the shell command, or prose that merely names the program ("agentctl (ctl/)").
            if ["|", ";", "&&", "||", ">", "2>&1"].contains(t) || t.starts_with('#') || t.starts_with('(') {
                break;
            }
            let t = t.trim_matches(|c| c == '"' || c == '\'' || c == ',' || c == '[' || c == ']');
            if let Some(flag) = t.strip_prefix("--").filter(|f| !f.is_empty()) {
                found.push(flag.split('=').next().unwrap_or(flag).to_owned());
            }
        }
    }
    found
}

/// Flags of other programs that the docs quote on their own: the secret-looking flags the redaction
/// recognises in any command line (docs/security.md, docs/api.md), and the test BMP simulator's `--bind`
/// (`bmp-sim`, docs/spinnaker.md).
const OTHER_PROGRAMS_FLAGS: &[&str] = &["password", "token", "bearer", "api-key", "bind"];

#[test]
fn every_flag_in_the_docs_exists() {
    let daemon = flags(agent::app::cli::Cli::command());
    let ctl = flags(agent::control::ctl::cli::CtlCli::command());
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (path, text) in pages() {
        let page = path.strip_prefix(repo()).unwrap().display().to_string();
        for Code { line, text: code, inline } in code(&text) {
            for (program, known) in [("accel-agent", &daemon), ("agentctl", &ctl)] {
                for flag in flags_given_to(program, &code) {
                    checked += 1;
                    if !known.contains(&flag) {
                        wrong.push(format!("{page}:{line}: {program} has no --{flag}: {code}"));
                    }
                }
            }
            // A flag quoted on its own (`--state-dir`) is one of ours; Go-style flags of other tools
            // (`--web.config.file`, `--path.rootfs`) have a dot and are left alone, as are the few
            // other programs' flags the docs quote on their own.
            let span = code.trim();
            if let Some(flag) = span.strip_prefix("--").map(|f| f.split([' ', '=']).next().unwrap_or(f))
                && inline
                && !flag.is_empty()
                && !flag.contains('.')
                && !span.contains(' ')
                && !OTHER_PROGRAMS_FLAGS.contains(&flag)
            {
                checked += 1;
                if !daemon.contains(flag) && !ctl.contains(flag) {
                    wrong.push(format!("{page}:{line}: neither accel-agent nor agentctl has --{flag}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "flags the programs do not have:\n{}", wrong.join("\n"));
    assert!(checked > 30, "only {checked} flags found: is the extraction broken?");
}

#[test]
fn flags_are_found_where_they_are_given() {
    assert_eq!(flags_given_to("agentctl", "sudo agentctl throttle loihi0 1 --for 30m | tee x --y"), ["for"]);
    assert_eq!(
        flags_given_to("accel-agent", "cargo run --release --bin accel-agent -- --demo --listen=127.0.0.1:1"),
        ["demo", "listen"]
    );
    assert_eq!(
        flags_given_to("accel-agent", r#""path": "/usr/bin/accel-agent", "args": ["npd", "--condition""#),
        ["condition"]
    );
    assert!(flags_given_to("agentctl", "promtool --x agentctl-like").is_empty());
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.strip_prefix('#')).map(|h| anchor(h.trim_start_matches('#'))).collect()
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    let mut readme_docs_links = 0;
    for (path, text) in pages() {
        let page = path.strip_prefix(repo()).unwrap().display().to_string();
        let dir = path.parent().unwrap();
        for (i, line) in text.lines().enumerate() {
            for part in line.split("](").skip(1) {
                let Some(target) = part.split(')').next() else { continue };
                if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                    continue;
                }
                let (file, fragment) = target.split_once('#').map_or((target, None), |(f, a)| (f, Some(a)));
                let resolved = if file.is_empty() { path.clone() } else { dir.join(file) };
                checked += 1;
                if page == "README.md" && file.starts_with("docs/") {
                    readme_docs_links += 1;
                }
                if !resolved.exists() {
                    broken.push(format!("{page}:{}: {target} (no {})", i + 1, resolved.display()));
                    continue;
                }
                if let Some(fragment) = fragment
                    && resolved.is_file()
                    && !anchors(&std::fs::read_to_string(&resolved).unwrap()).contains(fragment)
                {
                    broken.push(format!("{page}:{}: {target} (no heading #{fragment})", i + 1));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        readme_docs_links >= 10 && checked > readme_docs_links,
        "{readme_docs_links} README docs/ links, {checked} in all"
    );
}
