//! Finding a row's source tree and each file in it.
//!
//! Checkouts live in `DIR/repos/<host>/<org>/<repo>/<commit8>/` (what
//! `covfleet clone-sources` writes); more roots can be given explicitly.
//! A row's tree is found in three steps, cheapest first:
//!
//! 1. **image labels**: the row's source URL and commit name the checkout
//!    directly;
//! 2. **Go module path**: the `go.mod` module (at a checkout's root, or
//!    nested up to four directories down) that the binary was built from, else
//!    the one whose path prefixes most of the row's file paths (a module
//!    renamed between organisations matches on its repository name);
//! 3. **owner name**: a checkout whose repository is named like the owner or
//!    the binary.
//!
//! Paths in coverage data are rewritten to the checkout: `/workspace/…`
//! (container builds), `/go/src/<module>/…` (GOPATH builds), `<module>/…`, a
//! module renamed between organisations, and as a last resort the shortest
//! suffix of the path (at least `dir/file`) that exists in the checkout.
//! Paths with `..` components are never followed.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use crate::model::{FileCoverage, OwnerRow};

/// How a row's source tree was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    ImageLabels,
    ModulePath,
    OwnerName,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::ImageLabels => "image labels",
            Strategy::ModulePath => "module path",
            Strategy::OwnerName => "owner name",
        }
    }
}

/// A checkout (or another source root) with its module path, if any.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub root: PathBuf,
    /// `module` line of the root `go.mod`.
    pub module: Option<String>,
    /// The `<repo>` component of `repos/<host>/<org>/<repo>/<commit8>`.
    pub repo_name: Option<String>,
    /// A module in a subdirectory of a checkout.
    pub nested: bool,
}

/// The tree chosen for a row.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub checkout: Checkout,
    pub strategy: Strategy,
}

/// An index of the available checkouts, built lazily on first use.
#[derive(Debug)]
pub struct SourceIndex {
    repos_dir: PathBuf,
    extra_roots: Vec<PathBuf>,
    checkouts: OnceLock<Vec<Checkout>>,
}

/// Largest source file read (bigger ones are listed without source).
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;

impl SourceIndex {
    pub fn new(repos_dir: impl Into<PathBuf>, extra_roots: Vec<PathBuf>) -> SourceIndex {
        SourceIndex {
            repos_dir: repos_dir.into(),
            extra_roots,
            checkouts: OnceLock::new(),
        }
    }

