//! Which directories of a tree hold a `package main` that Go would build.

use std::fs;
use std::path::{Path, PathBuf};

use crate::constraint::{BuildContext, Expr, file_name_expr};
use crate::error::Error;
use crate::inject::is_injected_name;
use crate::source::parse_header;

/// One directory the walk visited (every directory Go's `./...` would
/// consider, minus nested modules, `vendor` and `node_modules`).
#[derive(Debug, Clone)]
pub struct DirInfo {
    /// Path relative to the walk's root (`.` for the root itself).
    pub rel: PathBuf,
    pub abs: PathBuf,
    /// Non-test `.go` files that build for the context (the injected server
    /// file excluded), with their package names.
    pub files: Vec<(String, String)>,
    /// All `.go` files of the directory that declare `package main`
    /// (test files and constrained-out files included).
    pub main_files: Vec<String>,
    /// At least one compilable non-test file, and all say `package main`.
    pub eligible: bool,
    /// Files named like the ones covfleet injects that the directory holds
    /// (see [`DirInfo::has_injected`]).
    pub injected: Vec<String>,
    /// When the package exists at all: the OR, over its non-test
    /// `package main` files, of each file's constraint (file name, build
    /// line, `cgo` for files importing "C"). `None` when some file always
    /// builds. The injected file carries this constraint, so that building
    /// for another platform, where every host file drops out, does not
    /// leave the server file alone in a `package main` without `main`.
    pub build_condition: Option<Expr>,
    /// Files Go would reject (bad `//go:build` line, no package clause): the
    /// directory is then not eligible.
    pub problems: Vec<String>,
}

impl DirInfo {
    /// Whether the directory holds a file named `name` (one of the names
    /// covfleet injects), whoever wrote it.
    pub fn has_injected(&self, name: &str) -> bool {
        self.injected.iter().any(|n| n == name)
    }
}

/// Walks `root` the way `go list ./...` does: skips directories named
/// `testdata` or starting with `_` or `.`, does not follow symbolic links,
/// and does not enter nested modules (a directory other than `root` with its
/// own `go.mod`). `vendor` and `node_modules` are skipped too. Directories
/// come back in sorted order.
pub fn discover(root: &Path, ctx: &BuildContext) -> Result<Vec<DirInfo>, Error> {
    let meta = fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(Error::NotADir {
            path: root.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    walk(root, Path::new("."), ctx, &mut out)?;
    Ok(out)
}

/// Largest `.go` file read (generated files reach a few MiB).
const MAX_GO_FILE: u64 = 64 << 20;

fn walk(abs: &Path, rel: &Path, ctx: &BuildContext, out: &mut Vec<DirInfo>) -> Result<(), Error> {
    let mut entries: Vec<(String, fs::FileType)> = Vec::new();
    for e in fs::read_dir(abs).map_err(|e| Error::io(abs, e))? {
        let e = e.map_err(|e| Error::io(abs, e))?;
        let ft = e.file_type().map_err(|err| Error::io(e.path(), err))?;
        if let Ok(name) = e.file_name().into_string() {
            entries.push((name, ft));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    out.push(examine_dir(abs, rel, &entries, ctx)?);
    for (name, ft) in &entries {
        if !ft.is_dir()
            || name.starts_with('.')
            || name.starts_with('_')
            || matches!(name.as_str(), "testdata" | "vendor" | "node_modules")
        {
            continue;
        }
        let sub = abs.join(name);
        if sub.join("go.mod").is_file() {
            continue; // a nested module: its own `./...`
        }
        let sub_rel = if rel == Path::new(".") {
            PathBuf::from(name)
        } else {
            rel.join(name)
        };
        walk(&sub, &sub_rel, ctx, out)?;
    }
    Ok(())
}

fn examine_dir(
    abs: &Path,
    rel: &Path,
    entries: &[(String, fs::FileType)],
    ctx: &BuildContext,
) -> Result<DirInfo, Error> {
    let mut info = DirInfo {
        rel: rel.to_path_buf(),
        abs: abs.to_path_buf(),
        files: Vec::new(),
        main_files: Vec::new(),
        build_condition: None,
        eligible: false,
        injected: Vec::new(),
        problems: Vec::new(),
    };
    // Some(conds) while every main file seen so far is constrained.
    let mut conds: Option<Vec<Expr>> = Some(Vec::new());
    for (name, ft) in entries {
        if !name.ends_with(".go") || ft.is_dir() {
            continue;
        }
        if is_injected_name(name) {
            info.injected.push(name.to_string());
            continue;
        }
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let path = abs.join(name);
        let src = match read_go_file(&path) {
            Ok(s) => s,
            // A dangling symlink, unreadable file, FIFO or device: go would
            // fail on it (and reading a FIFO would block forever).
            Err(e) => {
                info.problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let is_test = name.ends_with("_test.go");
        let header = match parse_header(&src) {
            Ok(h) => h,
            Err(e) => {
                if !is_test && ctx.good_os_arch_file(name) {
                    info.problems.push(format!("{}: {e}", path.display()));
                }
                continue;
            }
        };
        if header.package == "main" {
            info.main_files.push(name.clone());
            if !is_test && let Some(list) = conds.as_mut() {
                let mut parts: Vec<Expr> = Vec::new();
                parts.extend(file_name_expr(name));
                parts.extend(header.condition());
                if header.imports_c {
                    parts.push(Expr::Tag("cgo".into()));
                }
                match parts.into_iter().reduce(Expr::and) {
                    Some(c) => list.push(c),
                    None => conds = None,
                }
            }
        }
        if is_test || !ctx.good_os_arch_file(name) {
            continue;
        }
        match header.should_build(ctx) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                info.problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        }
        if header.package == "documentation" || (header.imports_c && !ctx.cgo_enabled) {
            continue;
        }
        info.files.push((name.clone(), header.package));
    }
    info.build_condition = conds.and_then(|c| c.into_iter().reduce(Expr::or));
    info.eligible = info.problems.is_empty()
        && !info.files.is_empty()
        && info.files.iter().all(|(_, pkg)| pkg == "main");
    Ok(info)
}

/// Reads a `.go` file (following symlinks) only when it is a regular file of
/// at most [`MAX_GO_FILE`] bytes: a FIFO named `x.go` would block a read
/// forever, a symlink to `/dev/zero` would never end.
pub(crate) fn read_go_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    if !fs::metadata(path)?.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    // O_NONBLOCK: a FIFO put there after the stat does not block the open.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    let mut buf = Vec::with_capacity(md.len().min(MAX_GO_FILE) as usize);
    f.take(MAX_GO_FILE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_GO_FILE {
        return Err(refuse(format!("larger than {MAX_GO_FILE} bytes")));
    }
    Ok(buf)
}
