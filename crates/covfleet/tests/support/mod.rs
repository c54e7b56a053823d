//! Test harness for `covfleet collect` / `reset`: real instrumented Go
//! processes inside network namespaces the test creates (and always
//! deletes, also when a test fails), `go tool covdata` as the oracle.
//!
//! Needs root (ip netns), the Go toolchain and python3 (for the listeners
//! that are not coverage servers).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// THE one place naming the coverage server compiled into the fixtures: the
/// server `covfleet instrument` injects. `COVFLEET_TEST_SERVER_GO` overrides
/// it (e.g. with a copy of the seed system's server, for compatibility runs).
pub const SERVER_GO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../go/covserver/coverage_server.go"
);
const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../go/testserver");

pub fn server_go() -> PathBuf {
    std::env::var_os("COVFLEET_TEST_SERVER_GO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SERVER_GO))
}

pub fn covfleet() -> &'static str {
    env!("CARGO_BIN_EXE_covfleet")
}

/// Built Go programs, shared by all tests of this binary.
pub struct Fixtures {
    pub dir: PathBuf,
    /// The fixture built with -cover -covermode=atomic.
    pub covered: PathBuf,
    /// The same program built without -cover (its server says so).
    pub plain: PathBuf,
    /// The recorded-API server for --kube tests.
    pub fakeapi: PathBuf,
    named: Mutex<Vec<String>>,
}

fn go(dir: &Path, args: &[&str]) {
    let out = Command::new("go")
        .args(args)
        .current_dir(dir)
        .env("GOFLAGS", "")
        .output()
        .expect("run go");
    assert!(
        out.status.success(),
        "go {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        // One directory per server source, rebuilt at each run (Go's build
        // cache makes that cheap), under cargo's scratch space for tests.
        let server = server_go();
        let tag: u32 = server
            .to_string_lossy()
            .bytes()
            .fold(2166136261u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(16777619)
            });
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("collect-fixtures-{tag:08x}"));
        let _ = std::fs::remove_dir_all(&dir);
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(
            src.join("go.mod"),
            "module covfleet.invalid/fixture\n\ngo 1.22\n",
        )
        .unwrap();
        for f in ["main.go", "work.go"] {
            std::fs::copy(Path::new(FIXTURE_DIR).join(f), src.join(f)).unwrap();
        }
        std::fs::copy(&server, src.join("coverage_server.go"))
            .expect("copy the coverage server source");
        go(
            &src,
            &[
                "build",
                "-cover",
                "-covermode=atomic",
                "-o",
                "../fixture",
                ".",
            ],
        );
        go(&src, &["build", "-o", "../plain", "."]);
        go(
            Path::new(FIXTURE_DIR),
            &[
                "build",
                "-o",
                dir.join("fakeapi").to_str().unwrap(),
                "./fakeapi",
            ],
        );
        Fixtures {
            covered: dir.join("fixture"),
            plain: dir.join("plain"),
            fakeapi: dir.join("fakeapi"),
            dir,
            named: Mutex::new(Vec::new()),
        }
    })
}

