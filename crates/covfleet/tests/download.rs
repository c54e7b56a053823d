//! `covfleet download` against a real S3-compatible server (s3s-fs on
//! loopback, SigV4 verified), with data uploaded by a second, independent
//! client (boto3) in exactly the seed's layout, real Go coverage data, and
//! `go tool covdata` as the oracle for what compile counts.

mod collection_fixture;
mod s3_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use collection_fixture::*;
use db::Database;
use s3_support::{boto3, boto3_python, covfleet_s3};
use testkit::S3Server;

/// Runs the fixture with one intermediate snapshot: one process, two
/// counter files (older, newer) and the meta file, in `dir`.
fn one_process(dir: &Path, args: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    run_fixture(dir, args);
    let mut counters: Vec<(u128, PathBuf)> = Vec::new();
    let mut meta = None;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if n.starts_with("covmeta.") {
            meta = Some(p);
        } else if let Some(r) = n.strip_prefix("covcounters.") {
            counters.push((r.rsplit('.').next().unwrap().parse().unwrap(), p));
        }
    }
    counters.sort();
    assert_eq!(counters.len(), 2, "fixture wrote {counters:?}");
    (meta.unwrap(), counters[0].1.clone(), counters[1].1.clone())
}

/// `covcounters.<hash>.<pid>` of a Go counter file name.
fn stem(p: &Path) -> String {
    let n = p.file_name().unwrap().to_string_lossy().into_owned();
    let parts: Vec<&str> = n.split('.').collect();
    format!("{}.{}.{}", parts[0], parts[1], parts[2])
}

#[test]
fn seed_layout_uploaded_by_boto3_downloads_and_compiles() {
    let Some(s3) = S3Server::start() else { return };
    let Some(py) = boto3_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let (meta, older, newer) = one_process(
        &runs.join("pod"),
        &["-mode", "both", "-n", "4", "-snapshots", "1"],
    );
    let (hmeta, _, hnewer) = one_process(
        &runs.join("host"),
        &["-mode", "calc", "-n", "2", "-snapshots", "1"],
    );
    // The producer's tree: the newer snapshot lands in slot .1 after the
    // older one was written to .2 (slots alternate; only time orders them).
    let pod_dir =
        "node-a/shop/api-7d9f8b6c54-x2kqz/api/20261130T120000Z/quay.io_shop_api_v1/fixture";
    let host_dir = "node-a/_host_/20261130T120000Z/fixture";
    let first = tmp.path().join("tree1");
    let second = tmp.path().join("tree2");
    let put = |root: &Path, dir: &str, from: &Path, name: &str| {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(from, d.join(name)).unwrap();
    };
    put(
        &first,
        pod_dir,
        &meta,
        meta.file_name().unwrap().to_str().unwrap(),
    );
    put(&first, pod_dir, &older, &format!("{}.2", stem(&older)));
    std::fs::write(
        first.join(pod_dir).join("info.json"),
        br#"{"binary_name":"fixture","source_commit":"abc123","source_url":"https://example.invalid/shop.git"}"#,
    )
    .unwrap();
    put(
        &first,
        host_dir,
        &hmeta,
        hmeta.file_name().unwrap().to_str().unwrap(),
    );
    put(&first, host_dir, &hnewer, &format!("{}.1", stem(&hnewer)));
    put(&second, pod_dir, &newer, &format!("{}.1", stem(&newer)));
    // Short keys: s3s-fs cannot store keys over ~160 bytes (docs/store.md).
    let url = format!("s3://{}/cov/c1", s3.bucket);
    boto3(&py, &s3, &["upload", first.to_str().unwrap(), &url]);
    std::thread::sleep(Duration::from_millis(1100));
    boto3(&py, &s3, &["upload", second.to_str().unwrap(), &url]);

    let col = tmp.path().join("col");
    let c = col.display().to_string();
    let (code, out, err) = covfleet_s3(
        &s3,
        &[
            "download",
            "--collection",
            &c,
            "--url",
            &url,
            "--endpoint",
            &s3.endpoint,
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["entries"], 2, "{report}");
    assert_eq!(report["superseded"], 1, "{report}");
    assert_eq!(report["objects"], 5, "{report}");

    // The pod entry: metadata from the key, only the newest snapshot.
    let entries: Vec<PathBuf> = std::fs::read_dir(col.join("coverage"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let pod_entry = entries
        .iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("shop"))
        .unwrap();
    let md: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pod_entry.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(md["namespace"], "shop");
    assert_eq!(md["pod_name"], "api-7d9f8b6c54-x2kqz");
    assert_eq!(md["container"]["name"], "api");
    assert_eq!(md["hostname"], "node-a");
    assert_eq!(md["binary_name"], "fixture");
    assert!(pod_entry.join(format!("{}.1", stem(&newer))).is_file());
    assert!(!pod_entry.join(format!("{}.2", stem(&older))).exists());

    compile(&col, &[]);
    let db = Database::open_collection(&col).unwrap();
    let owners = db.owners().unwrap();
    let api = owners.iter().find(|o| o.namespace == "shop").unwrap();
    assert_eq!(api.owner_name, "api", "{owners:?}");
    assert_eq!(api.process_count, 1);
    // What compile counts is the newest snapshot alone (never .1 + .2).
    let latest = tmp.path().join("latest");
    std::fs::create_dir(&latest).unwrap();
    std::fs::copy(&meta, latest.join(meta.file_name().unwrap())).unwrap();
    std::fs::copy(&newer, latest.join(newer.file_name().unwrap())).unwrap();
    assert_eq!(
        profile_lines(&db.owner_profile(api.id).unwrap()),
        go_textfmt(&[&latest])
    );
    let host = owners.iter().find(|o| o.namespace == "_host_").unwrap();
    assert_eq!(host.owner_type, "Host");
}

#[test]
fn wrong_credentials_exit_1_naming_bucket_and_endpoint() {
    let Some(s3) = S3Server::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args([
            "download",
            "--collection",
            &c,
            "--bucket",
            &s3.bucket,
            "--prefix",
            "p",
        ])
        .args(["--endpoint", &s3.endpoint])
        .envs(s3.env())
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&s3.bucket), "{err}");
    assert!(err.contains(&s3.endpoint), "{err}");
    assert!(err.contains("access denied"), "{err}");
    assert!(!err.contains("not-the-secret"), "{err}");
}

