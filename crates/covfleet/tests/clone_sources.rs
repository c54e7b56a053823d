//! `covfleet clone-sources` against local bare git repositories (file:// URLs).

mod collection_fixture;

use std::path::Path;
use std::process::Command;

use collection_fixture::*;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A bare repo `srv/org/repo.git` with two commits; returns (url, first, second).
fn bare_repo(root: &Path) -> (String, String, String) {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("go.mod"), "module example.com/org/repo\n").unwrap();
    std::fs::write(work.join("version.txt"), "v1\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "one"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    std::fs::write(work.join("version.txt"), "v2\n").unwrap();
    git(&work, &["commit", "-qam", "two"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    let bare = root.join("srv/org/repo.git");
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    (format!("file://{}", bare.display()), first, second)
}

#[test]
fn clones_each_source_at_its_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, first, _second) = bare_repo(tmp.path());
    let col = tmp.path().join("col");
    let missing = "0123456789abcdef0123456789abcdef01234567";
    for (name, commit, image) in [
        ("e1", first.as_str(), "img/a:1"),
        ("e2", missing, "img/b:1"),
    ] {
        let mut m = Meta::pod("ns", &format!("{name}-0"), "c");
        m.image = image.into();
        let dir = col.join("coverage").join(name);
        write_meta(
            &dir,
            &m,
            Some(serde_json::json!({"source_url": url, "source_commit": commit})),
        );
        run_fixture(&dir, &["-n", "1"]);
    }
    compile(&col, &[]);
    let db = db::Database::open_collection(&col).unwrap();
    let srcs = db.image_sources().unwrap();
    assert_eq!(srcs.len(), 2);
    assert_eq!(srcs[0].source_commit.as_deref(), Some(first.as_str()));
    assert_eq!(srcs[0].origin, "info.json");
    let owner = &db.owners().unwrap()[0];
    assert_eq!(owner.source_url.as_deref(), Some(url.as_str()));

    let c = col.display().to_string();
    // Issue 13 #1: a pod's file:// source URL is refused unless allowed.
    let (code, _, err) = covfleet(&["clone-sources", "--collection", &c]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("scheme \"file\" not allowed"), "{err}");
    assert!(!col.join("repos/localhost").exists());
    let (code, out, _) = covfleet(&[
        "clone-sources",
        "--allow-source-scheme",
        "file",
        "--collection",
        &c,
        "--dry-run",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");

    let (code, _, err) = covfleet(&[
        "clone-sources",
        "--allow-source-scheme",
        "file",
        "--collection",
        &c,
        "--max-concurrency",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    let at = col.join("repos/localhost/org/repo").join(&first[..8]);
    assert_eq!(
        std::fs::read_to_string(at.join("version.txt")).unwrap(),
        "v1\n"
    );
    assert_eq!(git(&at, &["rev-parse", "HEAD"]), first);
    // The unknown commit: the default branch, with a warning.
    let fb = col.join("repos/localhost/org/repo").join(&missing[..8]);
    assert_eq!(
        std::fs::read_to_string(fb.join("version.txt")).unwrap(),
        "v2\n"
    );
    assert!(
        err.contains("warning") && err.contains(missing) && err.contains("default branch"),
        "{err}"
    );
    assert!(err.contains("1 cloned, 1 on the default branch"), "{err}");
    // No temporary directories left behind.
    let names: Vec<String> = std::fs::read_dir(col.join("repos/localhost/org/repo"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // --skip-existing is the default; =false re-clones.
    std::fs::write(at.join("marker"), "x").unwrap();
    let (code, _, err) = covfleet(&[
        "clone-sources",
        "--allow-source-scheme",
        "file",
        "--collection",
        &c,
    ]);
    assert_eq!(code, 0);
    assert!(err.contains("2 already present"), "{err}");
    assert!(at.join("marker").exists());
    let (code, _, err) = covfleet(&[
        "clone-sources",
        "--allow-source-scheme",
        "file",
        "--collection",
        &c,
        "--skip-existing=false",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!at.join("marker").exists());
}

#[test]
fn unreachable_sources_fail_with_exit_1_and_missing_db_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let col = tmp.path().join("col");
    let dir = col.join("coverage/e1");
    write_meta(
        &dir,
        &Meta::pod("ns", "x-0", "c"),
        Some(
            serde_json::json!({"source_url": format!("file://{}/nope/repo.git", tmp.path().display()), "source_commit": "abcdef12"}),
        ),
    );
    run_fixture(&dir, &["-n", "1"]);
    let c = col.display().to_string();
    let (code, _, err) = covfleet(&[
        "clone-sources",
        "--allow-source-scheme",
        "file",
        "--collection",
        &c,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("compile"), "{err}");
    compile(&col, &[]);
    let (code, _, err) = covfleet(&[
        "clone-sources",
        "--allow-source-scheme",
        "file",
        "--collection",
        &c,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nope/repo.git"), "{err}");
    assert!(!col.join("repos/localhost/nope/repo/abcdef12").exists());
}