impl Fixtures {
    /// The covered fixture under another file name (the server reports it
    /// as X-Art-Coverage-Binary).
    pub fn named(&self, name: &str) -> PathBuf {
        let path = self.dir.join("named").join(name);
        let mut done = self.named.lock().unwrap();
        if !done.iter().any(|n| n == name) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::copy(&self.covered, &path).unwrap();
            done.push(name.to_string());
        }
        path
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace made by this test, deleted on drop with every
/// process started in it.
pub struct Netns {
    pub name: String,
    host_if: Option<String>,
    /// The namespace's own address when it has a veth link.
    pub ip: Option<String>,
    children: Mutex<Vec<Child>>,
    /// Kept open: a Go program dies of SIGPIPE when its stdout is closed.
    stdouts: Mutex<Vec<(u32, BufReader<std::process::ChildStdout>)>>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running process in a namespace.
#[derive(Debug, Clone, Copy)]
pub struct Proc {
    pub pid: u32,
}

impl Netns {
    /// A namespace with only loopback.
    pub fn new() -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("cfc{}x{n}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name,
            host_if: None,
            ip: None,
            children: Mutex::new(Vec::new()),
            stdouts: Mutex::new(Vec::new()),
        };
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A pod-like namespace: its own address on a veth pair to this host
    /// (198.19.x.y/30, a benchmarking range never routed anywhere).
    pub fn with_veth() -> Netns {
        let mut ns = Netns::new();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let a = (std::process::id() % 200) as u8;
        let b = ((n % 60) * 4) as u8;
        let host_if = format!("cfh{}x{n}", std::process::id() % 100000);
        let peer = format!("cfp{}x{n}", std::process::id() % 100000);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer,
        ]);
        ns.host_if = Some(host_if.clone());
        ip(&["link", "set", &peer, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("198.19.{a}.{}/30", b + 1),
            "dev",
            &host_if,
        ]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "netns",
            "exec",
            &ns.name,
            "ip",
            "addr",
            "add",
            &format!("198.19.{a}.{}/30", b + 2),
            "dev",
            &peer,
        ]);
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", &peer, "up"]);
        ns.ip = Some(format!("198.19.{a}.{}", b + 2));
        ns
    }

    /// The host side's address of a [`Netns::with_veth`] link (the
    /// namespace reaches this host there).
    pub fn host_ip(&self) -> Option<String> {
        let ip: std::net::Ipv4Addr = self.ip.as_deref()?.parse().ok()?;
        Some(std::net::Ipv4Addr::from(u32::from(ip) - 1).to_string())
    }

    fn command(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name])
            .arg(program)
            .args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// Starts a program that prints a line starting with "ready" once it
    /// listens, and waits for that line.
    pub fn spawn_ready(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut c = self.command(program, args, env);
        c.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let pid = child.id();
        let stdout = child.stdout.take().unwrap();
        self.children.lock().unwrap().push(child);
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("ready"),
            "{} did not get ready: {line:?}",
            program.display()
        );
        self.stdouts.lock().unwrap().push((pid, reader));
        // A server started from init() may bind in a goroutine: wait until
        // the process (or the child `unshare --fork` made) listens.
        wait_for(&format!("{} to listen", program.display()), || {
            listening_port(pid).is_some()
        });
        Proc { pid }
    }

    /// Sends SIGUSR1 to a fixture and waits until it printed "worked".
    pub fn more_work(&self, p: Proc) {
        signal(p.pid, "USR1");
        let mut stdouts = self.stdouts.lock().unwrap();
        let (_, reader) = stdouts
            .iter_mut()
            .find(|(pid, _)| *pid == p.pid)
            .expect("a fixture started here");
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "worked");
    }

    /// A plain HTTP server (not a coverage server) on `port`.
    pub fn spawn_http(&self, port: u16) -> Proc {
        let script = format!(
            r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200); self.end_headers()
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"hello")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("0.0.0.0", {port}), H)
print("ready", flush=True)
s.serve_forever()
"#
        );
        self.spawn_ready(Path::new("python3"), &["-c", &script], &[])
    }

    /// A TCP relay on `port` to 127.0.0.1:`to` (its answers carry another
    /// process's identity headers).
    pub fn spawn_relay(&self, port: u16, to: u16) -> Proc {
        let script = format!(
            r#"
import socket, threading
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    finally:
        try: b.shutdown(socket.SHUT_WR)
        except OSError: pass
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {port})); s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    u = socket.create_connection(("127.0.0.1", {to}))
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
"#
        );
        self.spawn_ready(Path::new("python3"), &["-c", &script], &[])
    }

    /// A listener on `port` that accepts connections and never answers.
    pub fn spawn_hang(&self, port: u16) -> Proc {
        let script = format!(
            r#"
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {port})); s.listen(16)
print("ready", flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
"#
        );
        self.spawn_ready(Path::new("python3"), &["-c", &script], &[])
    }

    /// Runs covfleet inside the namespace.
    pub fn covfleet(&self, args: &[&str]) -> Output {
        self.command(Path::new(covfleet()), args, &[])
            .output()
            .expect("run covfleet")
    }

    /// Starts covfleet inside the namespace without waiting.
    pub fn covfleet_spawn(&self, args: &[&str]) -> Child {
        let mut c = self.command(Path::new(covfleet()), args, &[]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().expect("start covfleet")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for mut c in self
            .children
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if let Some(h) = &self.host_if {
            let _ = Command::new("ip")
                .args(["link", "del", h])
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// Waits (bounded) until `pid` is gone.
pub fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Path::new(&format!("/proc/{pid}")).exists() {
        // Reaped by Netns::drop, or a zombie: check the state.
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
        {
            return;
        }
        assert!(Instant::now() < deadline, "pid {pid} did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `f` until it is true (bounded wait, never a timing assertion).
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `go tool covdata textfmt` lines of work.go (the code the fixture runs
/// on demand), sorted.
pub fn work_profile(dir: &Path) -> Vec<String> {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("go")
        .args(["tool", "covdata", "textfmt", "-i"])
        .arg(dir)
        .arg("-o")
        .arg(out_file.path())
        .output()
        .expect("go tool covdata");
    assert!(
        out.status.success(),
        "covdata textfmt -i {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(out_file.path()).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("/work.go:"))
        .map(String::from)
        .collect();
    lines.sort();
    assert!(
        !lines.is_empty(),
        "no work.go lines from {}:\n{text}",
        dir.display()
    );
    lines
}

/// The sum of the counts in textfmt lines.
pub fn total_count(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Entry directories under `out/coverage`.
pub fn entries(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("coverage"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A copy of one entry with only its newest counter file (what compile
/// reads: snapshots of one process are cumulative).
pub fn latest_only(entry: &Path) -> tempfile::TempDir {
    let md = read_json(&entry.join("metadata.json"));
    let latest = md["latest_counters"].as_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(entry).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("covmeta.") || name == latest {
            std::fs::copy(e.path(), tmp.path().join(&name)).unwrap();
        }
    }
    tmp
}

pub fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The direct children of `pid` (e.g. the program `unshare --fork` started).
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The recorded-API server (`go/testserver/fakeapi`) on loopback, stopped on drop.
pub struct FakeApi {
    child: Child,
    _stdout: BufReader<std::process::ChildStdout>,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl FakeApi {
    pub fn start(pods: &serde_json::Value, token: &str) -> FakeApi {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pods.json");
        std::fs::write(&file, serde_json::to_vec_pretty(pods).unwrap()).unwrap();
        let mut child = Command::new(&fixtures().fakeapi)
            .arg("-pods")
            .arg(&file)
            .args(["-token", token])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start fakeapi");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("fakeapi said {line:?}"));
        FakeApi {
            url: format!("http://{addr}"),
            child,
            _stdout: reader,
            _dir: dir,
        }
    }

    /// Replaces the recorded pod list (the server rereads it on every list).
    pub fn set_pods(&self, pods: &serde_json::Value) {
        let tmp = self._dir.path().join("pods.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(pods).unwrap()).unwrap();
        std::fs::rename(&tmp, self._dir.path().join("pods.json")).unwrap();
    }

    /// A kubeconfig pointing at this server.
    pub fn kubeconfig(&self, dir: &Path, token: &str, namespace: &str) -> PathBuf {
        let path = dir.join(format!("kubeconfig-{token}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: {namespace}\n\
             current-context: fake\nusers:\n- name: tester\n  user:\n    token: {token}\n",
            self.url
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port in 53700-53799 on which `pid` (or one of its children) listens.
pub fn listening_port(pid: u32) -> Option<u16> {
    let mut pids = vec![pid];
    pids.extend(children_of(pid));
    let tables: String = ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .collect();
    let listening = scrape::local::parse_tcp_table(&tables);
    for p in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let link = link.to_string_lossy().to_string();
            if let Some(l) = listening.iter().find(|l| {
                link == format!("socket:[{}]", l.inode) && (53700..=53799).contains(&l.port)
            }) {
                return Some(l.port);
            }
        }
    }
    None
}

/// A cgroup directory this test made; on drop its processes go back to the
/// root and the directories are removed (leaf first).
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    root: PathBuf,
}

impl Cgroup {
    pub fn new(root: &str, rel: &str) -> Cgroup {
        let root = PathBuf::from(root);
        let mut dirs = Vec::new();
        let mut cur = root.clone();
        for part in rel.split('/') {
            cur = cur.join(part);
            dirs.push(cur.clone());
        }
        std::fs::create_dir_all(&cur).unwrap_or_else(|e| panic!("{}: {e}", cur.display()));
        Cgroup { dirs, root }
    }

    pub fn add(&self, pid: u32) {
        let leaf = self.dirs.last().unwrap();
        std::fs::write(leaf.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                for p in procs.split_whitespace() {
                    let _ = std::fs::write(self.root.join("cgroup.procs"), p);
                }
            }
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Directories holding metadata.json under `root` (a sink), with their metadata.
pub fn stored(root: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "metadata.json")
                && let Ok(b) = std::fs::read(&p)
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b)
            {
                out.push((d.clone(), v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The path components of `dir` below `root`.
pub fn rel_parts(dir: &Path, root: &Path) -> Vec<String> {
    dir.strip_prefix(root)
        .unwrap_or(dir)
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect()
}

/// A child process killed on drop (unless taken out first).
pub struct Running(pub Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A short-lived program built with `go build -cover`: counts to its
/// argument, prints a word, exits.
pub const EXIT_PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
	"strconv"
)

func classify(i int) string {
	if i%3 == 0 {
		return "fizz"
	}
	if i%5 == 0 {
		return "buzz"
	}
	return ""
}

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil {
		os.Exit(2)
	}
	c := 0
	for i := 0; i < n; i++ {
		if classify(i) != "" {
			c++
		}
	}
	if n > 10 {
		fmt.Println("big", c)
	} else {
		fmt.Println("small", c)
	}
}
"#;

/// Builds the short-lived program as `DIR/agt-exit`.
pub fn build_exit_program(dir: &Path) -> PathBuf {
    let src = dir.join("exitsrc");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("go.mod"),
        "module covfleet.invalid/exitprog\n\ngo 1.22\n",
    )
    .unwrap();
    std::fs::write(src.join("main.go"), EXIT_PROGRAM).unwrap();
    let bin = dir.join("agt-exit");
    let out = Command::new("go")
        .args(["build", "-cover", "-covermode=atomic", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// Runs the program once with GOCOVERDIR=`dir`.
pub fn run_exit_program(bin: &Path, arg: u32, dir: &Path) {
    let st = Command::new(bin)
        .arg(arg.to_string())
        .env("GOCOVERDIR", dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}
