//! Test-only helpers shared by the workspace's test suites.
//!
//! [`S3Server`] runs a real S3-compatible server, `s3s-fs` 0.14.1 (from
//! crates.io; it verifies AWS SigV4 signatures), on a free loopback port
//! with a temporary root directory, one bucket and one key pair, and stops
//! it on drop. `scripts/test.sh setup` installs the binary into
//! `$COVFLEET_CACHE/s3s-fs-0.14.1/bin/s3s-fs`; `COVFLEET_S3S_FS` overrides
//! the path.
//!
//! When the binary is missing, [`S3Server::start`] returns `None` after a
//! loud message, so a developer without it can still run the other tests —
//! unless `COVFLEET_REQUIRE_S3` is set (the test script sets it), in which
//! case it panics and the suite fails.
//!
//! ```no_run
//! let Some(s3) = testkit::S3Server::start() else { return };
//! let url = format!("s3://{}/prefix", s3.bucket);
//! // … talk to s3.endpoint with s3.access_key / s3.secret_key …
//! ```

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Installs rustls' ring provider as the process default (what the
/// `covfleet` binary does at startup), for tests that talk HTTPS-capable
/// clients. Idempotent.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The pinned s3s-fs version.
pub const S3S_FS_VERSION: &str = "0.14.1";

/// A running s3s-fs server.
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// An existing, empty bucket.
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// The region to sign for (s3s accepts any).
    pub region: String,
    port: u16,
    binary: PathBuf,
    root: tempfile::TempDir,
    child: Option<Child>,
}

/// Where the s3s-fs binary is: `COVFLEET_S3S_FS`, else the cache path.
pub fn s3s_fs_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COVFLEET_S3S_FS") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let cache = std::env::var_os("COVFLEET_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/covfleet")))?;
    let p = cache.join(format!("s3s-fs-{S3S_FS_VERSION}/bin/s3s-fs"));
    p.is_file().then_some(p)
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

impl S3Server {
    /// Starts a server, or returns `None` (after saying so on stderr) when
    /// s3s-fs is not installed and `COVFLEET_REQUIRE_S3` is unset.
    pub fn start() -> Option<S3Server> {
        install_crypto();
        let Some(binary) = s3s_fs_binary() else {
            let msg = format!(
                "s3s-fs {S3S_FS_VERSION} not found (set COVFLEET_S3S_FS or run \
                 `scripts/test.sh setup`)"
            );
            if std::env::var_os("COVFLEET_REQUIRE_S3").is_some() {
                panic!("{msg}, and COVFLEET_REQUIRE_S3 is set");
            }
            eprintln!("\n!!! SKIPPING S3 TEST: {msg} !!!\n");
            return None;
        };
        let root = tempfile::tempdir().expect("temp dir for s3s-fs");
        let bucket = "covfleet-test".to_string();
        std::fs::create_dir_all(root.path().join(&bucket)).expect("bucket dir");
        let mut s = S3Server {
            endpoint: String::new(),
            bucket,
            access_key: "covfleet-test-key".into(),
            secret_key: "covfleet-test-secret-0123456789".into(),
            region: "us-east-1".into(),
            port: 0,
            binary,
            root,
            child: None,
        };
        for _ in 0..5 {
            s.port = free_port();
            s.endpoint = format!("http://127.0.0.1:{}", s.port);
            if s.spawn() {
                return Some(s);
            }
        }
        panic!("s3s-fs did not start (see its output above)");
    }

    /// Starts the server and waits until it says it listens (its own log
    /// line, so a port taken by someone else is never mistaken for ours).
    fn spawn(&mut self) -> bool {
        let mut child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
            ])
            .arg(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "s3s_fs=info")
            .env("NO_COLOR", "1")
            .spawn()
            .expect("spawn s3s-fs");
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                use std::io::BufRead;
                // Keep draining so the server never blocks on a full pipe.
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if line.contains("server is running at") {
                        let _ = tx.send(());
                    }
                }
            });
        }
        self.child = Some(child);
        let ready = rx.recv_timeout(Duration::from_secs(20)).is_ok();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        if ready && TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
            return true;
        }
        self.stop();
        false
    }

    /// The directory holding the buckets (`<root>/<bucket>/<key>`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The directory of the bucket: objects are plain files under it.
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.path().join(&self.bucket)
    }

    /// Stops the server (connections are refused until [`S3Server::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and root.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..20 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("s3s-fs did not restart on port {}", self.port);
    }

    /// Environment variables that point an AWS client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
