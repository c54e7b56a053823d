//! Standard coverage formats from `coverage.db`: Go's text profile, lcov,
//! Cobertura XML and Codecov's JSON, one report per owner or all selected
//! owners merged.
//!
//! The Go profile keeps the import paths the coverage data records (so `go
//! tool cover` finds the sources as for `go test -coverprofile`) and equals
//! what `go tool covdata textfmt` writes for the same counters, minus the
//! injected coverage server. The other formats name files by their path
//! relative to the repository root, found through the source lookup `render`
//! uses; without a checkout the module path is stripped.

mod cobertura;
mod codecov;
mod lcov;

use std::collections::BTreeMap;
use std::path::PathBuf;

use covdata::{CounterMode, Unit};

use crate::cov::{self, Error, OwnerCov, OwnerPaths, RepoPaths};

pub use cobertura::cobertura;
pub use codecov::{codecov_flag, codecov_json, codecov_upload_script};
pub use lcov::lcov;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Go,
    Lcov,
    Cobertura,
    Codecov,
}

impl Format {
    /// Parses `go`, `lcov`, `cobertura` or `codecov`.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "go" => Format::Go,
            "lcov" => Format::Lcov,
            "cobertura" => Format::Cobertura,
            "codecov" => Format::Codecov,
            _ => return None,
        })
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Go => "out",
            Format::Lcov => "info",
            Format::Cobertura => "xml",
            Format::Codecov => "json",
        }
    }
}

/// One function of an export, with what the source says about it.
#[derive(Debug, Clone)]
pub struct ExportFunc {
    /// Go's name from the meta-data (`*T.M`, `f`, `func.L3.C9`).
    pub meta_name: String,
    /// The name tools print: `M`, `f`, or the variable a package-level
    /// function literal is assigned to.
    pub name: String,
    /// The receiver type as written, `-` for plain functions.
    pub class: String,
    pub literal: bool,
    /// The line of the `func` keyword (the first unit's line without source).
    pub decl_line: u32,
    /// False for a package-level literal the source shows is not assigned
    /// to a variable (Cobertura converters skip those).
    pub named: bool,
    /// Units by position with counts.
    pub units: Vec<(Unit, u64)>,
}

/// One source file of an export.
#[derive(Debug, Clone)]
pub struct ExportFile {
    /// The path as the coverage data records it (an import path).
    pub import_path: String,
    /// The repository-relative path.
    pub path: String,
    pub package: String,
    /// Functions by declaration line.
    pub funcs: Vec<ExportFunc>,
}

impl ExportFile {
    /// Every unit of the file, sorted by (start line, start column).
    pub fn units(&self) -> Vec<(Unit, u64)> {
        let mut v: Vec<(Unit, u64)> = self.funcs.iter().flat_map(|f| f.units.clone()).collect();
        v.sort_by_key(|(u, _)| (u.st_line, u.st_col));
        v
    }
}

/// The data of one exported report (one owner, or several merged).
#[derive(Debug, Clone)]
pub struct ExportData {
    /// `namespace/owner` (or `merged`).
    pub label: String,
    /// The owners in it.
    pub owners: Vec<db::Owner>,
    pub mode: CounterMode,
    /// Files by import path.
    pub files: Vec<ExportFile>,
    /// The repository root(s) the paths are relative to.
    pub source_roots: Vec<PathBuf>,
    /// Files whose source was not found (paths only module-stripped).
    pub unresolved: usize,
    /// Go's text profile (import paths).
    pub go_profile: String,
}

fn add(mode: CounterMode, a: u64, b: u64) -> u64 {
    if mode == CounterMode::SET {
        u64::from(a != 0 || b != 0)
    } else {
        a.saturating_add(b)
    }
}

/// Builds the export of some owners: each alone, or all merged into one
/// (units of the same file, function and range add up, as `go tool covdata
/// textfmt` adds the inputs it is given; all owners must share a counter mode).
pub fn build(covs: &[OwnerCov], paths: &RepoPaths, merge: bool) -> Result<Vec<ExportData>, Error> {
    let groups: Vec<Vec<&OwnerCov>> = if merge {
        vec![covs.iter().collect()]
    } else {
        covs.iter().map(|c| vec![c]).collect()
    };
    groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|g| build_one(&g, paths))
        .collect()
}

type FileAcc = (
    String,
    String,
    BTreeMap<(String, bool), (ExportFunc, BTreeMap<Unit, u64>)>,
);

