//! A real kube-apiserver + etcd on loopback for tests (see `kube_real.rs`
//! for what it does and does not cover): binaries from
//! `scripts/k8s-binaries.sh` under `${COVFLEET_CACHE:-~/.cache/covfleet}/k8s-*/bin`.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TOKEN: &str = "covfleet-real-t0ken";

/// The folder holding `kube-apiserver` and `etcd`, if built.
pub fn k8s_bin() -> Result<PathBuf, String> {
    let has = |d: &Path| d.join("kube-apiserver").is_file() && d.join("etcd").is_file();
    if let Some(d) = std::env::var_os("COVFLEET_K8S_BIN") {
        let d = PathBuf::from(d);
        return if has(&d) {
            Ok(d)
        } else {
            Err(format!(
                "COVFLEET_K8S_BIN={} holds no kube-apiserver + etcd",
                d.display()
            ))
        };
    }
    let cache = std::env::var_os("COVFLEET_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/covfleet")
        });
    let mut found: Vec<PathBuf> = std::fs::read_dir(&cache)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("k8s-"))
                .map(|e| e.path().join("bin"))
                .filter(|d| has(d))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().ok_or_else(|| {
        format!(
            "no {}/k8s-*/bin with kube-apiserver and etcd (build them with scripts/k8s-binaries.sh)",
            cache.display()
        )
    })
}

/// `n` distinct free loopback ports (all held open while choosing).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

