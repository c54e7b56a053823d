//! An owner's coverage as the analysis commands (`export`, `report --func`,
//! `diff`, `patch`) need it: the binary's meta-data (packages, functions,
//! units) with the owner's merged counters, read from `coverage.db` through
//! crate `db`, and each file's repository-relative path found through the
//! same source lookup `render` uses ([`crate::source`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use covdata::{CounterMode, MetaFile, Unit};

use crate::model::{FileCoverage, OwnerRow};
use crate::source::{self, SourceIndex};

/// Errors of the analysis commands.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading `coverage.db` failed.
    #[error(transparent)]
    Db(#[from] db::Error),
    /// A query on `coverage.db` failed.
    #[error("{path}: reading owner {owner}")]
    Sql {
        path: PathBuf,
        owner: i64,
        #[source]
        source: rusqlite::Error,
    },
    /// Stored data of an owner could not be decoded.
    #[error("{path}: owner {owner}: {why}")]
    Corrupt {
        path: PathBuf,
        owner: i64,
        why: String,
    },
    /// An `--owner` glob is not a valid pattern.
    #[error("bad owner pattern {pattern:?}: {why}")]
    Pattern { pattern: String, why: String },
    /// Owners of different counter modes cannot be merged into one profile.
    #[error("cannot merge owners of counter modes {0} and {1}")]
    MixedModes(String, String),
    /// Writing an output file failed.
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Running git, or reading what it printed, failed.
    #[error("git {args} in {repo}: {why}")]
    Git {
        repo: PathBuf,
        args: String,
        why: String,
    },
    /// A `BASE`/`HEAD` side of `diff` could not be opened.
    #[error("{spec}: {why}")]
    Side { spec: String, why: String },
}

/// One owner's coverage: its binary's meta-data and merged counters.
#[derive(Debug, Clone)]
pub struct OwnerCov {
    pub owner: db::Owner,
    pub meta: MetaFile,
    /// One counter per unit, in meta-data order (package, function, unit).
    pub counters: Vec<u32>,
}

/// One function of an owner with its units and their counts, injected
/// files left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncCov {
    pub package: String,
    /// The file as the coverage data names it (normally `<import path>/<base>`).
    pub file: String,
    /// Go's name: `f`, `T.M`, `*T.M`, or `func.L<line>.C<col>` for a
    /// function literal outside any function.
    pub name: String,
    pub literal: bool,
    /// Units sorted by position, with their counts.
    pub units: Vec<(Unit, u32)>,
}

impl FuncCov {
    /// (covered, total) statements.
    pub fn stmts(&self) -> (u64, u64) {
        let mut c = 0;
        let mut t = 0;
        for (u, n) in &self.units {
            t += u64::from(u.stmts);
            if *n > 0 {
                c += u64::from(u.stmts);
            }
        }
        (c, t)
    }

    /// The first unit's start line (the line of the body's `{`).
    pub fn first_line(&self) -> u32 {
        self.units.first().map_or(0, |(u, _)| u.st_line)
    }

    /// The method name without receiver (`*T.M` → `M`), as `go tool cover`
    /// prints it.
    pub fn short_name(&self) -> &str {
        if self.literal {
            return &self.name;
        }
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    /// The receiver type without `*` (`*T.M` → `T`), if the meta-data names one.
    pub fn receiver(&self) -> Option<&str> {
        if self.literal {
            return None;
        }
        let (recv, _) = self.name.rsplit_once('.')?;
        Some(recv.trim_start_matches('*'))
    }
}

impl OwnerCov {
    /// Loads an owner's meta-data and merged counters.
    pub fn load(database: &db::Database, owner: db::Owner) -> Result<OwnerCov, Error> {
        let path = database.path().to_path_buf();
        let id = owner.id;
        let (meta_blob, counters_blob): (Vec<u8>, Vec<u8>) = database
            .connection()
            .query_row(
                "SELECT m.data, o.counters FROM owners o JOIN meta_files m ON m.id = o.meta_id \
                 WHERE o.id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|source| Error::Sql {
                path: path.clone(),
                owner: id,
                source,
            })?;
        let corrupt = |why: String| Error::Corrupt {
            path: path.clone(),
            owner: id,
            why,
        };
        let raw = db::codec::inflate(&meta_blob).map_err(|e| corrupt(format!("meta-data: {e}")))?;
        let meta = MetaFile::decode(&raw).map_err(|e| corrupt(format!("meta-data: {e}")))?;
        let counters = db::codec::decode_counters(&counters_blob)
            .map_err(|e| corrupt(format!("counters: {e}")))?;
        let units: usize = meta
            .packages
            .iter()
            .flat_map(|p| &p.funcs)
            .map(|f| f.units.len())
            .sum();
        if units != counters.len() {
            return Err(corrupt(format!(
                "{} counters for {units} units",
                counters.len()
            )));
        }
        Ok(OwnerCov {
            owner,
            meta,
            counters,
        })
    }

