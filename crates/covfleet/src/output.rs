//! Every diagnostic covfleet prints goes through here (see `docs/STYLE.md`).
//!
//! stdout carries data (paths, JSON, `covdata` reports); stderr carries talk,
//! one prefix style for all of it:
//!
//! ```text
//! error: cannot open coverage.db
//!   caused by: permission denied
//! warning: entry x: ignored file y
//! hint: run `covfleet compile DIR` first
//! ```
//!
//! `--quiet` silences status lines, summaries and progress bars; errors and
//! warnings are always printed. Prefixes are coloured only when stderr is a
//! terminal and `NO_COLOR` is unset. Warnings are counted ([`warnings`]).

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, Copy)]
struct Settings {
    quiet: bool,
    color: bool,
    terminal: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();
static WARNINGS: AtomicUsize = AtomicUsize::new(0);

/// Sets up output once, from the global flags and the environment. Later
/// calls are ignored (the first one wins).
pub fn init(quiet: bool) {
    let terminal = std::io::stderr().is_terminal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = SETTINGS.set(Settings {
        quiet,
        color: terminal && !no_color,
        terminal,
    });
}

fn settings() -> Settings {
    *SETTINGS.get_or_init(|| Settings {
        quiet: false,
        color: false,
        terminal: false,
    })
}

/// True under `--quiet`.
pub fn quiet() -> bool {
    settings().quiet
}

/// True when progress bars may be drawn: stderr is a terminal and not `--quiet`.
pub fn interactive() -> bool {
    let s = settings();
    s.terminal && !s.quiet
}

/// How many warnings were printed so far.
pub fn warnings() -> usize {
    WARNINGS.load(Ordering::Relaxed)
}

fn prefixed(label: &str, ansi: &str, msg: &dyn Display) {
    let mut err = std::io::stderr().lock();
    let _ = if settings().color {
        writeln!(err, "\x1b[{ansi}m{label}:\x1b[0m {msg}")
    } else {
        writeln!(err, "{label}: {msg}")
    };
}

/// `error: …` — something failed. Always printed.
pub fn error(msg: impl Display) {
    prefixed("error", "1;31", &msg);
}

/// `error: …` then one `  caused by: …` line per cause. Always printed.
pub fn error_with_causes(err: &anyhow::Error) {
    error(err);
    let mut printed = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        // Messages that already end with their cause's text say it once.
        if !printed.ends_with(&text) {
            let _ = writeln!(std::io::stderr().lock(), "  caused by: {text}");
        }
        printed = text;
    }
}

/// `warning: …` — something was skipped or degraded; counted. Always printed.
pub fn warn(msg: impl Display) {
    WARNINGS.fetch_add(1, Ordering::Relaxed);
    prefixed("warning", "1;33", &msg);
}

/// Counts a warning that was not printed (for example one past a limit).
pub fn warn_silently() {
    WARNINGS.fetch_add(1, Ordering::Relaxed);
}

/// `hint: …` — what to do next. Silenced by `--quiet`.
pub fn hint(msg: impl Display) {
    if !quiet() {
        prefixed("hint", "1;36", &msg);
    }
}

/// A status or summary line, without prefix. Silenced by `--quiet`.
pub fn status(msg: impl Display) {
    if !quiet() {
        let _ = writeln!(std::io::stderr().lock(), "{msg}");
    }
}

/// One line of data on stdout (never silenced).
pub fn data(line: impl Display) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Prints `value` as pretty JSON on stdout.
pub fn json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => data(s),
        Err(e) => error(format_args!("cannot print the summary as JSON: {e}")),
    }
}

/// `n thing` or `n things`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A progress bar on stderr when it is a terminal and not `--quiet` (and
/// the caller does not print JSON): `{spinner} {msg} [{bar}] {pos}/{len} {unit}`.
pub fn progress_bar(message: &str, unit: &str, json: bool) -> Option<indicatif::ProgressBar> {
    if json || !interactive() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    let template = format!("{{spinner}} {{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit}");
    bar.set_style(
        indicatif::ProgressStyle::with_template(template.trim_end())
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(message.to_string());
    Some(bar)
}

/// When a page (`diff --html`, `history --html`) went into a rendered
/// site: how the site's index links it, or what to name it so it does.
pub fn site_hint(html: &std::path::Path, kind: report::site::LinkedPage) {
    let Some(dir) = html.parent().filter(|d| d.join("index.html").is_file()) else {
        return;
    };
    let linked = html
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| kind.matches(n));
    let index = dir.join("index.html");
    if linked {
        hint(format!(
            "`covfleet render` links it from {} (render again if that site is already rendered)",
            index.display()
        ));
    } else {
        let stem = kind.stem();
        hint(format!(
            "name it {stem}.html or {stem}-NAME.html for `covfleet render` to link it from {}",
            index.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "directory", "directories"), "1 directory");
        assert_eq!(plural(0, "directory", "directories"), "0 directories");
        assert_eq!(plural(2, "file", "files"), "2 files");
    }

    #[test]
    fn warnings_are_counted() {
        let before = warnings();
        warn_silently();
        assert_eq!(warnings(), before + 1);
    }
}
