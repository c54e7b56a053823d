//! `covfleet clone-sources`: each binary's source at its commit, under
//! `DIR/repos/<host>/<org>/<repo>/<commit8>/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::CloneError;

/// One repository at one commit to check out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CloneTarget {
    pub url: String,
    /// Empty: the default branch.
    pub commit: String,
    pub dest: PathBuf,
}

/// What happened to one target.
#[derive(Debug)]
pub enum CloneOutcome {
    /// Checked out at the requested commit.
    Cloned,
    /// The server refused the commit: the default branch is checked out.
    DefaultBranch {
        /// Why the commit could not be fetched.
        cause: CloneError,
    },
    /// Already present (`--skip-existing`).
    Skipped,
    /// Nothing was checked out.
    Failed(CloneError),
}

/// A repository and commit recorded in the database from which no
/// `repos/<host>/<org>/<repo>/<commit8>` path can be derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    pub url: String,
    pub commit: String,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at {:?}: cannot derive repos/<host>/<org>/<repo>/<commit8> from it",
            self.url, self.commit
        )
    }
}

/// Which source URLs `clone-sources` may fetch. Source URLs come from pods
/// (untrusted): by default only `https` to any host; `file://` (local
/// repositories: their files would end up in the site), `ssh`, `http` and
/// `git` only when the user allows the scheme, and only the listed hosts
/// when any are listed.
#[derive(Debug, Clone)]
pub struct SourcePolicy {
    /// Allowed schemes (`https`, `ssh`, `file`, …); scp-like `host:path` is `ssh`.
    pub schemes: Vec<String>,
    /// Allowed hosts (exact, case-insensitive); empty allows every host.
    pub hosts: Vec<String>,
}

impl Default for SourcePolicy {
    fn default() -> Self {
        SourcePolicy {
            schemes: vec!["https".into()],
            hosts: Vec::new(),
        }
    }
}

/// Why a source URL is not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The scheme is not in [`SourcePolicy::schemes`].
    #[error("{url}: scheme {scheme:?} not allowed (allowed: {allowed}; see --allow-source-scheme)")]
    Scheme {
        url: String,
        scheme: String,
        allowed: String,
    },
    /// The host is not in [`SourcePolicy::hosts`].
    #[error("{url}: host {host:?} not allowed (see --allow-source-host)")]
    Host { url: String, host: String },
}

impl SourcePolicy {
    /// Whether `url` may be fetched.
    pub fn check(&self, url: &str) -> Result<(), Refused> {
        let u = url.trim();
        let scheme = match u.split_once("://") {
            Some((s, _)) => s.to_ascii_lowercase(),
            None if u.contains(':') && !u.starts_with('/') => "ssh".into(),
            None => "file".into(),
        };
        if !self.schemes.iter().any(|s| s.eq_ignore_ascii_case(&scheme)) {
            return Err(Refused::Scheme {
                url: url.to_string(),
                scheme,
                allowed: self.schemes.join(", "),
            });
        }
        if !self.hosts.is_empty() {
            let host = url_parts(u).map(|(h, _)| h).unwrap_or_default();
            if !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
                return Err(Refused::Host {
                    url: url.to_string(),
                    host,
                });
            }
        }
        Ok(())
    }
}

/// Splits a git URL into (host, path components without `.git`).
/// Handles `https://host/org/repo(.git)`, `ssh://[user@]host[:port]/org/repo`,
/// scp-like `user@host:org/repo.git` and `file:///path/org/repo.git`
/// (host `localhost`).
pub fn url_parts(url: &str) -> Option<(String, Vec<String>)> {
    let url = url.trim().trim_end_matches('/');
    let (host, path) = if let Some(rest) = url.strip_prefix("file://") {
        ("localhost".to_string(), rest.to_string())
    } else if let Some((_, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/')?;
        let host = authority.rsplit('@').next()?.split(':').next()?.to_string();
        (host, path.to_string())
    } else if let Some((authority, path)) = url.split_once(':') {
        // scp-like syntax
        let host = authority.rsplit('@').next()?.to_string();
        (host, path.to_string())
    } else {
        return None;
    };
    let mut comps: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(|c| c.to_string())
        .collect();
    if let Some(last) = comps.last_mut()
        && let Some(s) = last.strip_suffix(".git")
    {
        *last = s.to_string();
    }
    // Every part becomes one directory name under DIR/repos: a host such as
    // `/some/dir` (from `/some/dir:org/repo`) or `..` must never be one.
    let safe = |c: &str| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && !c.starts_with('-')
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-~+@".contains(&b))
    };
    if host.is_empty() || !safe(&host) || comps.is_empty() || !comps.iter().all(|c| safe(c)) {
        return None;
    }
    // Keep <org>/<repo>: the last two components.
    let n = comps.len();
    let comps = comps.split_off(n.saturating_sub(2));
    Some((host, comps))
}

