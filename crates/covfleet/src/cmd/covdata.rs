//! `covfleet covdata …`: a native drop-in for `go tool covdata`.
//!
//! Takes Go's flag spellings (`-i=DIR,DIR`, `-o FILE`, `-pkg PAT`, `-live`,
//! `-pcombine`; the double-dash forms work too), prints the same output and
//! the same warnings and errors, and exits with the same codes.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use covdata::tool::{self, DumpKind, Failure, MergeKind, PkgFilter, TextfmtOut};

/// Arguments of `covfleet covdata`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Read Go's binary coverage data natively (a drop-in for `go tool covdata`)",
    long_about = "Read Go's binary coverage data natively: a drop-in for `go tool covdata` with \
byte-identical output, no Go toolchain needed.\n\nGo's single-dash flag spellings work: \
`-i=dir1,dir2`, `-pkg=PATTERN`, `-live`, `-pcombine`."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Input {
    /// Input directories to examine (comma separated).
    #[arg(short = 'i', value_name = "DIR[,DIR…]")]
    pub dirs: Option<String>,
    /// Restrict output to packages matching these patterns (comma separated, `...` wildcards).
    #[arg(long = "pkg", value_name = "PATTERN")]
    pub pkg: Option<String>,
    /// Verbose trace level (accepted for compatibility; ignored).
    #[arg(short = 'v', value_name = "N", hide = true)]
    pub verbose: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Convert coverage data to the legacy text profile format.
    Textfmt {
        #[command(flatten)]
        input: Input,
        /// Output text format to this file.
        #[arg(short = 'o', value_name = "FILE")]
        out: Option<String>,
    },
    /// Print the percentage of statements covered, per package.
    Percent {
        #[command(flatten)]
        input: Input,
        /// Also write the text format to this file.
        #[arg(short = 'o', value_name = "FILE")]
        out: Option<String>,
    },
    /// Print coverage per function.
    Func {
        #[command(flatten)]
        input: Input,
    },
    /// Print the import paths of all compiled packages.
    Pkglist {
        #[command(flatten)]
        input: Input,
    },
    /// Dump the data in human-readable form (for debugging).
    Debugdump {
        #[command(flatten)]
        input: Input,
        /// Select only live (executed) functions.
        #[arg(long)]
        live: bool,
    },
    /// Merge data files together into an output directory.
    Merge {
        #[command(flatten)]
        input: Input,
        /// Output directory to write.
        #[arg(short = 'o', value_name = "DIR")]
        out: Option<String>,
        /// Combine profiles derived from distinct program executables.
        #[arg(long)]
        pcombine: bool,
    },
    /// Subtract the second input directory's coverage from the first's.
    Subtract {
        #[command(flatten)]
        input: Input,
        /// Output directory to write.
        #[arg(short = 'o', value_name = "DIR")]
        out: Option<String>,
    },
    /// Keep only what every input directory covered.
    Intersect {
        #[command(flatten)]
        input: Input,
        /// Output directory to write.
        #[arg(short = 'o', value_name = "DIR")]
        out: Option<String>,
    },
}

const SUBCOMMANDS: [&str; 8] = [
    "textfmt",
    "percent",
    "pkglist",
    "func",
    "merge",
    "subtract",
    "intersect",
    "debugdump",
];

/// Go's flags that take a value, and Go's boolean flags.
const VALUE_FLAGS: [&str; 7] = [
    "i",
    "o",
    "pkg",
    "v",
    "cpuprofile",
    "memprofile",
    "memprofilerate",
];
const BOOL_FLAGS: [&str; 4] = ["live", "pcombine", "h", "hw"];

