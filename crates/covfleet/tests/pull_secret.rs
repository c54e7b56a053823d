//! `covfleet pull-secret`: `local` round trips through the real binary
//! (odd formatting, unicode escapes and key order kept byte for byte), and
//! `cluster` against a REAL kube-apiserver + etcd (`k8s_support`): the test
//! creates the `openshift-config` namespace and the `pull-secret` Secret,
//! then adds, dry-runs, replaces and removes the entry through the API.
//! The cluster test skips (with a printed reason) only when the Kubernetes
//! binaries are not built.

mod k8s_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_support::*;
use serde_json::{Value, json};
use store::config::S3Config;
use store::registry_auth::{self, ENTRY};

const SECRET_KEY_VALUE: &str = "wJalrXUtnFEMI-very-secret";

fn covfleet() -> &'static str {
    env!("CARGO_BIN_EXE_covfleet")
}

fn write_config(dir: &Path) -> PathBuf {
    let cfg = S3Config {
        s3_bucket: "cov-bucket".into(),
        s3_region: "eu-west-1".into(),
        s3_base_path: "from/the/file".into(),
        aws_access_key_id: "AKIAEXAMPLEKEY".into(),
        aws_secret_access_key: SECRET_KEY_VALUE.into(),
        s3_endpoint: None,
    };
    let path = dir.join("cov-bucket.json");
    std::fs::write(&path, cfg.to_json()).unwrap();
    path
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(covfleet())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn no_secret(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(SECRET_KEY_VALUE), "secret printed: {text}");
        assert!(!text.contains("AKIAEXAMPLEKEY"), "key id printed: {text}");
    }
}

fn entry_config(doc: &str) -> S3Config {
    let v: Value = serde_json::from_str(doc).unwrap();
    registry_auth::from_pull_secret(&v).unwrap().unwrap()
}

const ODD: &str = "{\n\t\"zeta\" : 1 ,\"auths\":{ \"r\\u00e9gistry.example\" :{\"auth\":\"dXNlcjpw\\u0061ss\",\"email\":\"\u{e9}t\u{e9}@x\"} ,\n  \"quay.io\": {\"auth\": \"eDp5\"}  }, \"alpha\": [1.50, true, null]   }\n";

#[test]
fn local_adds_replaces_and_removes_keeping_other_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let cfg = cfg.to_str().unwrap();

    let out = run(
        &[
            "pull-secret",
            "local",
            "-f",
            cfg,
            "--s3-prefix",
            "/openshift-ci/coverage/c1/",
        ],
        ODD.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    no_secret(&out);
    let added = String::from_utf8(out.stdout).unwrap();
    // Everything before the insertion point and after it is untouched.
    let cut = ODD.find("  }, \"alpha\"").unwrap();
    assert!(added.starts_with(&ODD[..cut - 1]), "{added}");
    assert!(added.ends_with(&ODD[cut..]), "{added}");
    let c = entry_config(&added);
    assert_eq!(c.s3_base_path, "openshift-ci/coverage/c1");
    assert_eq!(c.s3_bucket, "cov-bucket");
    assert_eq!(c.aws_secret_access_key, SECRET_KEY_VALUE);
    // Key order is kept.
    let order: Vec<usize> = ["zeta", "auths", "alpha"]
        .iter()
        .map(|k| added.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{added}");

    // Replacing changes only the entry's value.
    let out = run(
        &[
            "pull-secret",
            "local",
            "-f",
            cfg,
            "--s3-prefix",
            "other/prefix",
        ],
        added.as_bytes(),
    );
    assert!(out.status.success());
    let replaced = String::from_utf8(out.stdout).unwrap();
    assert_eq!(entry_config(&replaced).s3_base_path, "other/prefix");
    let auth = |d: &str| {
        let v: Value = serde_json::from_str(d).unwrap();
        v["auths"][ENTRY]["auth"].as_str().unwrap().to_string()
    };
    assert_eq!(replaced.replace(&auth(&replaced), &auth(&added)), added);

    // --remove gives back the original bytes exactly.
    let out = run(&["pull-secret", "local", "--remove"], replaced.as_bytes());
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), ODD);
}