    /// All known checkouts: `repos/*/*/*/*` plus the extra roots.
    pub fn checkouts(&self) -> &[Checkout] {
        self.checkouts.get_or_init(|| {
            let mut out = Vec::new();
            for root in &self.extra_roots {
                out.push(Checkout {
                    root: root.clone(),
                    module: read_module(root),
                    repo_name: root.file_name().map(|n| n.to_string_lossy().into_owned()),
                    nested: false,
                });
            }
            for commit_dir in dirs_at_depth(&self.repos_dir, 4) {
                let repo_name = commit_dir
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned());
                // Modules in subdirectories (monorepos) count as trees of their own.
                for dir in nested_modules(&commit_dir, NESTED_MODULE_DEPTH) {
                    out.push(Checkout {
                        module: read_module(&dir),
                        root: dir,
                        repo_name: repo_name.clone(),
                        nested: true,
                    });
                }
                out.push(Checkout {
                    module: read_module(&commit_dir),
                    root: commit_dir,
                    repo_name,
                    nested: false,
                });
            }
            out
        })
    }

    /// Finds the source tree of a row (see the module docs for the order).
    pub fn resolve(&self, row: &OwnerRow, files: &[FileCoverage]) -> Option<Resolved> {
        if let Some(c) = self.by_labels(row, files) {
            return Some(Resolved {
                checkout: c,
                strategy: Strategy::ImageLabels,
            });
        }
        if let Some(c) = self.by_module(row.module_path.as_deref(), files) {
            return Some(Resolved {
                checkout: c,
                strategy: Strategy::ModulePath,
            });
        }
        self.by_owner(row).map(|c| Resolved {
            checkout: c,
            strategy: Strategy::OwnerName,
        })
    }

    fn by_labels(&self, row: &OwnerRow, files: &[FileCoverage]) -> Option<Checkout> {
        let (host, org, repo) = parse_repo_url(row.source_url.as_deref()?)?;
        let repo_dir = self.repos_dir.join(&host).join(&org).join(&repo);
        let dir = match row.source_commit.as_deref().filter(|c| !c.is_empty()) {
            Some(commit) => {
                let prefix: String = commit.chars().take(8).collect();
                if !is_safe_component(&prefix) {
                    return None;
                }
                repo_dir.join(prefix)
            }
            None => {
                // Without a commit, only an unambiguous single checkout will do.
                let subdirs = dirs_at_depth(&repo_dir, 1);
                if subdirs.len() != 1 {
                    return None;
                }
                subdirs.into_iter().next()?
            }
        };
        if !dir.is_dir() {
            return None;
        }
        // The checkout, or the module inside it that the binary was built from.
        let inside: Vec<&Checkout> = self
            .checkouts()
            .iter()
            .filter(|c| c.root.starts_with(&dir) && c.root != dir)
            .collect();
        if let Some(c) = choose(&inside, row.module_path.as_deref(), files) {
            let root_module = read_module(&dir);
            let matches_root = root_module.as_deref().is_some_and(|m| {
                row.module_path.as_deref() == Some(m)
                    || files
                        .iter()
                        .any(|f| has_prefix_dir(strip_gopath(&f.path), m))
            });
            if !matches_root {
                return Some(c.clone());
            }
        }
        Some(Checkout {
            module: read_module(&dir),
            root: dir,
            repo_name: Some(repo),
            nested: false,
        })
    }

    fn by_module(&self, module: Option<&str>, files: &[FileCoverage]) -> Option<Checkout> {
        let all: Vec<&Checkout> = self.checkouts().iter().collect();
        choose(&all, module, files).cloned()
    }

    fn by_owner(&self, row: &OwnerRow) -> Option<Checkout> {
        for name in [&row.owner, &row.binary] {
            if name.is_empty() {
                continue;
            }
            let found = self
                .checkouts()
                .iter()
                .filter(|c| !c.nested && c.repo_name.as_deref() == Some(name.as_str()))
                .max_by(|a, b| a.root.cmp(&b.root));
            if let Some(c) = found {
                return Some(c.clone());
            }
        }
        None
    }
}

/// The candidate whose module is the binary's own module (from its
/// meta-data), else the one whose module prefixes most file paths (exact
/// prefixes beat renamed organisations; ties go to the earlier candidate).
fn choose<'a>(
    cands: &[&'a Checkout],
    module: Option<&str>,
    files: &[FileCoverage],
) -> Option<&'a Checkout> {
    if let Some(m) = module.filter(|m| !m.is_empty()) {
        let exact = cands.iter().find(|c| c.module.as_deref() == Some(m));
        let renamed = || {
            cands.iter().find(|c| {
                c.module
                    .as_deref()
                    .is_some_and(|cm| renamed_rel(&format!("{m}/x.go"), cm).is_some())
            })
        };
        if let Some(c) = exact.or_else(renamed) {
            return Some(c);
        }
    }
    let mut votes: HashMap<usize, (usize, bool)> = HashMap::new();
    for f in files {
        let p = strip_gopath(&f.path);
        if p.starts_with('/') {
            continue;
        }
        let mut best: Option<(usize, usize, bool)> = None; // (index, module len, exact)
        for (i, c) in cands.iter().enumerate() {
            let Some(m) = c.module.as_deref() else {
                continue;
            };
            if has_prefix_dir(p, m) {
                if best.is_none_or(|(_, len, exact)| !exact || m.len() > len) {
                    best = Some((i, m.len(), true));
                }
            } else if best.is_none() && renamed_rel(p, m).is_some() {
                best = Some((i, m.len(), false));
            }
        }
        if let Some((i, _, exact)) = best {
            votes.entry(i).or_insert((0, exact)).0 += 1;
        }
    }
    votes
        .into_iter()
        .max_by(|a, b| {
            (a.1.0, a.1.1, std::cmp::Reverse(a.0)).cmp(&(b.1.0, b.1.1, std::cmp::Reverse(b.0)))
        })
        .map(|(i, _)| cands[i])
}

