//! `covfleet collect -o s3://…` against a real S3-compatible server (s3s-fs
//! on loopback): a real instrumented Go process on a loopback port, objects
//! in the seed layout read back by a second client (boto3), and the round
//! trip through `covfleet download` and `compile`.

mod s3_support;
mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use s3_support::{boto3, boto3_python, covfleet_s3 as covfleet};
use support::fixtures;
use testkit::S3Server;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the covered fixture as `name` on a free loopback port.
fn serve(name: &str, arg: &str) -> (Killed, u16) {
    let port = free_port();
    let program = fixtures().named(name);
    // Another test thread copying a fixture while we fork can make the exec
    // fail with ETXTBSY for a moment: retry.
    let mut tries = 0;
    let mut child = loop {
        match Command::new(&program)
            .arg(arg)
            .env("COVERAGE_PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("start {}: {e}", program.display()),
        }
    };
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let guard = Killed(child);
    assert!(line.starts_with("ready"), "{line:?}");
    support::wait_for("the coverage server", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (guard, port)
}

#[test]
fn collect_to_s3_writes_the_seed_layout_that_boto3_reads_and_download_compiles() {
    let Some(s3) = S3Server::start() else { return };
    let Some(py) = boto3_python() else { return };
    let (guard, port) = serve("shop-api", "7");
    let pid = guard.0.id();

    let tmp = tempfile::tempdir().unwrap();
    let stage = tmp.path().join("stage");
    let url = format!("s3://{}/openshift-ci/coverage/c1", s3.bucket);
    let target = format!("http://127.0.0.1:{port}");
    let args = [
        "collect",
        "--url",
        &target,
        "-o",
        &url,
        "--endpoint",
        &s3.endpoint,
        "--staging",
        stage.to_str().unwrap(),
        "--json",
    ];
    for _ in 0..2 {
        let (code, _, err) = covfleet(&s3, &args);
        assert_eq!(code, 0, "{err}");
    }

    // boto3 sees exactly the seed's host layout.
    let listing = boto3(&py, &s3, &["list", &url]);
    let keys: Vec<&str> = listing
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    // A loopback --url is this host (issue 13 #21), named as the layout sanitises it.
    let this_host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let this_host = store::layout::sanitize(this_host.trim());
    let mut names = Vec::new();
    for k in &keys {
        let rel = k.strip_prefix("openshift-ci/coverage/c1/").unwrap();
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 5, "{rel}");
        assert_eq!(parts[0], this_host);
        assert_eq!(parts[1], "_host_");
        assert_eq!(parts[2].len(), 16, "discovery time {}", parts[2]);
        assert_eq!(parts[3], "shop-api");
        names.push(parts[4].to_string());
    }
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names[0].starts_with("covcounters.") && names[0].ends_with(&format!(".{pid}.1")),
        "{names:?}"
    );
    assert!(names[1].starts_with("covmeta."), "{names:?}");
    assert_eq!(&names[2..], ["info.json", "metadata.json"]);

    // The uploaded counters are the staging directory's latest snapshot, byte for byte.
    let boto_dir = tmp.path().join("boto");
    boto3(&py, &s3, &["download", &url, boto_dir.to_str().unwrap()]);
    let entry = std::fs::read_dir(stage.join("coverage"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let md: serde_json::Value =
        serde_json::from_slice(&std::fs::read(entry.join("metadata.json")).unwrap()).unwrap();
    let latest = md["latest_counters"].as_str().unwrap();
    let rel = keys
        .iter()
        .find(|k| k.contains("/covcounters."))
        .unwrap()
        .strip_prefix("openshift-ci/coverage/c1/")
        .unwrap();
    assert_eq!(
        std::fs::read(boto_dir.join(rel)).unwrap(),
        std::fs::read(entry.join(latest)).unwrap()
    );

    // Round trip: download and compile.
    let col = tmp.path().join("col");
    let (code, _, err) = covfleet(
        &s3,
        &[
            "download",
            "--collection",
            col.to_str().unwrap(),
            "--url",
            &url,
            "--endpoint",
            &s3.endpoint,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args(["compile", "--collection", col.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = db::Database::open_collection(&col).unwrap();
    let owners = db.owners().unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].binary_name, "shop-api");
    assert!(owners[0].covered_stmts > 0);
    assert_eq!(owners[0].process_count, 1);
}

#[test]
fn collect_to_an_unreachable_bucket_spools_and_exits_1() {
    let Some(mut s3) = S3Server::start() else {
        return;
    };
    let (_guard, port) = serve("spooled", "3");
    s3.stop();
    let tmp = tempfile::tempdir().unwrap();
    let stage = tmp.path().join("stage");
    let url = format!("s3://{}/p", s3.bucket);
    let target = format!("http://127.0.0.1:{port}");
    let endpoint = s3.endpoint.clone();
    let args = [
        "collect",
        "--url",
        &target,
        "-o",
        &url,
        "--endpoint",
        &endpoint,
        "--staging",
        stage.to_str().unwrap(),
    ];
    let (code, _, err) = covfleet(&s3, &args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("spool"), "{err}");
    assert!(err.contains(&s3.endpoint), "{err}");
    // Server back: the next run uploads, nothing left behind.
    s3.restart();
    let (code, _, err) = covfleet(&s3, &args);
    assert_eq!(code, 0, "{err}");
    let files = bucket_files(&s3);
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(
        std::fs::read_dir(stage.join("spool"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// Every file under the bucket (names only).
fn bucket_files(s3: &S3Server) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![s3.bucket_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if !e.file_name().to_string_lossy().starts_with(".s3s") {
                files.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn collect_watch_uploads_while_running_and_once_more_on_sigterm() {
    let Some(s3) = S3Server::start() else { return };
    let (_guard, port) = serve("watched", "4");
    let tmp = tempfile::tempdir().unwrap();
    let stage = tmp.path().join("stage");
    let url = format!("s3://{}/w", s3.bucket);
    let target = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args([
            "collect", "--watch", "--quiet", "--url", &target, "-o", &url,
        ])
        .args([
            "--endpoint",
            &s3.endpoint,
            "--staging",
            stage.to_str().unwrap(),
        ])
        .envs(s3.env())
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Uploaded while still running: counters in both slots after a few rounds.
    support::wait_for("both counter slots in the bucket", || {
        bucket_files(&s3)
            .iter()
            .filter(|f| f.starts_with("covcounters."))
            .count()
            == 2
    });
    support::signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = bucket_files(&s3);
    assert_eq!(files.len(), 5, "{files:?}");
    assert!(
        std::fs::read_dir(stage.join("spool"))
            .unwrap()
            .next()
            .is_none()
    );
}