#[test]
fn local_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let cfg = cfg.to_str().unwrap();
    // No -f and stdin is not a terminal: a usage error, not a prompt.
    let out = run(&["pull-secret", "local", "--s3-prefix", "p"], b"{}");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-f CONFIG"));
    // --s3-prefix is required.
    let out = run(&["pull-secret", "local", "-f", cfg], b"{}");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--s3-prefix"));
    // Not JSON: no output, exit 2, the input not echoed.
    let out = run(
        &["pull-secret", "local", "-f", cfg, "--s3-prefix", "p"],
        b"{\"auths\": x}",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    // A config that is not an S3 config.
    std::fs::write(
        tmp.path().join("bad.json"),
        format!("{{\"awsSecretAccessKey\":\"{SECRET_KEY_VALUE}\"}}"),
    )
    .unwrap();
    let bad = tmp.path().join("bad.json");
    let out = run(
        &[
            "pull-secret",
            "local",
            "-f",
            bad.to_str().unwrap(),
            "--s3-prefix",
            "p",
        ],
        b"{}",
    );
    assert_eq!(out.status.code(), Some(2));
    no_secret(&out);
}

#[test]
fn cluster_against_a_real_apiserver() {
    let bin = match k8s_bin() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIP cluster_against_a_real_apiserver: {why}");
            return;
        }
    };
    let cp = ControlPlane::start(&bin);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let cfg = cfg.to_str().unwrap();
    let kc = cp.kubeconfig(TOKEN, "default");
    let kc = kc.to_str().unwrap();

    cp.must(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "openshift-config"}}),
    );
    let original = "{\"auths\":{\"quay.io\":{\"auth\":\"eDp5\",\"email\":\"a@b\"},  \"registry.redhat.io\" : {\"auth\":\"cjpz\"}}}";
    cp.must(
        "POST",
        "/api/v1/namespaces/openshift-config/secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "pull-secret"},
               "type": "kubernetes.io/dockerconfigjson",
               "data": {".dockerconfigjson": STANDARD.encode(original)}}),
    );
    let read = || -> String {
        let v = cp.must(
            "GET",
            "/api/v1/namespaces/openshift-config/secrets/pull-secret",
            Value::Null,
        );
        let b = STANDARD
            .decode(v["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap();
        String::from_utf8(b).unwrap()
    };
    let base = ["pull-secret", "cluster", "--kubeconfig", kc];

    // Dry run: says what would change, changes nothing, writes no backup.
    let dry_backup = tmp.path().join("dry.json");
    let mut a = base.to_vec();
    a.extend([
        "-f",
        cfg,
        "--s3-prefix",
        "openshift-ci/coverage/c1",
        "--dry-run",
        "--backup",
        dry_backup.to_str().unwrap(),
    ]);
    let out = run(&a, b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    no_secret(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("would add"));
    assert_eq!(read(), original);
    assert!(!dry_backup.exists());

    // Add: backup 0600 holding the old value, entry present, others kept.
    let backup1 = tmp.path().join("b1.json");
    let mut a = base.to_vec();
    a.extend([
        "-f",
        cfg,
        "--s3-prefix",
        "openshift-ci/coverage/c1",
        "--backup",
        backup1.to_str().unwrap(),
    ]);
    let out = run(&a, b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    no_secret(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains(backup1.to_str().unwrap()));
    assert_eq!(std::fs::read_to_string(&backup1).unwrap(), original);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&backup1).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let now = read();
    assert!(now.starts_with(&original[..original.len() - 2]), "{now}");
    assert_eq!(entry_config(&now).s3_base_path, "openshift-ci/coverage/c1");

    // An existing backup file is never overwritten.
    let out = run(&a, b"");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&backup1).unwrap(), original);

    // Replace with another prefix.
    let backup2 = tmp.path().join("b2.json");
    let mut a = base.to_vec();
    a.extend([
        "-f",
        cfg,
        "--s3-prefix",
        "p2",
        "--backup",
        backup2.to_str().unwrap(),
    ]);
    let out = run(&a, b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("replaced"));
    assert_eq!(entry_config(&read()).s3_base_path, "p2");

    // Remove: back to the original bytes.
    let backup3 = tmp.path().join("b3.json");
    let mut a = base.to_vec();
    a.extend(["--remove", "--backup", backup3.to_str().unwrap()]);
    let out = run(&a, b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read(), original);
    // Removing again changes nothing.
    let out = run(&a, b"");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to remove"));

    // A wrong token is an error, not a silent success.
    let bad = cp.kubeconfig("wrong-token", "default");
    let out = run(
        &[
            "pull-secret",
            "cluster",
            "--kubeconfig",
            bad.to_str().unwrap(),
            "--remove",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
}