/// Maps a coverage file path to a file inside the checkout, if it exists.
pub fn locate(checkout: &Checkout, path: &str) -> Option<PathBuf> {
    let root = &checkout.root;
    let mut candidates: Vec<String> = Vec::new();
    if let Some(rest) = path.strip_prefix("/workspace/") {
        candidates.push(rest.to_string());
    }
    let p = strip_gopath(path);
    if let Some(m) = checkout.module.as_deref() {
        if let Some(rel) = p.strip_prefix(m).and_then(|r| r.strip_prefix('/')) {
            candidates.push(rel.to_string());
        } else if let Some(rel) = renamed_rel(p, m) {
            candidates.push(rel);
        }
    }
    for rel in &candidates {
        if let Some(f) = existing_file(root, rel) {
            return Some(f);
        }
    }
    // Last resort: the shortest suffix (at least dir/file) that exists.
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let min_keep = comps.len().min(2);
    for skip in 0..=comps.len().saturating_sub(min_keep) {
        let rel = comps[skip..].join("/");
        if let Some(f) = existing_file(root, &rel) {
            return Some(f);
        }
    }
    None
}

/// Reads a located source file (lossy UTF-8); `None` when unreadable or too big.
pub fn read_source(file: &Path) -> Option<String> {
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() || meta.len() > MAX_SOURCE_BYTES {
        return None;
    }
    let bytes = std::fs::read(file).ok()?;
    Some(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

fn existing_file(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel_path = Path::new(rel);
    if rel.is_empty()
        || !rel_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let full = root.join(rel_path);
    if !full.is_file() {
        return None;
    }
    // Never through a symlink that leaves the checkout: a repository named
    // by a pod could point `handlers.go` at a file of this machine.
    let real = full.canonicalize().ok()?;
    let real_root = root.canonicalize().ok()?;
    real.starts_with(&real_root).then_some(full)
}

fn strip_gopath(path: &str) -> &str {
    path.strip_prefix("/go/src/").unwrap_or(path)
}

fn has_prefix_dir(path: &str, module: &str) -> bool {
    path.strip_prefix(module)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// `github.com/old-org/repo/pkg/f.go` against module
/// `github.com/new-org/repo[/sub]`: same host and repository name, another
/// organisation. Returns the path relative to the module root.
fn renamed_rel(path: &str, module: &str) -> Option<String> {
    let m: Vec<&str> = module.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    if m.len() < 3 || p.len() <= m.len() || m[0] != p[0] || m[2] != p[2] || m[1] == p[1] {
        return None;
    }
    if m[3..] != p[3..m.len()] {
        return None;
    }
    Some(p[m.len()..].join("/"))
}

/// `(host, org, repo)` from `https://host/org/repo(.git)`, `git@host:org/repo.git`,
/// `ssh://git@host/org/repo` or `host/org/repo`.
pub fn parse_repo_url(url: &str) -> Option<(String, String, String)> {
    let url = url.trim();
    let rest = if let Some(i) = url.find("://") {
        let after = &url[i + 3..];
        after.rsplit_once('@').map_or(after, |(_, h)| h).to_string()
    } else if let Some((user_host, path)) = url.split_once(':').filter(|(h, _)| h.contains('@')) {
        let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
        format!("{host}/{path}")
    } else {
        url.to_string()
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let mut parts = rest.split('/').filter(|s| !s.is_empty());
    let host = parts.next()?;
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let org = parts.next()?;
    let repo = parts.next()?;
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    if ![host.as_str(), org, repo]
        .iter()
        .all(|c| is_safe_component(c))
    {
        return None;
    }
    Some((host, org.to_string(), repo.to_string()))
}

fn is_safe_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

/// The module path declared in `dir/go.mod`.
pub fn read_module(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("go.mod")).ok()?;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or_default().trim();
        if let Some(rest) = line.strip_prefix("module") {
            if !rest.starts_with([' ', '\t', '"']) {
                continue;
            }
            let m = rest.trim().trim_matches('"').trim_matches('`');
            if !m.is_empty() {
                return Some(m.to_string());
            }
        }
    }
    None
}

/// How deep below a checkout's root `go.mod` files of nested modules are looked for.
const NESTED_MODULE_DEPTH: usize = 4;

/// Directories below `root` (not `root` itself) holding a `go.mod`, at most
/// `depth` levels down; `vendor`, `testdata` and hidden directories skipped.
fn nested_modules(root: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut level = vec![root.to_path_buf()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for d in &level {
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') || name == "vendor" || name == "testdata" {
                    continue;
                }
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let p = e.path();
                    if p.join("go.mod").is_file() {
                        out.push(p.clone());
                    }
                    next.push(p);
                }
            }
        }
        level = next;
    }
    out.sort();
    out
}