    /// The counter mode (`set`, `count`, `atomic`).
    pub fn mode(&self) -> CounterMode {
        self.meta.mode
    }

    /// Every function of the binary outside the injected server's file, in
    /// meta-data order.
    pub fn funcs(&self) -> Vec<FuncCov> {
        funcs_of(&self.meta, &self.counters)
    }

    /// The distinct files of [`OwnerCov::funcs`], sorted.
    pub fn file_names(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<String> =
            self.funcs().into_iter().map(|f| f.file).collect();
        set.into_iter().collect()
    }

    /// Adds this owner's units to a Go report formatter (the injected
    /// server's file left out), as `go tool covdata textfmt` would.
    pub fn add_to(&self, fm: &mut covdata::report::Formatter) {
        use covdata::gostr::to_go_bytes;
        let mut i = 0usize;
        for p in &self.meta.packages {
            fm.set_package(&to_go_bytes(&p.path));
            for f in &p.funcs {
                let n = f.units.len();
                let counts = &self.counters[i..i + n];
                i += n;
                if db::is_injected_file(&f.file) {
                    continue;
                }
                if let Some(id) =
                    fm.add_func(&to_go_bytes(&f.file), &to_go_bytes(&f.name), f.literal)
                {
                    fm.add_units(id, &f.units, Some(counts));
                }
            }
        }
    }

