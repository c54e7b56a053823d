//! Function coverage as `go tool cover -func` prints it: one line per
//! function declaration (`file:line:\tname\tpct%`), files sorted by name,
//! functions in source order, then `total:\t(statements)\tpct%`, laid out
//! by Go's tabwriter.
//!
//! Like `go tool cover`, a function is named without its receiver and
//! located at its `func` keyword (found in the source when a checkout holds
//! it; else the line of the body's opening brace, which is the same line
//! unless the signature spans lines), and function literals outside any
//! function count nowhere, not even in the total.

use std::fmt::Write as _;

use crate::cov::{self, FuncCov, OwnerCov, OwnerPaths};

/// One function's line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FuncLine {
    /// The file as the coverage data names it.
    pub file: String,
    /// The line of the declaration.
    pub line: u32,
    pub name: String,
    /// The receiver type as the source writes it (`Stack[T]`), else as the
    /// meta-data names it; `None` for plain functions. Not in `--json`
    /// (`go tool cover -func` has no such column); the site shows it.
    #[serde(skip)]
    pub receiver: Option<String>,
    pub covered: u64,
    pub total: u64,
}

/// The function lines of an owner.
pub fn func_lines(c: &OwnerCov, paths: &OwnerPaths) -> Vec<FuncLine> {
    lines_of(&c.funcs(), |file| cov::source_lines(paths.disk(file)))
}

/// The function lines of some functions, `source(file)` giving a file's
/// source lines when known (asked once per file); literals left out, files
/// sorted by name, functions by line.
pub fn lines_of(
    funcs: &[FuncCov],
    mut source: impl FnMut(&str) -> Option<Vec<String>>,
) -> Vec<FuncLine> {
    let mut out = Vec::new();
    let mut sources: std::collections::BTreeMap<&str, Option<Vec<String>>> = Default::default();
    for f in funcs {
        if f.literal {
            continue;
        }
        let lines = sources
            .entry(f.file.as_str())
            .or_insert_with(|| source(&f.file));
        let info = cov::decl_info(f, lines.as_deref());
        let (covered, total) = f.stmts();
        out.push(FuncLine {
            file: f.file.clone(),
            line: info.line,
            name: f.short_name().to_string(),
            receiver: info.receiver,
            covered,
            total,
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
    out
}

fn percent(c: u64, t: u64) -> f64 {
    100.0 * c as f64 / t.max(1) as f64
}

/// `go tool cover -func` output for these lines.
pub fn format_funcs(lines: &[FuncLine]) -> String {
    let mut text = String::new();
    let (mut c, mut t) = (0u64, 0u64);
    for l in lines {
        let _ = writeln!(
            text,
            "{}:{}:\t{}\t{:.1}%",
            l.file,
            l.line,
            l.name,
            percent(l.covered, l.total)
        );
        c += l.covered;
        t += l.total;
    }
    let _ = writeln!(text, "total:\t(statements)\t{:.1}%", percent(c, t));
    String::from_utf8_lossy(&covdata::tabwriter::format(text.as_bytes())).into_owned()
}
