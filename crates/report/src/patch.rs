//! Patch coverage: of the lines changed between two commits, which the
//! collection ran, per owner and per file.
//!
//! The change set comes from the real git (`git diff -M -U0` between the two
//! revisions), parsed exactly: added and modified files contribute the lines
//! the diff adds, renamed files are followed to their new path (a pure rename
//! changes no line), deleted files are listed, binary files skipped. A
//! changed line counts when some block of an owner's coverage spans it:
//! `run` when a block spanning it ran (`partial` when others did not),
//! `missed` otherwise; changed lines no block spans (comments, blank lines,
//! files without coverage such as tests or docs) are not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::cov::{Error, OwnerCov, OwnerPaths};

/// How a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Added,
    Modified,
    Renamed,
    Deleted,
}

/// One file of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// Path before (none for added files).
    pub old_path: Option<String>,
    /// Path after (none for deleted files).
    pub new_path: Option<String>,
    pub status: Status,
    pub binary: bool,
    /// Lines of the new file the diff adds or changes, ascending.
    pub lines: Vec<u32>,
}

/// Unquotes a path git printed in C style (`"a/t\303\251st\tx"`).
fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) else {
        return s.to_string();
    };
    let b = inner.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        i += 2;
        out.push(match c {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut k = 0;
                while k < 2 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + u32::from(b[i] - b'0');
                    i += 1;
                    k += 1;
                }
                (v & 0xff) as u8
            }
            other => other,
        });
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path of a `---`/`+++` line: `None` for `/dev/null`.
fn header_path(rest: &str, prefix: &str) -> Option<String> {
    let rest = rest.trim_end_matches('\t');
    if rest == "/dev/null" {
        return None;
    }
    let p = unquote(rest);
    Some(p.strip_prefix(prefix).map_or(p.clone(), str::to_string))
}

/// `@@ -a[,b] +c[,d] @@` → (c, d).
fn hunk_new_range(line: &str) -> Option<(u32, u32)> {
    let plus = line.split_whitespace().find(|w| w.starts_with('+'))?;
    let r = &plus[1..];
    let (start, len) = match r.split_once(',') {
        Some((s, l)) => (s.parse().ok()?, l.parse().ok()?),
        None => (r.parse().ok()?, 1),
    };
    Some((start, len))
}

/// Parses `git diff -M -U0 --src-prefix=a/ --dst-prefix=b/` output.
pub fn parse_diff(text: &str) -> Vec<FileChange> {
    let mut out: Vec<FileChange> = Vec::new();
    let mut cur: Option<FileChange> = None;
    let mut next_line: u32 = 0;
    let mut in_hunk = false;
    for line in text.split('\n') {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            out.extend(cur.take());
            // The paths are taken from the lines below; this one only seeds them.
            let (a, b) = split_git_header(rest);
            cur = Some(FileChange {
                old_path: a,
                new_path: b,
                status: Status::Modified,
                binary: false,
                lines: Vec::new(),
            });
            in_hunk = false;
            continue;
        }
        let Some(c) = cur.as_mut() else { continue };
        if in_hunk {
            match line.as_bytes().first() {
                Some(b'+') => {
                    c.lines.push(next_line);
                    next_line += 1;
                    continue;
                }
                Some(b'-') | Some(b'\\') => continue,
                Some(b' ') => {
                    next_line += 1;
                    continue;
                }
                _ => in_hunk = false,
            }
        }
        if line.starts_with("@@ ") {
            if let Some((start, _)) = hunk_new_range(line) {
                next_line = start;
                in_hunk = true;
            }
        } else if let Some(p) = line.strip_prefix("rename from ") {
            c.old_path = Some(unquote(p));
            c.status = Status::Renamed;
        } else if let Some(p) = line.strip_prefix("rename to ") {
            c.new_path = Some(unquote(p));
            c.status = Status::Renamed;
        } else if line.starts_with("new file mode") {
            c.status = Status::Added;
            c.old_path = None;
        } else if line.starts_with("deleted file mode") {
            c.status = Status::Deleted;
            c.new_path = None;
        } else if line.starts_with("Binary files ") || line == "GIT binary patch" {
            c.binary = true;
        } else if let Some(p) = line.strip_prefix("--- ") {
            c.old_path = header_path(p, "a/");
        } else if let Some(p) = line.strip_prefix("+++ ") {
            c.new_path = header_path(p, "b/");
        }
    }
    out.extend(cur);
    out
}

/// `a/x b/y` (possibly quoted) → (x, y); ambiguous unquoted names with
/// spaces fall back to the `---`/`+++`/rename lines.
fn split_git_header(rest: &str) -> (Option<String>, Option<String>) {
    if let Some(q) = rest.strip_prefix('"')
        && let Some(end) = q.find("\" ").map(|i| i + 1)
    {
        let a = unquote(&rest[..=end]);
        let b = unquote(rest[end + 2..].trim());
        return (
            Some(a.strip_prefix("a/").unwrap_or(&a).to_string()),
            Some(b.strip_prefix("b/").unwrap_or(&b).to_string()),
        );
    }
    // Unquoted: both halves are equal for non-renames.
    let half = rest.len() / 2;
    if rest.len() % 2 == 1
        && rest.as_bytes().get(half) == Some(&b' ')
        && let (Some(a), Some(b)) = (rest.get(..half), rest.get(half + 1..))
        && a.strip_prefix("a/") == b.strip_prefix("b/")
    {
        let p = a.strip_prefix("a/").map(str::to_string);
        return (p.clone(), p);
    }
    (None, None)
}