/// Rewrites a `covfleet covdata …` command line from Go's flag syntax
/// (`-flag`, `--flag`, `-flag=value`, `-flag value`, `-bool=false`) into
/// clap's, and reports what Go's flag package would reject, worded as Go
/// words it. Other command lines pass through unchanged.
pub fn normalize_go_flags(args: Vec<String>) -> Result<Vec<String>, Failure> {
    if args.get(1).is_none_or(|a| a != "covdata") {
        return Ok(args);
    }
    let Some(sub) = args.get(2) else {
        return Ok(args);
    };
    if sub.starts_with('-') || sub == "help" {
        return Ok(args);
    }
    if !SUBCOMMANDS.contains(&sub.as_str()) {
        return Err(Failure {
            code: 2,
            stderr: format!(
                "error: unknown command selector {sub:?}\nusage: covfleet covdata [command]\n\nCommands are: {}\n",
                SUBCOMMANDS.join(", ")
            ),
        });
    }
    let sub = sub.clone();
    let mut out: Vec<String> = args[..3].to_vec();
    let mut it = args.into_iter().skip(3);
    while let Some(a) = it.next() {
        if a == "--" || !a.starts_with('-') || a == "-" {
            return Err(usage(&sub, "unknown extra arguments"));
        }
        let body = a.trim_start_matches('-');
        if a.starts_with("---") || body.is_empty() {
            return Err(Failure {
                code: 2,
                stderr: format!("bad flag syntax: {a}\n"),
            });
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if name == "help" {
            out.push("--help".into());
            continue;
        }
        let clap_name = if name.len() == 1 && name != "h" {
            format!("-{name}")
        } else {
            format!("--{name}")
        };
        if VALUE_FLAGS.contains(&name) {
            let value = match value {
                Some(v) => v,
                None => it.next().ok_or_else(|| Failure {
                    code: 2,
                    stderr: format!("flag needs an argument: -{name}\n"),
                })?,
            };
            if name == "v" || name.ends_with("profile") || name == "memprofilerate" {
                continue; // accepted for compatibility, no effect
            }
            out.push(clap_name);
            out.push(value);
        } else if BOOL_FLAGS.contains(&name) {
            let on = match value.as_deref() {
                None => true,
                Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
                Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
                Some(v) => {
                    return Err(Failure {
                        code: 2,
                        stderr: format!("invalid boolean value {v:?} for -{name}: parse error\n"),
                    });
                }
            };
            if on && (name == "live" || name == "pcombine") {
                out.push(clap_name);
            }
        } else {
            return Err(Failure {
                code: 2,
                stderr: format!(
                    "flag provided but not defined: -{name}\nusage: covfleet covdata {sub} -i=<directories>\n\nRun `covfleet covdata {sub} --help` for the flags.\n"
                ),
            });
        }
    }
    Ok(out)
}

fn usage(sub: &str, msg: &str) -> Failure {
    Failure {
        code: 2,
        stderr: format!(
            "error: {msg}\nusage: covfleet covdata {sub} -i=<directories>\n\nRun `covfleet covdata {sub} --help` for the flags.\n"
        ),
    }
}

fn dirs_of(sub: &str, input: &Input) -> Result<Vec<String>, Failure> {
    match input.dirs.as_deref() {
        None | Some("") => Err(usage(sub, "select input directories with '-i' option")),
        Some(d) => Ok(d.split(',').map(str::to_string).collect()),
    }
}

fn filter_of(input: &Input) -> Option<PkgFilter> {
    input
        .pkg
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(PkgFilter::new)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut stderr = std::io::stderr().lock();
    let result = execute(args.command, &mut stderr);
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let _ = stderr.write_all(f.stderr.as_bytes());
            ExitCode::from(f.code)
        }
    })
}

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Failure {
                    code: 0,
                    stderr: String::new(),
                }
            } else {
                Failure {
                    code: 1,
                    stderr: format!("error: writing output: {e}\n"),
                }
            }
        })
}

fn create_out(sub: &str, path: &str) -> Result<std::fs::File, Failure> {
    std::fs::File::create(path).map_err(|e| {
        usage(
            sub,
            &format!("unable to open textfmt output file {path:?}: {e}"),
        )
    })
}

