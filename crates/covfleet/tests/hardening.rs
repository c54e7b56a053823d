//! Regression tests for issue 13 ("a pod is not trusted"): `covfleet
//! collect` against hostile coverage servers the tests run themselves on
//! loopback (plain threads answering HTTP/1.1), bounded in time and memory.
//! Each test is named after the defect it covers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use covdata::{CounterFile, CounterGranularity, CounterMode, FuncCounters, FuncDesc, MetaFile};

fn covfleet() -> &'static str {
    env!("CARGO_BIN_EXE_covfleet")
}

fn s(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One answer of a hostile server.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

#[derive(Clone)]
enum Body {
    Bytes(Vec<u8>),
    /// `n` zero bytes, streamed without holding them.
    Zeros(usize),
}

/// What a request looked like.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// An HTTP server on 127.0.0.1 answering every request with `handler`;
/// stops accepting when dropped.
struct Hostile {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Open connections, shut down on drop (as when a process exits).
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Hostile {
    fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Hostile {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler: Handler = Arc::new(handler);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let conns = Arc::new(Mutex::new(Vec::new()));
        let conns2 = conns.clone();
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        if let Ok(c2) = c.try_clone() {
                            conns2.lock().unwrap().push(c2);
                        }
                        let (h, seen) = (handler.clone(), seen2.clone());
                        std::thread::spawn(move || serve(c, &h, &seen));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Hostile {
            port,
            seen,
            stop,
            conns,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        // The accept loop notices within 10 ms and drops the listener.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn serve(c: TcpStream, h: &Handler, seen: &Mutex<Vec<Seen>>) {
    c.set_nonblocking(false).ok();
    c.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut it = line.split_whitespace();
        let (method, path) = (
            it.next().unwrap_or("").to_string(),
            it.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut hl = String::new();
            if r.read_line(&mut hl).unwrap_or(0) == 0 {
                return;
            }
            let hl = hl.trim_end();
            if hl.is_empty() {
                break;
            }
            if let Some((k, v)) = hl.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let req = Seen {
            method,
            path,
            headers,
        };
        seen.lock().unwrap().push(req.clone());
        let a = h(&req);
        let len = match &a.body {
            Body::Bytes(b) => b.len(),
            Body::Zeros(n) => *n,
        };
        let mut head = format!("HTTP/1.1 {} X\r\nContent-Length: {len}\r\n", a.status);
        for (k, v) in &a.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        if req.method == "HEAD" {
            continue;
        }
        let ok = match &a.body {
            Body::Bytes(b) => w.write_all(b).is_ok(),
            Body::Zeros(n) => {
                let chunk = vec![0u8; 1 << 16];
                let mut left = *n;
                let mut ok = true;
                while left > 0 && ok {
                    let k = left.min(chunk.len());
                    ok = w.write_all(&chunk[..k]).is_ok();
                    left -= k;
                }
                ok
            }
        };
        if !ok {
            return;
        }
    }
}

fn identity(pid: u32, binary: &str) -> Vec<(String, String)> {
    vec![
        ("X-Art-Coverage-Server".into(), "1".into()),
        ("X-Art-Coverage-Pid".into(), pid.to_string()),
        ("X-Art-Coverage-Binary".into(), binary.into()),
    ]
}

/// A valid meta-data file (Go ≥ 1.24 hashes) with one function in `file`.
fn meta(file: &str) -> MetaFile {
    let mut pkg = covdata::PackageMeta {
        path: "example.invalid/app".into(),
        name: "main".into(),
        module_path: "example.invalid/app".into(),
        hash: [0; 16],
        funcs: vec![FuncDesc {
            name: "main".into(),
            file: file.into(),
            units: vec![
                covdata::Unit {
                    st_line: 3,
                    st_col: 13,
                    en_line: 5,
                    en_col: 2,
                    stmts: 2,
                },
                covdata::Unit {
                    st_line: 6,
                    st_col: 2,
                    en_line: 6,
                    en_col: 10,
                    stmts: 1,
                },
            ],
            literal: false,
        }],
    };
    pkg.hash = pkg.compute_hash();
    let mut m = MetaFile {
        version: 1,
        hash: [0; 16],
        mode: CounterMode::ATOMIC,
        granularity: CounterGranularity::PER_BLOCK,
        packages: vec![pkg],
    };
    m.hash = m.runtime_hash();
    m
}

fn counters(m: &MetaFile, values: [u32; 2]) -> Vec<u8> {
    CounterFile {
        meta_hash: m.hash,
        args: CounterFile::args_for(&["/app".into()], "linux", "amd64"),
        os_args: vec!["/app".into()],
        goos: "linux".into(),
        goarch: "amd64".into(),
        funcs: vec![FuncCounters {
            pkg: 0,
            func: 0,
            counters: values.to_vec(),
        }],
        ..Default::default()
    }
    .encode()
}

fn coverage_json(meta: Option<&[u8]>, counters: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::to_vec(&serde_json::json!({
        "meta_filename": "",
        "meta_data": meta.map(|m| b64.encode(m)).unwrap_or_default(),
        "counters_filename": "covcounters.x",
        "counters_data": b64.encode(counters),
        "timestamp": 1,
    }))
    .unwrap()
}

/// A well-behaved server for `m` with counters `values`, on any path.
fn good(
    pid: u32,
    binary: &str,
    m: &MetaFile,
    values: [u32; 2],
) -> impl Fn(&Seen) -> Answer + use<> {
    let (meta, ctr, binary) = (m.encode(), counters(m, values), binary.to_string());
    move |req: &Seen| {
        let body = if req.path.ends_with("/coverage") || req.path.contains("/coverage?") {
            let nometa = req.path.contains("nometa=1");
            coverage_json((!nometa).then_some(&meta[..]), &ctr)
        } else {
            b"ok\n".to_vec()
        };
        Answer {
            status: 200,
            headers: identity(pid, &binary),
            body: Body::Bytes(body),
        }
    }
}

fn collect(args: &[&str]) -> Output {
    Command::new(covfleet())
        .arg("collect")
        .args(args)
        .args(["--retries", "0", "--timeout", "20s"])
        .output()
        .expect("run covfleet")
}

fn entries(out: &Path) -> Vec<PathBuf> {
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

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// Runs covfleet under a python3 wrapper that prints the peak RSS (KiB) of
/// its child: the memory covfleet really used, measured by the kernel.
fn collect_measured(args: &[&str]) -> (Output, u64) {
    let script = "import resource,subprocess,sys\n\
                  p=subprocess.run(sys.argv[1:])\n\
                  sys.stderr.write('\\nMAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
                  sys.exit(p.returncode)\n";
    let out = Command::new("python3")
        .args(["-c", script, covfleet(), "collect"])
        .args(args)
        .args(["--retries", "0", "--timeout", "60s"])
        .output()
        .expect("python3");
    let err = String::from_utf8_lossy(&out.stderr);
    let kib: u64 = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("MAXRSS "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no MAXRSS: {}", s(&out)));
    (out, kib)
}

/// #4: a 256 KiB gzip bomb (256 MiB of zeros) is cut at --max-snapshot-size
/// while it is decompressed; the collector never holds the whole of it.
#[test]
fn issue13_4_gzip_bomb_is_cut_at_the_snapshot_limit() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let server = Hostile::start(move |_req| {
        let mut h = identity(7, "bomb");
        h.push(("Content-Encoding".into(), "gzip".into()));
        Answer {
            status: 200,
            headers: h,
            body: Body::Bytes(bomb.clone()),
        }
    });
    let out_dir = tempfile::tempdir().unwrap();
    let (out, kib) = collect_measured(&[
        "--url",
        &server.url(),
        "-o",
        out_dir.path().to_str().unwrap(),
        "--max-snapshot-size",
        "8MiB",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("larger than 8 MiB decompressed"), "{err}");
    assert!(entries(out_dir.path()).is_empty());
    // Unbounded it took 256 MiB and more; bounded, a few times 8 MiB.
    assert!(kib < 100 << 10, "peak RSS {kib} KiB");
}

/// #4: four servers each sending a 100 MiB body at once: the shared budget
/// (--max-in-flight) keeps the answers held together under it, instead of
/// 4 × 60 MiB (and copies).
#[test]
fn issue13_4_huge_bodies_share_one_memory_budget() {
    let servers: Vec<Hostile> = (0..4)
        .map(|i| {
            Hostile::start(move |_req| Answer {
                status: 200,
                headers: identity(100 + i, "huge"),
                body: Body::Zeros(100 << 20),
            })
        })
        .collect();
    let out_dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = Vec::new();
    for s in &servers {
        args.push("--url".into());
        args.push(s.url());
    }
    args.extend(
        [
            "-o",
            out_dir.path().to_str().unwrap(),
            "--max-snapshot-size",
            "128MiB",
            "--max-in-flight",
            "128MiB",
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, kib) = collect_measured(&argv);
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("error: http://").count(), 4, "{err}");
    assert!(err.contains("malformed"), "{err}");
    // Unbounded: 4 × 100 MiB at least. Bounded: one answer at a time.
    assert!(kib < 300 << 10, "peak RSS {kib} KiB");
}

/// #9: escape sequences in a server's body never reach the terminal; a 401
/// whose body says "not built with -cover" and a 500 that merely mentions
/// "cover" are failures (exit 1), not skips.
#[test]
fn issue13_9_escapes_stripped_and_only_the_servers_own_message_skips() {
    let evil = "\x1b]0;pwned\x07\x1b[2J\x1b[31mnot built with -cover\u{9b}31m";
    let a = Hostile::start(move |req| Answer {
        status: if req.method == "HEAD" { 200 } else { 401 },
        headers: identity(11, "evil\u{9b}2J"),
        body: Body::Bytes(evil.as_bytes().to_vec()),
    });
    let b = Hostile::start(|req| Answer {
        status: if req.method == "HEAD" { 200 } else { 500 },
        headers: identity(12, "b"),
        body: Body::Bytes(b"discovery failed: cover your ears".to_vec()),
    });
    let out_dir = tempfile::tempdir().unwrap();
    let out = collect(&[
        "--url",
        &a.url(),
        "--url",
        &b.url(),
        "-o",
        out_dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('\x1b') && !err.contains('\u{9b}') && !err.contains('\x07'),
        "{err:?}"
    );
    assert_eq!(err.matches("error: http://").count(), 2, "{err}");
    assert!(err.contains("skipped 0, failed 2"), "{err}");
}

/// #20: a -covermode=set binary, a server that is no coverage server, and
/// nothing found: each run collected nothing and says why, exit 1.
#[test]
fn issue13_20_nothing_collected_is_a_failure_with_a_reason() {
    let set = Hostile::start(|req| {
        Answer {
        status: if req.method == "HEAD" { 200 } else { 500 },
        headers: identity(21, "setmode"),
        body: Body::Bytes(
            b"coverage unavailable: WriteCounters invoked for program built with -covermode=set (please use -covermode=atomic)\n"
                .to_vec(),
        ),
    }
    });
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap();
    let out = collect(&["--url", &set.url(), "-o", o]);
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "nothing collected: built with -covermode=set: live scraping needs -covermode=atomic"
        ),
        "{err}"
    );
    let plain = Hostile::start(|_| Answer {
        status: 200,
        headers: vec![],
        body: Body::Bytes(b"hello".to_vec()),
    });
    let out = collect(&["--url", &plain.url(), "-o", o, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing collected: HTTP 200 without"));
    // A port range where nothing listens (the hostile servers' ports are
    // ephemeral, far from this range in a test's own network).
    let out = Command::new(covfleet())
        .args(["collect", "--local", "--ports", "1-1", "-o", o])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("nothing collected: no coverage server found"),
        "{}",
        s(&out)
    );
}

/// #6: two URLs on one host:port with different paths, same PID and binary,
/// are two targets with two entries.
#[test]
fn issue13_6_url_paths_are_distinct_entries() {
    let m = meta("example.invalid/app/main.go");
    let (good_a, good_b) = (good(1, "app", &m, [5, 1]), good(1, "app", &m, [1, 0]));
    let server = Hostile::start(move |req| {
        if req.path.starts_with("/b/") {
            good_b(req)
        } else {
            good_a(req)
        }
    });
    let out_dir = tempfile::tempdir().unwrap();
    let out = collect(&[
        "--url",
        &format!("{}/a", server.url()),
        "--url",
        &format!("{}/b", server.url()),
        "-o",
        out_dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", s(&out));
    let e = entries(out_dir.path());
    assert_eq!(e.len(), 2, "{e:?}");
    let latest: Vec<u32> = e
        .iter()
        .map(|d| {
            let md = read_json(&d.join("metadata.json"));
            let data = std::fs::read(d.join(md["latest_counters"].as_str().unwrap())).unwrap();
            CounterFile::decode(&data).unwrap().funcs[0].counters[0]
        })
        .collect();
    assert_eq!(latest, vec![5, 1], "{e:?}");
}

/// #7: Kubernetes-length names and a long phase stay within a file name.
#[test]
fn issue13_7_long_entry_names_are_capped_and_distinct() {
    let m = meta("example.invalid/app/main.go");
    let long_bin = "b".repeat(120);
    let h = good(3, &long_bin, &m, [1, 1]);
    let server = Hostile::start(move |req| h(req));
    let out_dir = tempfile::tempdir().unwrap();
    let route = "r".repeat(120);
    for phase in ["p".repeat(100), format!("{}q", "p".repeat(99))] {
        let out = collect(&[
            "--url",
            &format!("{}/{route}", server.url()),
            "-o",
            out_dir.path().to_str().unwrap(),
            "--phase",
            &phase,
        ]);
        assert!(out.status.success(), "{}", s(&out));
    }
    let e = entries(out_dir.path());
    assert_eq!(e.len(), 2, "{e:?}");
    for d in &e {
        let n = d.file_name().unwrap().len();
        assert!(n <= 200, "{n}: {}", d.display());
    }
}

/// #12 and #2: truncated counters, a 60-byte meta file and a meta file
/// whose file names were altered under the original hash are rejected
/// before anything is stored.
#[test]
fn issue13_12_2_what_is_stored_decodes_and_matches_its_hash() {
    let m = meta("example.invalid/app/main.go");
    let good_ctr = counters(&m, [1, 1]);
    let mut forged = m.clone();
    forged.packages[0].funcs[0].file = "example.invalid/app/EVIL.go".into();
    // Keep the package's and the file's original hashes.
    let forged = forged.encode();
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, &str)> = vec![
        (
            "truncated counters",
            m.encode(),
            good_ctr[..good_ctr.len() - 3].to_vec(),
            "counters_data does not decode",
        ),
        (
            "short meta",
            m.encode()[..60].to_vec(),
            good_ctr.clone(),
            "meta-data does not decode",
        ),
        (
            "forged meta",
            forged,
            good_ctr.clone(),
            "does not match its hash",
        ),
    ];
    for (what, meta_bytes, ctr, expect) in cases {
        let server = Hostile::start(move |req| Answer {
            status: 200,
            headers: identity(4, "app"),
            body: Body::Bytes(if req.method == "GET" {
                coverage_json(Some(&meta_bytes), &ctr)
            } else {
                Vec::new()
            }),
        });
        let out_dir = tempfile::tempdir().unwrap();
        let out = collect(&[
            "--url",
            &server.url(),
            "-o",
            out_dir.path().to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", s(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expect),
            "{what}: {}",
            s(&out)
        );
        assert!(entries(out_dir.path()).is_empty(), "{what}");
    }
}

/// #18 and #21: credentials in a URL are sent (Basic) but never stored or
/// printed; a loopback URL is recorded under this host's name, as --local
/// records it.
#[test]
fn issue13_18_21_credentials_redacted_and_loopback_is_this_host() {
    let m = meta("example.invalid/app/main.go");
    let h = good(5, "app", &m, [1, 1]);
    let server = Hostile::start(move |req| h(req));
    let out_dir = tempfile::tempdir().unwrap();
    let url = format!("http://alice:s3cr%21t@127.0.0.1:{}", server.port);
    let out = collect(&["--url", &url, "-o", out_dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", s(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("s3cr"),
        "{}",
        s(&out)
    );
    let e = entries(out_dir.path());
    assert_eq!(e.len(), 1);
    for f in ["metadata.json", "info.json"] {
        let text = std::fs::read_to_string(e[0].join(f)).unwrap();
        assert!(
            !text.contains("s3cr") && !text.contains("alice"),
            "{f}: {text}"
        );
    }
    let md = read_json(&e[0].join("metadata.json"));
    assert_eq!(md["hostname"], this_host().as_str());
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cr!t");
    assert!(
        server.seen().iter().all(|r| r
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && *v == format!("Basic {auth}"))),
        "{:?}",
        server.seen()
    );
}

fn spawn_watch(args: &[&str]) -> std::process::Child {
    Command::new(covfleet())
        .arg("collect")
        .arg("--watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigterm(pid: u32) {
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Waits (bounded) for `child` to exit and returns its output.
fn wait_output(child: std::process::Child) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("covfleet {pid} did not exit");
        }
    }
}

/// #10: a server reporting a new meta hash on every poll does not create
/// an entry per poll: --max-entries-per-target stops it, reported failed.
#[test]
fn issue13_10_watch_caps_new_entries_per_target() {
    let n = Arc::new(AtomicU32::new(0));
    let n2 = n.clone();
    let server = Hostile::start(move |req| {
        if req.method != "GET" || !req.path.starts_with("/coverage") {
            return Answer {
                status: 200,
                headers: identity(9, "shifty"),
                body: Body::Bytes(Vec::new()),
            };
        }
        // A new (valid) meta-data file, so a new hash, on every request.
        let i = n2.fetch_add(1, Ordering::SeqCst);
        let m = meta(&format!("example.invalid/app/f{i}.go"));
        Answer {
            status: 200,
            headers: identity(9, "shifty"),
            body: Body::Bytes(coverage_json(Some(&m.encode()), &counters(&m, [1, 1]))),
        }
    });
    let out_dir = tempfile::tempdir().unwrap();
    let child = spawn_watch(&[
        "--url",
        &server.url(),
        "-o",
        out_dir.path().to_str().unwrap(),
        "--max-entries-per-target",
        "3",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while n.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Three entries, the fourth refused; then the target is no longer polled.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(n.load(Ordering::SeqCst), 4);
    sigterm(child.id());
    let out = wait_output(child);
    assert_eq!(out.status.code(), Some(1), "{}", s(&out));
    assert_eq!(entries(out_dir.path()).len(), 3, "{}", s(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--max-entries-per-target 3"),
        "{}",
        s(&out)
    );
}

/// #11 and #22: a target collected and then gone is no failure of a
/// --watch run (exit 0, as documented), and without a terminal --watch
/// prints a line per change of state while it runs.
#[test]
fn issue13_11_22_watch_exit_code_and_state_lines() {
    let m = meta("example.invalid/app/main.go");
    let h = good(6, "brief", &m, [1, 1]);
    let mut server = Some(Hostile::start(move |req| h(req)));
    let url = server.as_ref().unwrap().url();
    let out_dir = tempfile::tempdir().unwrap();
    let mut child = spawn_watch(&["--url", &url, "-o", out_dir.path().to_str().unwrap()]);
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let l2 = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(line);
        }
    });
    let wait_line = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !lines.lock().unwrap().iter().any(|l| l.contains(what)) {
            assert!(
                Instant::now() < deadline,
                "no line with {what:?}: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_line("collecting ");
    // The process goes away (its listener closes): not a failure.
    server.take();
    wait_line("ended ");
    std::thread::sleep(Duration::from_secs(3));
    sigterm(child.id());
    let mut rest = String::new();
    let out = wait_output(child);
    reader.join().unwrap();
    let _ = (&out.stdout[..]).read_to_string(&mut rest);
    let all = lines.lock().unwrap().join("\n");
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("collected 1, skipped 0, failed 0"), "{all}");
}