/// `DIR/repos/<host>/<org>/<repo>/<commit8>` (`HEAD` without a commit).
pub fn dest_for(collection: &Path, url: &str, commit: &str) -> Option<PathBuf> {
    let (host, comps) = url_parts(url)?;
    let mut p = collection.join("repos").join(host);
    for c in comps {
        p.push(c);
    }
    let short: String = commit.chars().take(8).collect();
    if !short.is_empty() && !short.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    p.push(if short.is_empty() {
        "HEAD".to_string()
    } else {
        short
    });
    // Belt and braces: only plain names below DIR/repos.
    let inside = p.strip_prefix(collection.join("repos")).is_ok_and(|rel| {
        rel.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    });
    inside.then_some(p)
}

/// Where each (repository URL, commit) pair goes under `collection`, and
/// the pairs no safe path can be derived from.
pub fn targets(
    collection: &Path,
    pairs: impl IntoIterator<Item = (String, String)>,
) -> (Vec<CloneTarget>, Vec<Unusable>) {
    let pairs: BTreeSet<(String, String)> = pairs.into_iter().collect();
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (url, commit) in pairs {
        match dest_for(collection, &url, &commit) {
            Some(dest) => out.push(CloneTarget { url, commit, dest }),
            None => bad.push(Unusable { url, commit }),
        }
    }
    out.dedup_by(|a, b| a.dest == b.dest);
    (out, bad)
}

fn git(args: &[&str], cwd: Option<&Path>) -> Result<(), CloneError> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let out = cmd.output().map_err(CloneError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        Err(CloneError::Git {
            command: args.first().unwrap_or(&"").to_string(),
            status: out.status,
            stderr: last.to_string(),
        })
    }
}

/// True when `dest` already holds a checkout.
pub fn is_checked_out(dest: &Path) -> bool {
    dest.join(".git").exists()
}

