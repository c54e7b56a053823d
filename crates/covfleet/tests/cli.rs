//! The command line's surface, pinned: every `--help` as an insta snapshot
//! (`tests/snapshots/`; review changes with `cargo insta review`, or rerun
//! with `INSTA_UPDATE=always` and read the diff), and the README's command
//! reference checked against the commands clap knows.

use clap::CommandFactory;
use covfleet::cli::Cli;

/// The help of `cmd` and of every subcommand below it, keyed by the
/// command path (`covfleet`, `covfleet compile`, `covfleet go-shim install`, …).
fn helps(cmd: &mut clap::Command, path: &str, out: &mut Vec<(String, String)>) {
    out.push((path.to_string(), cmd.render_long_help().to_string()));
    for sub in cmd.get_subcommands_mut() {
        let name = sub.get_name().to_string();
        if name == "help" {
            continue; // clap's own `help` tree repeats the others
        }
        helps(sub, &format!("{path} {name}"), out);
    }
}

fn cli() -> clap::Command {
    // A fixed width: snapshots must not depend on the terminal.
    Cli::command().term_width(100).max_term_width(100)
}

#[test]
fn help_snapshots() {
    let mut cmd = cli();
    cmd.build();
    let mut all = Vec::new();
    helps(&mut cmd, "covfleet", &mut all);
    assert!(all.len() > 10, "{}", all.len());
    for (path, text) in all {
        let name = path.replace(' ', "_");
        insta::with_settings!({ description => path.clone(), omit_expression => true }, {
            insta::assert_snapshot!(name, text);
        });
    }
}

/// The rows of the README's "Command reference" table: (command, summary).
fn readme_reference() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Command reference\n")
        .nth(1)
        .expect("README.md has a `## Command reference` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // | `covfleet NAME` | summary |
            let name = cells
                .get(1)?
                .strip_prefix("`covfleet ")?
                .strip_suffix('`')?;
            Some((name.to_string(), cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn readme_command_reference_matches_the_help() {
    let cmd = cli();
    let want: Vec<(String, String)> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| {
            let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
            (
                s.get_name().to_string(),
                about.trim_end_matches('.').to_string(),
            )
        })
        .collect();
    let got = readme_reference();
    let mut names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let twice: Vec<&str> = names
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert!(
        twice.is_empty(),
        "README.md's command reference has rows twice: {twice:?}"
    );
    let missing: Vec<String> = want
        .iter()
        .filter(|w| !got.contains(w))
        .map(|(n, a)| format!("| `covfleet {n}` | {a} |"))
        .collect();
    let stale: Vec<String> = got
        .iter()
        .filter(|g| !want.contains(g))
        .map(|(n, a)| format!("| `covfleet {n}` | {a} |"))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md's command reference drifted from `covfleet --help`.\nAdd or fix these rows:\n{}\nRemove these rows:\n{}",
        missing.join("\n"),
        stale.join("\n")
    );
}