fn execute(sub: Sub, warn: &mut dyn Write) -> Result<(), Failure> {
    match sub {
        Sub::Textfmt { input, out } => {
            let dirs = dirs_of("textfmt", &input)?;
            let out = out.filter(|o| !o.is_empty());
            let Some(out) = out else {
                return Err(usage("textfmt", "select output file name with '-o' option"));
            };
            let mut file = create_out("textfmt", &out)?;
            let mut stdout = Vec::new();
            tool::dump(
                DumpKind::Textfmt,
                &dirs,
                filter_of(&input).as_ref(),
                Some(TextfmtOut {
                    writer: &mut file,
                    path: &out,
                }),
                warn,
                &mut stdout,
            )
        }
        Sub::Percent { input, out } => {
            let dirs = dirs_of("percent", &input)?;
            let out = out.filter(|o| !o.is_empty());
            let mut file = out
                .as_deref()
                .map(|o| create_out("percent", o))
                .transpose()?;
            let mut stdout = Vec::new();
            let textfmt = match (file.as_mut(), out.as_deref()) {
                (Some(f), Some(o)) => Some(TextfmtOut { writer: f, path: o }),
                _ => None,
            };
            let r = tool::dump(
                DumpKind::Percent,
                &dirs,
                filter_of(&input).as_ref(),
                textfmt,
                warn,
                &mut stdout,
            );
            let flushed = write_stdout(&stdout);
            r?;
            flushed
        }
        Sub::Func { input } => dump_to_stdout(DumpKind::Func, "func", &input, warn),
        Sub::Pkglist { input } => dump_to_stdout(DumpKind::Pkglist, "pkglist", &input, warn),
        Sub::Debugdump { input, live } => {
            let dirs = dirs_of("debugdump", &input)?;
            let mut header = String::from(
                "/* WARNING: the format of this dump is not stable and is\n * expected to change from one Go release to the next.\n *\n * produced by:\n",
            );
            let argv: Vec<String> = std::env::args().collect();
            header.push_str(&format!(" *\t{}\n */\n", argv.join(" ")));
            let mut stdout = header.into_bytes();
            let r = tool::dump(
                DumpKind::Debugdump { live },
                &dirs,
                filter_of(&input).as_ref(),
                None,
                warn,
                &mut stdout,
            );
            write_stdout(&stdout)?;
            r
        }
        Sub::Merge {
            input,
            out,
            pcombine,
        } => merge_like("merge", MergeKind::Merge { pcombine }, &input, out, warn),
        Sub::Subtract { input, out } => {
            merge_like("subtract", MergeKind::Subtract, &input, out, warn)
        }
        Sub::Intersect { input, out } => {
            merge_like("intersect", MergeKind::Intersect, &input, out, warn)
        }
    }
}

fn dump_to_stdout(
    kind: DumpKind,
    sub: &str,
    input: &Input,
    warn: &mut dyn Write,
) -> Result<(), Failure> {
    let dirs = dirs_of(sub, input)?;
    let mut stdout = Vec::new();
    let r = tool::dump(
        kind,
        &dirs,
        filter_of(input).as_ref(),
        None,
        warn,
        &mut stdout,
    );
    write_stdout(&stdout)?;
    r
}

fn merge_like(
    sub: &str,
    kind: MergeKind,
    input: &Input,
    out: Option<String>,
    warn: &mut dyn Write,
) -> Result<(), Failure> {
    let dirs = dirs_of(sub, input)?;
    if kind == MergeKind::Subtract && dirs.len() != 2 {
        return Err(usage(
            sub,
            "supply exactly two input dirs for subtract operation",
        ));
    }
    let Some(out) = out.filter(|o| !o.is_empty()) else {
        return Err(usage(sub, "select output directory with '-o' option"));
    };
    if !std::path::Path::new(&out).is_dir() {
        std::fs::create_dir_all(&out).map_err(|e| Failure {
            code: 1,
            stderr: format!("error: creating output directory {out}: {e}\n"),
        })?;
    }
    tool::merge(kind, &dirs, &out, filter_of(input).as_ref(), warn).map(|_| ())
}

/// For tests: parse a `covdata` command line as the binary would.
#[allow(dead_code)]
pub fn parse_for_test(argv: &[&str]) -> Result<Args, clap::Error> {
    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(subcommand)]
        sub: Sub,
    }
    let w = Wrapper::try_parse_from(argv)?;
    Ok(Args { command: w.sub })
}