#[test]
fn download_killed_and_resumed_leaves_nothing_corrupt_or_missing() {
    let Some(s3) = S3Server::start() else { return };
    let Some(py) = boto3_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // 150 entries of 3 objects with distinct contents.
    let tree = tmp.path().join("tree");
    for i in 0..150 {
        let d = tree.join(format!(
            "node-{}/ns/pod-{i}/c/20261130T120000Z/img/bin",
            i % 3
        ));
        std::fs::create_dir_all(&d).unwrap();
        let h = format!("{i:032x}");
        std::fs::write(d.join(format!("covmeta.{h}")), vec![i as u8; 20_000]).unwrap();
        std::fs::write(
            d.join(format!("covcounters.{h}.{i}.1")),
            vec![!(i as u8); 5_000],
        )
        .unwrap();
        std::fs::write(d.join("info.json"), format!("{{\"n\":{i}}}")).unwrap();
    }
    let url = format!("s3://{}/cov", s3.bucket);
    boto3(&py, &s3, &["upload", tree.to_str().unwrap(), &url]);

    let col = tmp.path().join("col");
    let c = col.display().to_string();
    let args = [
        "download",
        "--collection",
        &c,
        "--url",
        &url,
        "--endpoint",
        &s3.endpoint,
        "--max-concurrency",
        "1",
        "--json",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args(args)
        .envs(s3.env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some entries are complete.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = std::fs::read_dir(col.join("coverage"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().join(".download.json").is_file())
                    .count()
            })
            .unwrap_or(0);
        if done >= 10 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let st = child.wait().unwrap();
    let killed = st.code().is_none();

    let (code, out, err) = covfleet_s3(&s3, &args);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["entries"], 150);
    if killed {
        assert!(
            report["entries_unchanged"].as_u64().unwrap() >= 10,
            "{report}"
        );
        assert!(report["objects"].as_u64().unwrap() < 450, "{report}");
    }
    // Every object is there, whole, and nothing else (no temporary files).
    let mut seen = 0;
    for e in std::fs::read_dir(col.join("coverage")).unwrap() {
        let dir = e.unwrap().path();
        let md: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
        let i: usize = md["pod_name"].as_str().unwrap()[4..].parse().unwrap();
        let h = format!("{i:032x}");
        assert_eq!(
            std::fs::read(dir.join(format!("covmeta.{h}"))).unwrap(),
            vec![i as u8; 20_000]
        );
        assert_eq!(
            std::fs::read(dir.join(format!("covcounters.{h}.{i}.1"))).unwrap(),
            vec![!(i as u8); 5_000]
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("info.json")).unwrap(),
            format!("{{\"n\":{i}}}")
        );
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        seen += 1;
    }
    assert_eq!(seen, 150);
}

#[test]
fn file_url_tree_in_seed_layout_downloads_and_compiles() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let (meta, older, newer) = one_process(
        &runs.join("pod"),
        &["-mode", "both", "-n", "3", "-snapshots", "1"],
    );
    // What `covfleet agent --sink file://SINK` leaves: the seed layout on
    // local disk, slots .2 (older) and .1 (newer, written later).
    let sink = tmp.path().join("sink");
    let entry = sink.join("node-b/_host_/20261130T120000Z/fixture");
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::copy(&meta, entry.join(meta.file_name().unwrap())).unwrap();
    std::fs::copy(&older, entry.join(format!("{}.2", stem(&older)))).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::copy(&newer, entry.join(format!("{}.1", stem(&newer)))).unwrap();

    let col = tmp.path().join("col");
    let c = col.display().to_string();
    let url = format!("file://{}", sink.display());
    let (code, out, err) = covfleet(&["download", "--collection", &c, "--url", &url, "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["entries"], 1, "{report}");
    assert_eq!(report["superseded"], 1, "{report}");
    assert_eq!(report["objects"], 2, "{report}");

    compile(&col, &[]);
    let db = Database::open_collection(&col).unwrap();
    let owners = db.owners().unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].namespace, "_host_");
    assert_eq!(owners[0].owner_type, "Host");
    let latest = tmp.path().join("latest");
    std::fs::create_dir(&latest).unwrap();
    std::fs::copy(&meta, latest.join(meta.file_name().unwrap())).unwrap();
    std::fs::copy(&newer, latest.join(newer.file_name().unwrap())).unwrap();
    assert_eq!(
        profile_lines(&db.owner_profile(owners[0].id).unwrap()),
        go_textfmt(&[&latest])
    );

    // A relative or missing directory is a usage error, and nothing is created.
    for bad in ["file://sink", "file:///nonexistent/covfleet-sink"] {
        let (code, _, err) = covfleet(&["download", "--collection", &c, "--url", bad]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("file:///DIR"), "{bad}: {err}");
    }
    assert!(!Path::new("/nonexistent/covfleet-sink").exists());
}