fn build_one(group: &[&OwnerCov], paths: &RepoPaths) -> Result<ExportData, Error> {
    let mode = group[0].mode();
    if let Some(other) = group.iter().find(|c| c.mode() != mode) {
        return Err(Error::MixedModes(
            mode.to_string(),
            other.mode().to_string(),
        ));
    }
    let mut fm = covdata::report::Formatter::new(mode);
    let mut files: BTreeMap<String, FileAcc> = BTreeMap::new();
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut unresolved = std::collections::BTreeSet::new();
    for c in group {
        c.add_to(&mut fm);
        let funcs = c.funcs();
        let names: Vec<String> = funcs
            .iter()
            .map(|f| f.file.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let op: OwnerPaths = paths.for_owner(&c.owner, &names);
        if let Some(r) = &op.repo_root
            && !roots.contains(r)
        {
            roots.push(r.clone());
        }
        let mut sources: BTreeMap<&str, Option<Vec<String>>> = BTreeMap::new();
        for f in &funcs {
            let lines = sources
                .entry(f.file.as_str())
                .or_insert_with(|| cov::source_lines(op.disk(&f.file)));
            if op.disk(&f.file).is_none() {
                unresolved.insert(f.file.clone());
            }
            let info = cov::decl_info(f, lines.as_deref());
            let has_source = lines.is_some();
            let name = if f.literal {
                info.var_name.clone().unwrap_or_else(|| f.name.clone())
            } else {
                f.short_name().to_string()
            };
            let entry = files.entry(f.file.clone()).or_insert_with(|| {
                (
                    op.rel(&f.file).to_string(),
                    f.package.clone(),
                    BTreeMap::new(),
                )
            });
            let (ef, units) = entry
                .2
                .entry((f.name.clone(), f.literal))
                .or_insert_with(|| {
                    (
                        ExportFunc {
                            meta_name: f.name.clone(),
                            name,
                            class: info.receiver.clone().unwrap_or_else(|| "-".into()),
                            literal: f.literal,
                            decl_line: info.line,
                            named: !f.literal || !has_source || info.var_name.is_some(),
                            units: Vec::new(),
                        },
                        BTreeMap::new(),
                    )
                });
            let _ = ef;
            for (u, n) in &f.units {
                let slot = units.entry(*u).or_insert(0);
                *slot = add(mode, *slot, u64::from(*n));
            }
        }
    }
    let mut out_files = Vec::new();
    for (import_path, (path, package, funcs)) in files {
        let mut fs: Vec<ExportFunc> = funcs
            .into_values()
            .map(|(mut f, units)| {
                f.units = units.into_iter().collect();
                f.units
                    .sort_by_key(|(u, _)| (u.st_line, u.st_col, u.en_line, u.en_col));
                f
            })
            .collect();
        fs.sort_by_key(|f| (f.decl_line, f.units.first().map(|(u, _)| u.st_col)));
        out_files.push(ExportFile {
            import_path,
            path,
            package,
            funcs: fs,
        });
    }
    let mut text = Vec::new();
    let _ = fm.emit_textual(&mut text);
    let owners: Vec<db::Owner> = group.iter().map(|c| c.owner.clone()).collect();
    let label = if owners.len() == 1 {
        format!("{}/{}", owners[0].namespace, owners[0].owner_name)
    } else {
        "merged".to_string()
    };
    Ok(ExportData {
        label,
        owners,
        mode,
        files: out_files,
        source_roots: roots,
        unresolved: unresolved.len(),
        go_profile: String::from_utf8_lossy(&text).into_owned(),
    })
}

/// Renders one export in a format (Codecov: the JSON report).
pub fn render(data: &ExportData, format: Format, timestamp_ms: i64) -> String {
    match format {
        Format::Go => data.go_profile.clone(),
        Format::Lcov => lcov(data),
        Format::Cobertura => cobertura(data, timestamp_ms),
        Format::Codecov => codecov_json(data),
    }
}

/// A file name for an owner's export: `<namespace>--<owner>--<binary>-<hash8>.<ext>`.
pub fn file_name(data: &ExportData, format: Format) -> String {
    let stem = match data.owners.as_slice() {
        [o] => crate::site::page_slug(&cov::owner_row(o)),
        _ => "merged".to_string(),
    };
    format!("{stem}.{}", format.extension())
}