/// Clones one target: shallow clone, then fetch and check out the commit;
/// when the server refuses the commit, keep the default branch and warn.
/// Works in a temporary sibling directory renamed into place at the end, so
/// an interrupted clone never looks complete.
pub fn clone_one(t: &CloneTarget, skip_existing: bool) -> CloneOutcome {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CloneError::Io { path, source }
    };
    if is_checked_out(&t.dest) {
        if skip_existing {
            return CloneOutcome::Skipped;
        }
        if let Err(e) = std::fs::remove_dir_all(&t.dest) {
            return CloneOutcome::Failed(io(&t.dest)(e));
        }
    }
    let Some(parent) = t.dest.parent() else {
        return CloneOutcome::Failed(CloneError::NoParent {
            path: t.dest.clone(),
        });
    };
    if let Err(e) = std::fs::create_dir_all(parent) {
        return CloneOutcome::Failed(io(parent)(e));
    }
    let base = t
        .dest
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Leftovers of interrupted runs.
    if let Ok(rd) = std::fs::read_dir(parent) {
        let prefix = format!(".{base}.tmp-");
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let tmp = parent.join(format!(".{base}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let outcome = clone_into(t, &tmp);
    if matches!(outcome, CloneOutcome::Failed(_)) {
        let _ = std::fs::remove_dir_all(&tmp);
        return outcome;
    }
    match std::fs::rename(&tmp, &t.dest) {
        Ok(()) => outcome,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            CloneOutcome::Failed(io(&t.dest)(e))
        }
    }
}

/// Shallow-clones `t.url` into `tmp`, then fetches and checks out `t.commit`
/// (the default branch stays when the server refuses the commit).
fn clone_into(t: &CloneTarget, tmp: &Path) -> CloneOutcome {
    let tmp_s = tmp.to_string_lossy();
    let cloned = git(
        &[
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--no-tags",
            &t.url,
            &tmp_s,
        ],
        None,
    );
    if let Err(e) = cloned {
        return CloneOutcome::Failed(e);
    }
    if t.commit.is_empty() {
        return CloneOutcome::Cloned;
    }
    let fetched = git(
        &["fetch", "--quiet", "--depth", "1", "origin", &t.commit],
        Some(tmp),
    )
    .and_then(|()| {
        git(
            &[
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--quiet",
                "--detach",
                "FETCH_HEAD",
            ],
            Some(tmp),
        )
    });
    match fetched {
        Ok(()) => CloneOutcome::Cloned,
        Err(cause) => CloneOutcome::DefaultBranch { cause },
    }
}

/// Clones all targets with at most `max_concurrency` git processes at once.
/// Results are in target order.
pub fn clone_all(
    targets: &[CloneTarget],
    max_concurrency: usize,
    skip_existing: bool,
) -> Vec<CloneOutcome> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<CloneOutcome>>> =
        Mutex::new(targets.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..max_concurrency.max(1).min(targets.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(t) = targets.get(i) else { return };
                    let o = clone_one(t, skip_existing);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(o);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|o| o.unwrap_or(CloneOutcome::Failed(CloneError::NotRun)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue13_1_source_urls_need_an_allowed_scheme_and_host() {
        let default = SourcePolicy::default();
        assert!(default.check("https://github.com/o/r").is_ok());
        for url in [
            "file:///etc/x/org/repo.git",
            "/srv/git/org/repo",
            "git@github.com:o/r.git",
            "http://github.com/o/r",
            "ext::sh -c touch% /tmp/pwned",
        ] {
            assert!(default.check(url).is_err(), "{url}");
        }
        let only = SourcePolicy {
            schemes: vec!["https".into(), "ssh".into()],
            hosts: vec!["github.com".into()],
        };
        assert!(only.check("git@github.com:o/r.git").is_ok());
        assert!(matches!(
            only.check("https://evil.example/o/r"),
            Err(Refused::Host { .. })
        ));
    }

    #[test]
    fn issue13_3_every_destination_stays_under_repos() {
        // Each of these once named a directory outside DIR/repos (and with
        // --skip-existing=false, one to delete).
        for url in [
            "/some/dir:org/repo",
            "../../x:org/repo",
            "..:org/repo",
            "https://../org/repo",
            "ssh://h/../../etc/x",
            "-oProxyCommand=x:org/repo",
            "https://host/org/..",
            "file:///a/b/../..",
        ] {
            assert_eq!(dest_for(Path::new("/c"), url, ""), None, "{url}");
        }
        let d = dest_for(Path::new("/c"), "git@host.example:org/repo.git", "").unwrap();
        assert_eq!(d, Path::new("/c/repos/host.example/org/repo/HEAD"));
    }

    #[test]
    fn url_forms() {
        let p = |u: &str| url_parts(u).map(|(h, c)| format!("{h}/{}", c.join("/")));
        assert_eq!(
            p("https://github.com/openshift/oc"),
            Some("github.com/openshift/oc".into())
        );
        assert_eq!(
            p("https://github.com/openshift/oc.git/"),
            Some("github.com/openshift/oc".into())
        );
        assert_eq!(
            p("git@github.com:openshift/oc.git"),
            Some("github.com/openshift/oc".into())
        );
        assert_eq!(
            p("ssh://git@example.com:2222/a/b.git"),
            Some("example.com/a/b".into())
        );
        assert_eq!(
            p("file:///tmp/x/org/repo.git"),
            Some("localhost/org/repo".into())
        );
        assert_eq!(
            p("https://gitlab.com/g/sub/repo"),
            Some("gitlab.com/sub/repo".into())
        );
        assert_eq!(p("https://evil.com/../x"), None);
        assert_eq!(p("nonsense"), None);
        let d = dest_for(
            Path::new("/c"),
            "https://github.com/o/r",
            "0123456789abcdef",
        )
        .unwrap();
        assert_eq!(d, Path::new("/c/repos/github.com/o/r/01234567"));
        assert_eq!(
            dest_for(Path::new("/c"), "https://github.com/o/r", "../../x"),
            None
        );
    }
}
