//! Helpers for the instrumentation tests: Go trees on disk, the go command,
//! the covfleet binary, instrumented processes and a tiny HTTP/1.0 client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("covfleet-instrument-")
        .tempdir()
        .unwrap()
}

pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
}

pub fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every file under `dir` (relative path → bytes), symlinks not followed.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let p = e.path();
            if ft.is_dir() {
                walk(root, &p, out);
            } else if ft.is_file() {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Environment for go commands in tests: offline, no workspace, no toolchain switch.
pub fn go_test_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GOFLAGS", "-buildvcs=false"),
        ("GOPROXY", "off"),
        ("GOTOOLCHAIN", "local"),
        ("GOWORK", "off"),
    ]
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run_ok(cmd: &mut Command) -> Out {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let out = Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert_eq!(
        out.code, 0,
        "{cmd:?} failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    out
}

/// Runs `go ARGS` in `dir` and asserts success.
pub fn go(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    run_ok(
        Command::new("go")
            .args(args)
            .current_dir(dir)
            .envs(go_test_env())
            .envs(env.iter().copied()),
    )
}

pub fn go_env(name: &str) -> String {
    let o = Command::new("go")
        .args(["env", name])
        .output()
        .expect("go must be installed");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

pub fn covfleet(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn covdata_textfmt(dir: &Path) -> String {
    let out = dir.with_extension("textfmt.txt");
    run_ok(Command::new("go").args([
        "tool",
        "covdata",
        "textfmt",
        "-i",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]));
    std::fs::read_to_string(out).unwrap()
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request to 127.0.0.1:port (the server closes after answering).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Resp> {
    request(port, method, path, headers, Duration::from_secs(30))
}

fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> std::io::Result<Resp> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    try_http(port, method, path, headers)
        .unwrap_or_else(|e| panic!("{method} 127.0.0.1:{port}{path}: {e}"))
}

pub struct Payload {
    pub meta_filename: String,
    pub meta_data: Vec<u8>,
    pub counters_filename: String,
    pub counters_data: Vec<u8>,
    pub timestamp: i64,
}

/// A running instrumented program: a line on stdin makes it work and answer
/// "ok …"; closing stdin makes main return.
pub struct Served {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub port: u16,
    /// Default GOCOVERDIR (without one, Go warns on stderr at exit).
    _coverdir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Served {
    #[allow(clippy::zombie_processes)] // Drop kills and reaps the child
    pub fn start(bin: &Path, env: &[(&str, &str)]) -> Served {
        let first = free_port();
        let coverdir = tempdir();
        let mut child = Command::new(bin)
            .env("COVERAGE_PORT", first.to_string())
            .env("GOCOVERDIR", coverdir.path())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let pid = child.id().to_string();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // The server moves to the next port when one is taken.
            for port in first..first.saturating_add(5) {
                if let Ok(r) = request(port, "HEAD", "/", &[], Duration::from_secs(2))
                    && r.header("X-Art-Coverage-Pid") == Some(pid.as_str())
                {
                    return Served {
                        child,
                        stdin,
                        stdout,
                        port,
                        _coverdir: coverdir,
                    };
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}: no coverage server for pid {pid} near port {first}",
                bin.display()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        assert!(answer.starts_with("ok"), "program answered {answer:?}");
    }

    pub fn payload(&self, path: &str) -> Payload {
        let r = http(self.port, "GET", path, &[]);
        assert_eq!(
            r.status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("field {k} missing in {v}"))
                .to_string()
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        Payload {
            meta_filename: s("meta_filename"),
            meta_data: b64.decode(s("meta_data")).unwrap(),
            counters_filename: s("counters_filename"),
            counters_data: b64.decode(s("counters_data")).unwrap(),
            timestamp: v["timestamp"].as_i64().expect("timestamp"),
        }
    }

    /// GET /coverage and write covmeta + covcounters into `dir`.
    pub fn scrape_into(&self, dir: &Path) -> Payload {
        let p = self.payload("/coverage");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(&p.meta_filename), &p.meta_data).unwrap();
        std::fs::write(dir.join(&p.counters_filename), &p.counters_data).unwrap();
        p
    }

    /// Close stdin, wait for a clean exit, and check the server stayed silent.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit {status:?}: {stderr}");
        assert!(stderr.is_empty(), "the program logged: {stderr}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
