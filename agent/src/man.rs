//! Man pages from the clap definitions. clap_mangen's own SUBCOMMANDS section refers to one page per
//! subcommand (`accel-agent-scan(8)`, `agentctl-status(1)`) that nobody installs; here each subcommand is
//! described in the page itself, with its options.

use std::io::{self, Write};

/// Renders `cmd`'s man page in `section`, with a COMMANDS section in place of references to other pages.
pub fn render(cmd: clap::Command, section: &str, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = cmd;
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone()).section(section);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    let subcommands: Vec<&clap::Command> =
        cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help").collect();
    if !subcommands.is_empty() {
        writeln!(out, ".SH COMMANDS")?;
        for sub in subcommands {
            render_subcommand(cmd.get_name(), sub, out)?;
        }
    }
    if cmd.get_after_long_help().is_some() || cmd.get_after_help().is_some() {
        man.render_extra_section(out)?;
    }
    if cmd.get_version().is_some() {
        man.render_version_section(out)?;
    }
    Ok(())
}

fn render_subcommand(parent: &str, sub: &clap::Command, out: &mut dyn Write) -> io::Result<()> {
    let positionals: Vec<String> = sub
        .get_positionals()
        .filter(|a| !a.is_hide_set())
        .map(|a| {
            let name = a.get_value_names().and_then(|v| v.first()).map_or(a.get_id().as_str(), |n| n.as_str());
            if a.is_required_set() { name.to_uppercase() } else { format!("[{}]", name.to_uppercase()) }
        })
        .collect();
    writeln!(out, ".TP")?;
    let line = format!("\\fB{} {}\\fR {}", escape(parent), escape(sub.get_name()), escape(&positionals.join(" ")));
    writeln!(out, "{}", line.trim_end())?;
    if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
        for line in about.to_string().lines() {
            writeln!(out, "{}", text_line(line))?;
        }
    }
    let options: Vec<&clap::Arg> =
        sub.get_arguments().filter(|a| !a.is_hide_set() && !a.is_global_set() && a.get_id() != "help").collect();
    if options.is_empty() {
        return Ok(());
    }
    writeln!(out, ".RS")?;
    for arg in options {
        let Some(long) = arg.get_long() else { continue };
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .filter(|_| arg.get_action().takes_values())
            .map(|v| format!("=\\fI{}\\fR", escape(v.as_str())))
            .unwrap_or_default();
        writeln!(out, ".TP")?;
        writeln!(out, "\\fB\\-\\-{}\\fR{value}", escape(long))?;
        if let Some(help) = arg.get_long_help().or_else(|| arg.get_help()) {
            for line in help.to_string().lines() {
                writeln!(out, "{}", text_line(line))?;
            }
        }
    }
    writeln!(out, ".RE")
}

/// Escapes text for roff: backslashes and hyphens.
fn escape(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// A line of running text: escaped, and never taken for a request.
fn text_line(line: &str) -> String {
    let e = escape(line);
    if e.starts_with('.') || e.starts_with('\'') { format!("\\&{e}") } else { e }
}
