//! `covfleet s3-setup` against moto's AWS API emulator in server mode
//! (installed by `ensure_moto` in scripts/lib.sh; `COVFLEET_MOTO_SERVER`):
//! real SigV4-signed HTTP to a real process on loopback. `--endpoint` mode
//! (bucket + 90-day lifecycle) and the AWS mode (bucket, lifecycle, then the
//! IAM policy/user/access key through the CloudFormation template in
//! deploy/) with AWS_ENDPOINT_URL_S3/_CLOUDFORMATION pointing at moto. The
//! resulting IAM objects are read back with boto3 (moto's venv).
//!
//! moto does NOT check: SigV4 signatures (by default any signature is
//! accepted), IAM policy enforcement (the new key could do anything),
//! lifecycle expiry actually happening, or CloudFormation rollback
//! behaviour of real AWS. Skips (with a printed reason) when moto is not
//! installed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn moto_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COVFLEET_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("COVFLEET_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/covfleet")
        });
    let mut found: Vec<PathBuf> = std::fs::read_dir(&cache)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("moto-"))
        .map(|e| e.path().join("bin/moto_server"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

struct Moto {
    child: Child,
    url: String,
    python: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Option<Moto> {
    let Some(server) = moto_server() else {
        eprintln!("SKIP: moto is not installed (scripts/test.sh setup installs it)");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", server.display()));
    let url = format!("http://127.0.0.1:{port}");
    let moto = Moto {
        child,
        url: url.clone(),
        python: server.parent().unwrap().join("python"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start on {url}");
        std::thread::sleep(Duration::from_millis(200));
    }
    Some(moto)
}

fn s(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn covfleet(moto: &Moto, args: &[&str], aws_mode: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_covfleet"));
    c.args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIAADMINEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "admin-secret-value")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_ENDPOINT_URL_CLOUDFORMATION");
    if aws_mode {
        c.env("AWS_ENDPOINT_URL_S3", &moto.url)
            .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &moto.url);
    }
    c.output().unwrap()
}

/// Runs a boto3 snippet against moto; its stdout parsed as JSON.
fn boto3(moto: &Moto, code: &str) -> Value {
    let script = format!(
        "import boto3, json\nkw=dict(endpoint_url={:?}, region_name='eu-west-1', aws_access_key_id='x', aws_secret_access_key='y')\n{code}",
        moto.url
    );
    let out = Command::new(&moto.python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "boto3: {}", s(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", s(&out)))
}

fn lifecycle(moto: &Moto, bucket: &str) -> Value {
    boto3(
        moto,
        &format!(
            "print(json.dumps(boto3.client('s3', **kw).get_bucket_lifecycle_configuration(Bucket={bucket:?})['Rules'], default=str))"
        ),
    )
}

fn config(path: &Path) -> Value {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn endpoint_mode_bucket_and_lifecycle_idempotent() {
    let Some(moto) = start_moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("configs");
    let args = [
        "s3-setup",
        "--bucket",
        "cov-endpoint",
        "--region",
        "us-east-1",
        "--endpoint",
        &moto.url,
        "--configs-dir",
        dir.to_str().unwrap(),
    ];
    for _ in 0..2 {
        let out = covfleet(&moto, &args, false);
        assert!(out.status.success(), "{}", s(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("admin-secret-value"), "{err}");
    }
    let rules = lifecycle(&moto, "cov-endpoint");
    assert_eq!(rules.as_array().unwrap().len(), 1, "{rules}");
    assert_eq!(rules[0]["Expiration"]["Days"], 90, "{rules}");
    assert_eq!(rules[0]["Status"], "Enabled");
    let c = config(&dir.join("cov-endpoint.json"));
    assert_eq!(c["s3Bucket"], "cov-endpoint");
    assert_eq!(c["s3Endpoint"], moto.url.as_str());
    assert_eq!(c["s3BasePath"], "openshift-ci/coverage");
    assert_eq!(c["awsSecretAccessKey"], "admin-secret-value");
    // No stack was made in endpoint mode.
    let stacks = boto3(
        &moto,
        "print(json.dumps([s['StackName'] for s in boto3.client('cloudformation', **kw).describe_stacks()['Stacks']]))",
    );
    assert_eq!(stacks, serde_json::json!([]));
}

#[test]
fn aws_mode_creates_the_stack_once() {
    let Some(moto) = start_moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("configs");
    let args = [
        "s3-setup",
        "--bucket",
        "cov-aws",
        "--region",
        "eu-west-1",
        "--stack-name",
        "cov-stack",
        "--base-path",
        "/ci/cov/",
        "--configs-dir",
        dir.to_str().unwrap(),
    ];
    let out = covfleet(&moto, &args, true);
    assert!(out.status.success(), "{}", s(&out));
    let c = config(&dir.join("cov-aws.json"));
    assert_eq!(c["s3Region"], "eu-west-1");
    assert_eq!(c["s3BasePath"], "ci/cov");
    assert!(c.get("s3Endpoint").is_none());
    let key = c["awsAccessKeyId"].as_str().unwrap().to_string();
    assert_ne!(key, "AKIAADMINEXAMPLE");
    let secret = c["awsSecretAccessKey"].as_str().unwrap().to_string();
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(&secret));
    }
    assert_eq!(lifecycle(&moto, "cov-aws")[0]["Expiration"]["Days"], 90);
    let loc = boto3(
        &moto,
        "print(json.dumps(boto3.client('s3', **kw).get_bucket_location(Bucket='cov-aws')['LocationConstraint']))",
    );
    assert_eq!(loc, "eu-west-1");

    // The key belongs to a user whose only policy allows exactly the three actions.
    let iam = boto3(
        &moto,
        &format!(
            r#"
iam = boto3.client('iam', **kw)
users = [u['UserName'] for u in iam.list_users()['Users']]
owner = [u for u in users if any(k['AccessKeyId'] == {key:?} for k in iam.list_access_keys(UserName=u)['AccessKeyMetadata'])]
pols = iam.list_attached_user_policies(UserName=owner[0])['AttachedPolicies']
docs = []
for p in pols:
    v = iam.get_policy(PolicyArn=p['PolicyArn'])['Policy']['DefaultVersionId']
    docs.append(iam.get_policy_version(PolicyArn=p['PolicyArn'], VersionId=v)['PolicyVersion']['Document'])
print(json.dumps(dict(owner=owner, docs=docs), default=str))
"#
        ),
    );
    assert_eq!(iam["owner"].as_array().unwrap().len(), 1, "{iam}");
    let docs = iam["docs"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{iam}");
    let doc = if docs[0].is_string() {
        serde_json::from_str::<Value>(docs[0].as_str().unwrap()).unwrap()
    } else {
        docs[0].clone()
    };
    let mut grants: Vec<(String, String)> = Vec::new();
    for st in doc["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow");
        let actions: Vec<String> = match &st["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
            other => panic!("{other}"),
        };
        for a in actions {
            grants.push((a, st["Resource"].as_str().unwrap().to_string()));
        }
    }
    grants.sort();
    assert_eq!(
        grants,
        vec![
            ("s3:GetObject".into(), "arn:aws:s3:::cov-aws/*".into()),
            ("s3:ListBucket".into(), "arn:aws:s3:::cov-aws".into()),
            ("s3:PutObject".into(), "arn:aws:s3:::cov-aws/*".into()),
        ]
    );

    // A second run reuses the stack: same key, still one stack.
    let out = covfleet(&moto, &args, true);
    assert!(out.status.success(), "{}", s(&out));
    assert_eq!(
        config(&dir.join("cov-aws.json"))["awsAccessKeyId"],
        key.as_str()
    );
    let stacks = boto3(
        &moto,
        "print(json.dumps([s['StackStatus'] for s in boto3.client('cloudformation', **kw).describe_stacks()['Stacks']]))",
    );
    assert_eq!(stacks, serde_json::json!(["CREATE_COMPLETE"]));
}
