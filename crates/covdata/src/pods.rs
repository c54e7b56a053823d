//! Discovering "pods" (a meta-data file and its counter files) in input
//! directories, exactly as `go tool covdata` does (`internal/coverage/pods`).

use std::collections::HashMap;
use std::io;
use std::path::Path;

/// A meta-data file and the counter files that name its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Path of the meta-data file, as Go spells it (`filepath.Join(dir, name)`).
    pub meta_file: String,
    /// Counter files, sorted by (input dir index, path).
    pub counter_files: Vec<String>,
    /// For each counter file, the index of the `-i` directory it came from.
    pub origins: Vec<usize>,
    /// For each counter file, the PID in its name.
    pub pids: Vec<u64>,
}

/// Reads each directory (not recursively) and groups the coverage files into
/// pods, sorted by meta-file path. Errors are those of reading a directory
/// (an empty directory name is an error, as in Go).
pub fn collect_pods<S: AsRef<str>>(dirs: &[S]) -> io::Result<Vec<Pod>> {
    let mut files: Vec<(String, usize)> = Vec::new();
    for (k, dir) in dirs.iter().enumerate() {
        let dir = dir.as_ref();
        if dir.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "open : no such file or directory",
            ));
        }
        let mut names: Vec<String> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| annotate(dir, e))? {
            let entry = entry.map_err(|e| annotate(dir, e))?;
            let ft = entry.file_type().map_err(|e| annotate(dir, e))?;
            if ft.is_dir() {
                continue;
            }
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for n in names {
            files.push((go_join(dir, &n), k));
        }
    }
    Ok(collect_from_files(&files))
}

fn annotate(dir: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("open {dir}: {}", go_errno_text(&e)))
}

/// Go spells OS errors as the bare errno text ("no such file or directory").
pub(crate) fn go_errno_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => {
            let t = &s[..i];
            let mut c = t.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => t.to_string(),
            }
        }
        None => s,
    }
}

/// Groups (path, dir index) pairs into pods.
pub fn collect_from_files(files: &[(String, usize)]) -> Vec<Pod> {
    struct Proto {
        meta: String,
        elems: Vec<(usize, String, u64)>,
    }
    let mut by_tag: HashMap<&str, Proto> = HashMap::new();
    for (f, _) in files {
        if let Some(tag) = meta_tag(base(f)) {
            by_tag.entry(tag).or_insert_with(|| Proto {
                meta: f.clone(),
                elems: Vec::new(),
            });
        }
    }
    for (f, k) in files {
        if let Some((tag, pid)) = counter_tag(base(f))
            && let Some(p) = by_tag.get_mut(tag)
        {
            p.elems.push((*k, f.clone(), pid));
        }
    }
    let mut pods: Vec<Pod> = by_tag
        .into_values()
        .map(|mut p| {
            p.elems
                .sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            Pod {
                meta_file: p.meta,
                origins: p.elems.iter().map(|e| e.0).collect(),
                pids: p.elems.iter().map(|e| e.2).collect(),
                counter_files: p.elems.into_iter().map(|e| e.1).collect(),
            }
        })
        .collect();
    pods.sort_by(|a, b| a.meta_file.cmp(&b.meta_file));
    pods
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Go's `\S`: not one of `\t \n \f \r` or space.
fn is_go_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// `^covmeta\.(\S+)$`
pub fn meta_tag(name: &str) -> Option<&str> {
    let tag = name.strip_prefix("covmeta.")?;
    (!tag.is_empty() && !tag.contains(is_go_space)).then_some(tag)
}

/// `^covcounters\.(\S+)\.(\d+)\.(\d+)+$` → (tag, pid); a PID that overflows
/// is skipped as Go's `strconv.Atoi` fails on it.
pub fn counter_tag(name: &str) -> Option<(&str, u64)> {
    let rest = name.strip_prefix("covcounters.")?;
    let mut it = rest.rsplitn(3, '.');
    let last = it.next()?;
    let pid = it.next()?;
    let tag = it.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(last) || !digits(pid) || tag.is_empty() || tag.contains(is_go_space) {
        return None;
    }
    let pid: i64 = pid.parse().ok()?;
    Some((tag, pid as u64))
}

/// Go's `filepath.Join(dir, name)` (joins, then cleans).
pub fn go_join(dir: &str, name: &str) -> String {
    go_clean(&format!("{dir}/{name}"))
}

/// Go's `filepath.Clean` for Unix paths.
pub fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|p| *p != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// True when `path` names a directory entry covdata would treat as coverage data.
pub fn is_coverage_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| meta_tag(n).is_some() || counter_tag(n).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names_follow_go_regexp() {
        assert_eq!(counter_tag("covcounters.abc.7.8"), Some(("abc", 7)));
        // Greedy \S+: the tag takes all but the last two fields.
        assert_eq!(counter_tag("covcounters.H.7.8.9"), Some(("H.7", 8)));
        assert_eq!(counter_tag("covcounters.H.7.x"), None);
        assert_eq!(counter_tag("covcounters.H.99999999999999999999.1"), None);
        assert_eq!(meta_tag("covmeta.x y"), None);
        assert_eq!(meta_tag("tmp.covmeta.x"), None);
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(go_join("./cov/", "x"), "cov/x");
        assert_eq!(go_join("/a/../b", "x"), "/b/x");
        assert_eq!(go_join("..", "x"), "../x");
        assert_eq!(go_clean("a/../.."), "..");
    }
}