    /// The Go text profile of this owner: what `go tool covdata textfmt`
    /// writes for the same counters, without the injected server's lines.
    pub fn go_profile(&self) -> String {
        let mut fm = covdata::report::Formatter::new(self.meta.mode);
        self.add_to(&mut fm);
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = fm.emit_textual(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Every function of a binary's meta-data outside the injected server's
/// file, in meta-data order, with its units' counts (`counters`: one per
/// unit, in meta-data order; missing counters count 0).
pub fn funcs_of(meta: &MetaFile, counters: &[u32]) -> Vec<FuncCov> {
    let mut out = Vec::new();
    let mut i = 0usize;
    for p in &meta.packages {
        for f in &p.funcs {
            let n = f.units.len();
            let counts = counters.get(i..i + n).unwrap_or_default();
            i += n;
            if db::is_injected_file(&f.file) {
                continue;
            }
            let mut units: Vec<(Unit, u32)> = f
                .units
                .iter()
                .enumerate()
                .map(|(k, u)| (*u, counts.get(k).copied().unwrap_or(0)))
                .collect();
            units.sort_by_key(|(u, _)| (u.st_line, u.st_col, u.en_line, u.en_col));
            out.push(FuncCov {
                package: p.path.clone(),
                file: f.file.clone(),
                name: f.name.clone(),
                literal: f.literal,
                units,
            });
        }
    }
    out
}

/// The owners whose `namespace/owner`, `namespace/type/owner` or owner name
/// matches one of the globs (all owners when there are none).
pub fn select_owners(database: &db::Database, globs: &[String]) -> Result<Vec<db::Owner>, Error> {
    let mut set = globset::GlobSetBuilder::new();
    for g in globs {
        let glob = globset::GlobBuilder::new(g)
            .literal_separator(false)
            .build()
            .map_err(|e| Error::Pattern {
                pattern: g.clone(),
                why: e.to_string(),
            })?;
        set.add(glob);
    }
    let set = set.build().map_err(|e| Error::Pattern {
        pattern: globs.join(" "),
        why: e.to_string(),
    })?;
    Ok(database
        .owners()?
        .into_iter()
        .filter(|o| {
            globs.is_empty()
                || [
                    format!("{}/{}", o.namespace, o.owner_name),
                    format!("{}/{}/{}", o.namespace, o.owner_type, o.owner_name),
                    o.owner_name.clone(),
                ]
                .iter()
                .any(|k| set.is_match(k))
        })
        .collect())
}

/// A short, stable name for an owner: `<namespace>/<owner>` plus the binary
/// when it differs from the owner, plus the meta hash's first 8 digits.
pub fn owner_label(o: &db::Owner) -> String {
    let mut s = format!("{}/{}", o.namespace, o.owner_name);
    if o.binary_name != o.owner_name && !o.binary_name.is_empty() {
        s.push_str(&format!(" ({})", o.binary_name));
    }
    s
}

/// The site's row for an owner (what the source lookup keys on).
pub fn owner_row(o: &db::Owner) -> OwnerRow {
    OwnerRow {
        id: o.id.to_string(),
        namespace: o.namespace.clone(),
        owner_type: o.owner_type.clone(),
        owner: o.owner_name.clone(),
        binary: o.binary_name.clone(),
        images: o.images.clone(),
        binary_key: format!("{}@{}", o.binary_name, o.meta_hash),
        source_url: o.source_url.clone(),
        source_commit: o.source_commit.clone(),
        module_path: Some(o.module_path.clone()).filter(|m| !m.is_empty()),
        ..OwnerRow::default()
    }
}

/// Where an owner's files are in a source checkout.
#[derive(Debug, Clone, Default)]
pub struct OwnerPaths {
    /// The repository root of the checkout found, if any.
    pub repo_root: Option<PathBuf>,
    /// Coverage path → (repository-relative path, file on disk if found).
    pub files: BTreeMap<String, (String, Option<PathBuf>)>,
}

impl OwnerPaths {
    /// The repository-relative path of a coverage path (the path itself
    /// when nothing maps it).
    pub fn rel<'a>(&'a self, path: &'a str) -> &'a str {
        self.files.get(path).map_or(path, |(r, _)| r.as_str())
    }

    /// The file on disk, when a checkout holds it.
    pub fn disk(&self, path: &str) -> Option<&Path> {
        self.files.get(path).and_then(|(_, d)| d.as_deref())
    }

    /// How many files have no checkout file.
    pub fn unresolved(&self) -> usize {
        self.files.values().filter(|(_, d)| d.is_none()).count()
    }
}

/// Maps coverage paths to repository-relative ones, as `render` finds sources.
#[derive(Debug)]
pub struct RepoPaths {
    index: SourceIndex,
    repos_dir: PathBuf,
}

impl RepoPaths {
    /// Checkouts under `repos_dir` (`DIR/repos`) plus extra source roots.
    pub fn new(repos_dir: impl Into<PathBuf>, extra_roots: Vec<PathBuf>) -> RepoPaths {
        let repos_dir = repos_dir.into();
        RepoPaths {
            index: SourceIndex::new(repos_dir.clone(), extra_roots),
            repos_dir,
        }
    }

    /// Resolves every file of an owner. Files without a checkout keep their
    /// path with the module path stripped (`<module>/pkg/f.go` → `pkg/f.go`).
    pub fn for_owner(&self, o: &db::Owner, files: &[String]) -> OwnerPaths {
        let row = owner_row(o);
        let fcs: Vec<FileCoverage> = files
            .iter()
            .map(|f| FileCoverage::from_blocks(f.clone(), Vec::new()))
            .collect();
        let resolved = self.index.resolve(&row, &fcs);
        let repo_root = resolved.as_ref().map(|r| self.repo_root(&r.checkout.root));
        let mut out = OwnerPaths {
            repo_root: repo_root.clone(),
            files: BTreeMap::new(),
        };
        for f in files {
            let disk = resolved
                .as_ref()
                .and_then(|r| source::locate(&r.checkout, f));
            let rel = match (&disk, &repo_root) {
                (Some(d), Some(root)) => d
                    .strip_prefix(root)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| strip_module(f, &o.module_path)),
                _ => strip_module(f, &o.module_path),
            };
            out.files.insert(f.clone(), (rel, disk));
        }
        out
    }

    /// The repository root of a checkout: `repos/<host>/<org>/<repo>/<commit8>`
    /// for clones, else the nearest directory with `.git`, else the checkout.
    fn repo_root(&self, checkout: &Path) -> PathBuf {
        if let Ok(rest) = checkout.strip_prefix(&self.repos_dir) {
            let comps: Vec<_> = rest.components().take(4).collect();
            if comps.len() == 4 {
                let mut p = self.repos_dir.clone();
                p.extend(comps);
                return p;
            }
        }
        let mut cur = Some(checkout);
        while let Some(d) = cur {
            if d.join(".git").exists() {
                return d.to_path_buf();
            }
            cur = d.parent();
        }
        checkout.to_path_buf()
    }
}

fn strip_module(path: &str, module: &str) -> String {
    if !module.is_empty()
        && let Some(rest) = path.strip_prefix(module).and_then(|r| r.strip_prefix('/'))
    {
        return rest.to_string();
    }
    path.strip_prefix("/workspace/").unwrap_or(path).to_string()
}

/// Source lines of a file (1-based access through `get(line - 1)`).
pub fn source_lines(path: Option<&Path>) -> Option<Vec<String>> {
    let text = source::read_source(path?)?;
    Some(text.lines().map(str::to_string).collect())
}

/// What the source says about a function: the line of its `func` keyword,
/// the receiver type as written (`Stack[T]`), and, for a package-level
/// function literal, the variable it is assigned to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclInfo {
    pub line: u32,
    pub receiver: Option<String>,
    pub var_name: Option<String>,
}

/// Finds a function's declaration in gofmt'd source: from the line of its
/// first unit upwards to the line starting with `func` (signatures may span
/// lines). Without source, the first unit's line and the meta-data's names.
pub fn decl_info(f: &FuncCov, lines: Option<&[String]>) -> DeclInfo {
    let first = f.first_line();
    let fallback = DeclInfo {
        line: first,
        receiver: f.receiver().map(str::to_string),
        var_name: None,
    };
    let Some(lines) = lines else {
        return fallback;
    };
    if f.literal {
        // `var Name = func(` or `Name = func(` inside a var block.
        let Some(text) = lines.get(first.saturating_sub(1) as usize) else {
            return fallback;
        };
        let t = text
            .trim_start()
            .strip_prefix("var ")
            .unwrap_or(text.trim_start());
        let var_name = t
            .split_once('=')
            .map(|(lhs, _)| lhs.split_whitespace().next().unwrap_or("").to_string())
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'));
        return DeclInfo {
            var_name,
            ..fallback
        };
    }
    let mut l = first as usize;
    let lowest = l.saturating_sub(200).max(1);
    while l >= lowest {
        let Some(text) = lines.get(l - 1) else {
            return fallback;
        };
        if text.starts_with("func ") || text.starts_with("func(") {
            return DeclInfo {
                line: l as u32,
                receiver: receiver_text(text).or(fallback.receiver),
                var_name: None,
            };
        }
        if l < first as usize && text.starts_with('}') {
            break;
        }
        l -= 1;
    }
    fallback
}

/// `func (s *Stack[T]) Push(` → `Stack[T]`.
fn receiver_text(line: &str) -> Option<String> {
    let rest = line.strip_prefix("func")?.trim_start().strip_prefix('(')?;
    let mut depth = 1usize;
    let mut end = None;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let inner = rest[..end?].trim();
    // `s *T`, `*T`, `T`, `s T[K, V]`.
    let ty = match inner.split_once(char::is_whitespace) {
        Some((first, rest)) if !first.starts_with('*') && !first.contains('[') => rest.trim(),
        _ => inner,
    };
    let ty = ty.trim_start_matches('*').trim();
    (!ty.is_empty()).then(|| ty.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_as_written() {
        assert_eq!(
            receiver_text("func (s *Stack[T]) Push(v T) {").as_deref(),
            Some("Stack[T]")
        );
        assert_eq!(
            receiver_text("func (c Cart) Total() int {").as_deref(),
            Some("Cart")
        );
        assert_eq!(receiver_text("func (*Cart) X() {").as_deref(), Some("Cart"));
        assert_eq!(
            receiver_text("func (m M[K, V]) X() {").as_deref(),
            Some("M[K, V]")
        );
        assert_eq!(receiver_text("func f() {"), None);
    }

    #[test]
    fn names_without_receivers() {
        let f = FuncCov {
            package: "p".into(),
            file: "p/a.go".into(),
            name: "*T.M".into(),
            literal: false,
            units: vec![],
        };
        assert_eq!((f.short_name(), f.receiver()), ("M", Some("T")));
    }
}