fn dirs_at_depth(base: &Path, depth: usize) -> Vec<PathBuf> {
    let mut level = vec![base.to_path_buf()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for d in &level {
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    next.push(e.path());
                }
            }
        }
        next.sort();
        level = next;
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_urls_of_every_shape() {
        let want = Some(("github.com".into(), "openshift".into(), "api".into()));
        assert_eq!(parse_repo_url("https://github.com/openshift/api"), want);
        assert_eq!(parse_repo_url("https://github.com/openshift/api.git"), want);
        assert_eq!(parse_repo_url("git@github.com:openshift/api.git"), want);
        assert_eq!(parse_repo_url("ssh://git@github.com/openshift/api"), want);
        assert_eq!(parse_repo_url("github.com/openshift/api/"), want);
        assert_eq!(parse_repo_url("https://github.com/../x"), None);
        assert_eq!(parse_repo_url("nonsense"), None);
    }

    #[test]
    fn renamed_modules_match_on_repo_name() {
        assert_eq!(
            renamed_rel(
                "github.com/coreos/prometheus-operator/pkg/a.go",
                "github.com/prometheus-operator/prometheus-operator"
            )
            .as_deref(),
            Some("pkg/a.go")
        );
        assert_eq!(
            renamed_rel("github.com/x/other/a.go", "github.com/y/repo"),
            None
        );
        assert_eq!(
            renamed_rel("github.com/y/repo/a.go", "github.com/y/repo"),
            None
        );
    }

    #[test]
    fn module_lines() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("go.mod"),
            "// c\nmodule \"example.com/m\" // x\n\ngo 1.22\n",
        )
        .unwrap();
        assert_eq!(read_module(d.path()).as_deref(), Some("example.com/m"));
    }

    #[test]
    fn paths_are_rewritten_into_the_checkout() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("repo");
        std::fs::create_dir_all(root.join("pkg/sub")).unwrap();
        std::fs::write(root.join("pkg/sub/a.go"), "package sub\n").unwrap();
        let c = Checkout {
            root: root.clone(),
            module: Some("github.com/new/repo".into()),
            repo_name: Some("repo".into()),
            nested: false,
        };
        let want = Some(root.join("pkg/sub/a.go"));
        for path in [
            "github.com/new/repo/pkg/sub/a.go",
            "/go/src/github.com/new/repo/pkg/sub/a.go",
            "/workspace/pkg/sub/a.go",
            "github.com/old/repo/pkg/sub/a.go",
            "/home/builder/src/repo/pkg/sub/a.go",
        ] {
            assert_eq!(locate(&c, path), want, "{path}");
        }
        assert_eq!(locate(&c, "github.com/new/repo/pkg/sub/missing.go"), None);
        // A bare file name is too ambiguous to match by suffix.
        std::fs::write(root.join("main.go"), "package main\n").unwrap();
        assert_eq!(locate(&c, "/elsewhere/main.go"), None);
    }

    #[test]
    fn modules_nested_in_a_checkout_are_found() {
        let d = tempfile::tempdir().unwrap();
        let repos = d.path().join("repos");
        let mono = repos.join("github.com/acme/mono/cccccccc");
        let api = mono.join("services/api");
        std::fs::create_dir_all(api.join("server")).unwrap();
        std::fs::create_dir_all(mono.join("vendor/x")).unwrap();
        std::fs::write(api.join("go.mod"), "module example.com/api\n").unwrap();
        std::fs::write(mono.join("vendor/x/go.mod"), "module example.com/api\n").unwrap();
        std::fs::write(api.join("server/s.go"), "package server\n").unwrap();
        let files = vec![FileCoverage::from_blocks(
            "example.com/api/server/s.go",
            vec![],
        )];
        let index = SourceIndex::new(&repos, vec![]);
        let mut row = OwnerRow {
            owner: "mono".into(),
            source_url: Some("https://github.com/acme/mono".into()),
            source_commit: Some("cccccccc1111".into()),
            ..OwnerRow::default()
        };
        for strategy in [Strategy::ImageLabels, Strategy::ModulePath] {
            let r = index.resolve(&row, &files).unwrap();
            assert_eq!(r.strategy, strategy);
            assert_eq!(r.checkout.root, api, "{strategy:?}");
            assert_eq!(
                locate(&r.checkout, &files[0].path),
                Some(api.join("server/s.go"))
            );
            row.source_url = None;
        }
        // By owner name: the checkout itself, not a module inside it.
        let r = index.resolve(&row, &[]).unwrap();
        assert_eq!((r.strategy, r.checkout.root), (Strategy::OwnerName, mono));
    }

    #[test]
    fn dotdot_is_never_followed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("r/pkg")).unwrap();
        std::fs::write(d.path().join("secret.go"), "x").unwrap();
        let c = Checkout {
            root: d.path().join("r"),
            module: Some("example.com/m".into()),
            repo_name: None,
            nested: false,
        };
        assert_eq!(locate(&c, "example.com/m/../secret.go"), None);
        assert_eq!(locate(&c, "/workspace/../secret.go"), None);
    }

    /// Issue 13 #1: a file of the checkout that is a symlink out of it (to a
    /// file of the machine rendering the site) is never read; one to a file
    /// inside the checkout is.
    #[test]
    fn issue13_1_symlinks_leaving_the_checkout_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("r/pkg")).unwrap();
        std::fs::write(d.path().join("secret.txt"), "root:x:0:0").unwrap();
        std::fs::write(d.path().join("r/pkg/real.go"), "package pkg").unwrap();
        std::os::unix::fs::symlink(
            d.path().join("secret.txt"),
            d.path().join("r/pkg/handlers.go"),
        )
        .unwrap();
        std::os::unix::fs::symlink("real.go", d.path().join("r/pkg/alias.go")).unwrap();
        std::os::unix::fs::symlink(d.path(), d.path().join("r/up")).unwrap();
        let c = Checkout {
            root: d.path().join("r"),
            module: Some("example.com/m".into()),
            repo_name: None,
            nested: false,
        };
        assert_eq!(locate(&c, "example.com/m/pkg/handlers.go"), None);
        assert_eq!(locate(&c, "example.com/m/up/secret.txt"), None);
        assert_eq!(
            locate(&c, "example.com/m/pkg/alias.go"),
            Some(d.path().join("r/pkg/alias.go"))
        );
    }
}