fn git(repo: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "core.quotePath=true"])
        .args(args)
        .output()
        .map_err(|e| Error::Git {
            repo: repo.to_path_buf(),
            args: args.join(" "),
            why: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Git {
            repo: repo.to_path_buf(),
            args: args.join(" "),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The files changed between two revisions of a repository.
pub fn git_changes(repo: &Path, base: &str, head: &str) -> Result<Vec<FileChange>, Error> {
    let rev = |r: &str| -> Result<String, Error> {
        Ok(git(
            repo,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{r}^{{commit}}"),
            ],
        )?
        .trim()
        .to_string())
    };
    let (b, h) = (rev(base)?, rev(head)?);
    let text = git(
        repo,
        &[
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "-M",
            "-U0",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            &b,
            &h,
        ],
    )?;
    Ok(parse_diff(&text))
}

/// The repository's top directory.
pub fn repo_top(repo: &Path) -> Result<PathBuf, Error> {
    Ok(PathBuf::from(
        git(repo, &["rev-parse", "--show-toplevel"])?.trim(),
    ))
}

/// Changed lines of one file for one owner (or all owners).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FilePatch {
    /// Repository-relative path (HEAD's).
    pub path: String,
    /// Changed lines some block spans.
    pub coverable: u64,
    /// … of which a block spanning them ran.
    pub run: u64,
    /// … of which only some of the blocks spanning them ran.
    pub partial: u64,
    pub missed_lines: Vec<u32>,
    pub pct: f64,
}

/// One owner's patch coverage.
#[derive(Debug, Clone, Serialize)]
pub struct OwnerPatch {
    pub namespace: String,
    pub owner_type: String,
    pub owner: String,
    pub binary: String,
    pub coverable: u64,
    pub run: u64,
    pub pct: f64,
    pub files: Vec<FilePatch>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct PatchReport {
    pub changes: Vec<FileChange>,
    pub owners: Vec<OwnerPatch>,
    /// Every owner together: a line counts as run when any owner ran it.
    pub files: Vec<FilePatch>,
    pub coverable: u64,
    pub run: u64,
    /// 100 when no coverable line changed.
    pub pct: f64,
    /// Changed (added/modified/renamed) files no owner has coverage of.
    pub files_without_coverage: Vec<String>,
}

/// Per line of a file: (any block ran, any block did not).
type LineState = BTreeMap<u32, (bool, bool)>;

fn pct(run: u64, all: u64) -> f64 {
    if all == 0 {
        100.0
    } else {
        100.0 * run as f64 / all as f64
    }
}

fn file_patch(path: &str, lines: &[u32], state: &LineState) -> Option<FilePatch> {
    let mut fp = FilePatch {
        path: path.to_string(),
        ..FilePatch::default()
    };
    for l in lines {
        if let Some((ran, unran)) = state.get(l) {
            fp.coverable += 1;
            if *ran {
                fp.run += 1;
                if *unran {
                    fp.partial += 1;
                }
            } else {
                fp.missed_lines.push(*l);
            }
        }
    }
    fp.pct = pct(fp.run, fp.coverable);
    (fp.coverable > 0).then_some(fp)
}

/// Computes the patch coverage of owners (with their paths resolved into the
/// repository, relative to its top) for a change set.
pub fn patch_coverage(changes: Vec<FileChange>, owners: &[(OwnerCov, OwnerPaths)]) -> PatchReport {
    let changed: BTreeMap<&str, &[u32]> = changes
        .iter()
        .filter(|c| !c.binary && c.status != Status::Deleted)
        .filter_map(|c| Some((c.new_path.as_deref()?, c.lines.as_slice())))
        .collect();
    let mut union: BTreeMap<String, LineState> = BTreeMap::new();
    let mut with_cov: BTreeSet<String> = BTreeSet::new();
    let mut out_owners = Vec::new();
    for (c, paths) in owners {
        let mut per_file: BTreeMap<String, LineState> = BTreeMap::new();
        for f in c.funcs() {
            let rel = paths.rel(&f.file);
            if !changed.contains_key(rel) {
                continue;
            }
            let st = per_file.entry(rel.to_string()).or_default();
            for (u, n) in &f.units {
                for l in u.st_line..=u.en_line.max(u.st_line) {
                    let e = st.entry(l).or_insert((false, false));
                    if *n > 0 {
                        e.0 = true;
                    } else {
                        e.1 = true;
                    }
                }
            }
        }
        let mut op = OwnerPatch {
            namespace: c.owner.namespace.clone(),
            owner_type: c.owner.owner_type.clone(),
            owner: c.owner.owner_name.clone(),
            binary: c.owner.binary_name.clone(),
            coverable: 0,
            run: 0,
            pct: 0.0,
            files: Vec::new(),
        };
        for (path, st) in per_file {
            with_cov.insert(path.clone());
            if let Some(fp) = file_patch(&path, changed[path.as_str()], &st) {
                op.coverable += fp.coverable;
                op.run += fp.run;
                op.files.push(fp);
            }
            let u = union.entry(path).or_default();
            for (l, (ran, unran)) in st {
                let e = u.entry(l).or_insert((false, false));
                e.0 |= ran;
                e.1 |= unran;
            }
        }
        op.pct = pct(op.run, op.coverable);
        if op.coverable > 0 {
            out_owners.push(op);
        }
    }
    let mut files = Vec::new();
    let (mut coverable, mut run) = (0, 0);
    for (path, st) in &union {
        // Across owners a line ran when any owner ran it.
        let st: LineState = st.iter().map(|(l, (r, u))| (*l, (*r, *u && !*r))).collect();
        if let Some(fp) = file_patch(path, changed[path.as_str()], &st) {
            coverable += fp.coverable;
            run += fp.run;
            files.push(fp);
        }
    }
    let files_without_coverage = changed
        .keys()
        .filter(|p| !with_cov.contains(**p))
        .map(|p| p.to_string())
        .collect();
    PatchReport {
        changes,
        owners: out_owners,
        files,
        coverable,
        run,
        pct: pct(run, coverable),
        files_without_coverage,
    }
}

/// The text report.
pub fn format_text(r: &PatchReport) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    for op in &r.owners {
        let _ = writeln!(
            o,
            "{}/{} ({} {}): {:.1}% of {} changed lines ran",
            op.namespace, op.owner, op.owner_type, op.binary, op.pct, op.coverable
        );
        for f in &op.files {
            let _ = writeln!(
                o,
                "  {:<50} {:>4}/{:<4} {:>5.1}%  missed: {}",
                f.path,
                f.run,
                f.coverable,
                f.pct,
                crate::diff_html::ranges(&f.missed_lines)
            );
        }
    }
    if !r.owners.is_empty() {
        o.push('\n');
    }
    for c in &r.changes {
        let what = match (c.status, &c.old_path, &c.new_path) {
            (Status::Renamed, Some(a), Some(b)) => format!("renamed {a} → {b}"),
            (Status::Deleted, Some(a), _) => format!("deleted {a}"),
            _ => continue,
        };
        let _ = writeln!(o, "{what}");
    }
    if !r.files_without_coverage.is_empty() {
        let _ = writeln!(
            o,
            "changed files without coverage: {}",
            r.files_without_coverage.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "patch coverage: {:.1}% ({} of {} changed coverable lines ran{})",
        r.pct,
        r.run,
        r.coverable,
        if r.coverable == 0 {
            "; none changed"
        } else {
            ""
        }
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_with_renames_deletions_and_quoting() {
        let text = "diff --git a/x.go b/x.go\nindex 1..2 100644\n--- a/x.go\n+++ b/x.go\n\
@@ -3,0 +4,2 @@ func f() {\n+a\n+b\n@@ -10 +12 @@\n-old\n+new\n\\ No newline at end of file\n\
diff --git a/old.go b/new.go\nsimilarity index 90%\nrename from old.go\nrename to new.go\n\
index 1..2 100644\n--- a/old.go\n+++ b/new.go\n@@ -1 +1 @@\n-x\n+y\n\
diff --git a/gone.go b/gone.go\ndeleted file mode 100644\nindex 1..0\n--- a/gone.go\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n\
diff --git \"a/t\\303\\251st.go\" \"b/t\\303\\251st.go\"\nnew file mode 100644\n--- /dev/null\n+++ \"b/t\\303\\251st.go\"\n@@ -0,0 +1 @@\n+package t\n\
diff --git a/pure.go b/moved.go\nsimilarity index 100%\nrename from pure.go\nrename to moved.go\n\
diff --git a/i.png b/i.png\nBinary files a/i.png and b/i.png differ\n";
        let c = parse_diff(text);
        assert_eq!(c.len(), 6);
        assert_eq!(
            (c[0].new_path.as_deref(), &c[0].lines[..]),
            (Some("x.go"), &[4, 5, 12][..])
        );
        assert_eq!(
            (
                c[1].status,
                c[1].old_path.as_deref(),
                c[1].new_path.as_deref(),
                &c[1].lines[..]
            ),
            (Status::Renamed, Some("old.go"), Some("new.go"), &[1][..])
        );
        assert_eq!(
            (c[2].status, c[2].new_path.as_deref()),
            (Status::Deleted, None)
        );
        assert_eq!(c[2].old_path.as_deref(), Some("gone.go"));
        assert_eq!(
            (c[3].status, c[3].new_path.as_deref()),
            (Status::Added, Some("tést.go"))
        );
        assert_eq!(
            (c[4].status, c[4].new_path.as_deref(), c[4].lines.len()),
            (Status::Renamed, Some("moved.go"), 0)
        );
        assert!(c[5].binary);
    }
}