pub fn s(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A process of the control plane, killed on drop; its log goes to a file
/// that failures print.
pub struct Daemon {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(name: &'static str, program: &Path, args: &[String], dir: &Path) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        Daemon { name, child, log }
    }

    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- last lines of {} log:\n{}",
            self.name,
            lines[from..].join("\n")
        )
    }

    /// Polls `ok` until true; fails with the daemon's log when it exits or
    /// does not get there in a (generous, bounded) time.
    pub fn wait(&mut self, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if ok() {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited ({st}) before {what}\n{}", self.name, self.tail());
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// etcd + kube-apiserver on loopback, stopped on drop (apiserver first).
pub struct ControlPlane {
    pub apiserver: Daemon,
    pub _etcd: Daemon,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl ControlPlane {
    pub fn start(bin: &Path) -> ControlPlane {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();

        let [client, peer, port] = free_ports::<3>();
        let mut etcd = Daemon::start(
            "etcd",
            &bin.join("etcd"),
            &[
                "--name=covfleet".into(),
                format!("--data-dir={}", d.join("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster=covfleet=http://127.0.0.1:{peer}"),
                "--log-level=warn".into(),
            ],
            d,
        );
        let health = format!("http://127.0.0.1:{client}/health");
        etcd.wait("etcd /health", || {
            curl(&["-s", "--max-time", "5", &health]).contains("\"health\":\"true\"")
        });

        // Service-account token keys, made at test time.
        let key = d.join("sa.key");
        let pubkey = d.join("sa.pub");
        run_ok(
            Command::new("openssl")
                .args(["genrsa", "-out"])
                .arg(&key)
                .arg("2048"),
        );
        run_ok(
            Command::new("openssl")
                .args(["rsa", "-pubout", "-in"])
                .arg(&key)
                .arg("-out")
                .arg(&pubkey),
        );
        let tokens = d.join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{TOKEN},covfleet-tester,1001,system:masters\n"),
        )
        .unwrap();

        let mut apiserver = Daemon::start(
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &[
                format!("--etcd-servers=http://127.0.0.1:{client}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                format!("--cert-dir={}", d.join("certs").display()),
                format!("--token-auth-file={}", tokens.display()),
                "--authorization-mode=AlwaysAllow".into(),
                "--anonymous-auth=false".into(),
                "--service-cluster-ip-range=10.96.0.0/24".into(),
                "--service-account-issuer=https://kubernetes.default.svc".into(),
                format!("--service-account-key-file={}", pubkey.display()),
                format!("--service-account-signing-key-file={}", key.display()),
                // Only this apiserver: no Endpoints for itself (it would
                // advertise a loopback address, which validation refuses).
                "--endpoint-reconciler-type=none".into(),
                "--v=1".into(),
            ],
            d,
        );
        let url = format!("https://127.0.0.1:{port}");
        let readyz = format!("{url}/readyz");
        apiserver.wait("kube-apiserver /readyz", || {
            curl(&[
                "-sk",
                "--max-time",
                "5",
                "-H",
                &format!("Authorization: Bearer {TOKEN}"),
                &readyz,
            ])
            .trim()
                == "ok"
        });
        ControlPlane {
            apiserver,
            _etcd: etcd,
            url,
            dir,
        }
    }

    /// A request to the API; returns the HTTP status and the JSON answer.
    pub fn call(&self, method: &str, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        let mut c = Command::new("curl");
        c.args(["-sk", "--max-time", "30", "-X", method])
            .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
            .args(["-H", "Accept: application/json"])
            .args(["-w", "\n%{http_code}"]);
        if !body.is_null() {
            c.args(["-H", &format!("Content-Type: {content_type}")])
                .args(["--data-binary", "@-"]);
        }
        c.arg(format!("{}{path}", self.url));
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = c.spawn().expect("run curl");
        {
            let mut stdin = child.stdin.take().unwrap();
            if !body.is_null() {
                stdin.write_all(body.to_string().as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (json_text, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let code: u16 = code.trim().parse().unwrap_or_else(|_| {
            panic!(
                "curl {method} {path}: no status ({text:?})\n{}",
                self.apiserver.tail()
            )
        });
        let v = serde_json::from_str(json_text).unwrap_or(Value::String(json_text.into()));
        (code, v)
    }

    /// POST/PATCH that must succeed; returns the stored object.
    pub fn must(&self, method: &str, path: &str, body: Value) -> Value {
        let ct = if method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let (code, v) = self.call(method, path, ct, &body);
        assert!(
            (200..300).contains(&code),
            "{method} {path}: HTTP {code}: {v}\nsent: {body}"
        );
        v
    }

    /// Requests to the pod `proxy` subresource the apiserver has served
    /// (from its `apiserver_request_total` metric).
    pub fn pod_proxy_requests(&self) -> u64 {
        let (code, v) = self.call("GET", "/metrics", "", &Value::Null);
        assert_eq!(code, 200, "GET /metrics: {v}");
        let text = v.as_str().unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.starts_with("apiserver_request_total{")
                    && l.contains(r#"resource="pods""#)
                    && l.contains(r#"subresource="proxy""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    pub fn kubeconfig(&self, token: &str, namespace: &str) -> PathBuf {
        self.kubeconfig_at(&self.url, token, namespace)
    }

    /// A kubeconfig naming `server` (e.g. a relay in front of the apiserver)
    /// and trusting the apiserver's certificate.
    pub fn kubeconfig_at(&self, server: &str, token: &str, namespace: &str) -> PathBuf {
        // The apiserver's self-signed bundle (serving cert + its CA) is the
        // trust anchor: TLS is verified like against a real cluster.
        let ca = self.dir.path().join("certs").join("apiserver.crt");
        assert!(ca.is_file(), "{} missing", ca.display());
        let port = server.rsplit(':').next().unwrap_or_default();
        let path = self.dir.path().join(format!("kubeconfig-{token}-{port}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
             contexts:\n- name: real\n  context:\n    cluster: real\n    user: tester\n    namespace: {namespace}\n\
             current-context: real\nusers:\n- name: tester\n  user:\n    token: {token}\n",
            server,
            ca.display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A container of a pod spec.
pub fn container(name: &str, image: &str, command: &str) -> Value {
    serde_json::json!({"name": name, "image": image, "command": [command], "imagePullPolicy": "IfNotPresent"})
}

/// What a kubelet would write once the pod's containers run, the pod being
/// reachable at `ip` (a network namespace the test made).
pub fn running_status(ip: &str, host_ip: &str, containers: &[(&str, &str, i32)]) -> Value {
    serde_json::json!({"status": {
        "phase": "Running",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": "2026-11-21T08:15:02Z",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-11-21T08:15:02Z"},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-11-21T08:15:09Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-21T08:15:09Z"},
        ],
        "containerStatuses": containers.iter().map(|(name, image, restarts)| serde_json::json!({
            "name": name, "image": image,
            "imageID": format!("{}@sha256:{}", image.split(':').next().unwrap(), "ab".repeat(32)),
            "containerID": format!("cri-o://{}", "cd".repeat(32)),
            "ready": true, "started": true, "restartCount": restarts,
            "state": {"running": {"startedAt": "2026-11-21T08:15:08Z"}}
        })).collect::<Vec<_>>()
    }})
}

pub fn curl(args: &[&str]) -> String {
    Command::new("curl")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

pub fn run_ok(c: &mut Command) {
    let out = c.output().expect("run command");
    assert!(out.status.success(), "{c:?}: {}", s(&out));
}
