//! Shared by the S3 tests (`download.rs`, `collect_s3.rs`): the second S3
//! client (boto3, `scripts/s3_boto3.py`) and running covfleet against a
//! `testkit::S3Server`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::S3Server;

/// The boto3 venv's python (installed by `scripts/test.sh setup`), or None
/// (with a loud message) when absent and `COVFLEET_REQUIRE_S3` is unset.
pub fn boto3_python() -> Option<PathBuf> {
    match std::env::var_os("COVFLEET_BOTO3_PYTHON") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        _ if std::env::var_os("COVFLEET_REQUIRE_S3").is_some() => {
            panic!(
                "COVFLEET_BOTO3_PYTHON is not set to boto3's python, and COVFLEET_REQUIRE_S3 is set"
            )
        }
        _ => {
            eprintln!(
                "\n!!! SKIPPING: COVFLEET_BOTO3_PYTHON not set (run scripts/test.sh setup) !!!\n"
            );
            None
        }
    }
}

/// Runs `scripts/s3_boto3.py ARGS` against the server; its stdout.
pub fn boto3(py: &Path, s3: &S3Server, args: &[&str]) -> String {
    let out = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3_boto3.py"))
        .args(args)
        .envs(s3.env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs covfleet with the server's credentials in the environment (the
/// endpoint must be given with --endpoint); (exit code, stdout, stderr).
pub fn covfleet_s3(s3: &S3Server, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args(args)
        .envs(s3.env())
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
