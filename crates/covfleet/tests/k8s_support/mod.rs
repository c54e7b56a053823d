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

/// The binaries, or `None` after printing why `test` is skipped (they are
/// not built; once they are, every failure is a test failure).
pub fn bin_or_skip(test: &str) -> Option<PathBuf> {
    match k8s_bin() {
        Ok(b) => Some(b),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
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
    /// The CA kubeconfigs trust: the test's own CA with [`Options::pki`],
    /// else the apiserver's self-signed bundle.
    pub ca: PathBuf,
}

/// How the apiserver runs (see [`ControlPlane::start_with`]).
#[derive(Debug, Clone)]
pub struct Options {
    /// The address it listens on (127.0.0.1, or a host-side veth address
    /// that a test's network namespace reaches).
    pub bind: String,
    /// `--authorization-mode`.
    pub authorization: String,
    /// `--enable-admission-plugins`, when set.
    pub admission: Option<String>,
    /// A CA made by the test signs the serving certificate (valid for
    /// 127.0.0.1 and `bind`) and the client certificates of
    /// [`ControlPlane::client_cert`] (`--client-ca-file`).
    pub pki: bool,
    /// More static tokens: (token, user, groups comma-separated).
    pub tokens: Vec<(String, String, String)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            bind: "127.0.0.1".into(),
            authorization: "AlwaysAllow".into(),
            admission: None,
            pki: false,
            tokens: Vec::new(),
        }
    }
}

/// `openssl x509 -req` signing `csr` with the test CA in `d`.
fn sign(d: &Path, csr: &Path, out: &Path, ext: &str) {
    let extfile = out.with_extension("ext");
    std::fs::write(&extfile, ext).unwrap();
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(csr)
            .arg("-CA")
            .arg(d.join("ca.crt"))
            .arg("-CAkey")
            .arg(d.join("ca.key"))
            .args(["-CAcreateserial", "-out"])
            .arg(out)
            .arg("-extfile")
            .arg(&extfile),
    );
}

/// A key and a certificate request for `subject`.
fn key_and_csr(d: &Path, stem: &str, subject: &str) -> (PathBuf, PathBuf) {
    let key = d.join(format!("{stem}.key"));
    let csr = d.join(format!("{stem}.csr"));
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", subject]),
    );
    (key, csr)
}

impl ControlPlane {
    pub fn start(bin: &Path) -> ControlPlane {
        ControlPlane::start_with(bin, &Options::default())
    }

    pub fn start_with(bin: &Path, opts: &Options) -> ControlPlane {
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
        let mut token_lines = format!("{TOKEN},covfleet-tester,1001,system:masters\n");
        for (i, (token, user, groups)) in opts.tokens.iter().enumerate() {
            token_lines.push_str(&format!("{token},{user},{},\"{groups}\"\n", 2000 + i));
        }
        std::fs::write(&tokens, token_lines).unwrap();
        let mut tls = Vec::new();
        let ca = if opts.pki {
            run_ok(
                Command::new("openssl")
                    .args([
                        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    ])
                    .arg("-keyout")
                    .arg(d.join("ca.key"))
                    .arg("-out")
                    .arg(d.join("ca.crt"))
                    .args(["-subj", "/CN=covfleet-test-ca"]),
            );
            let (key, csr) = key_and_csr(d, "serving", "/CN=kube-apiserver");
            let crt = d.join("serving.crt");
            sign(
                d,
                &csr,
                &crt,
                &format!(
                    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
                     extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:{},DNS:localhost\n",
                    opts.bind
                ),
            );
            tls.push(format!("--tls-cert-file={}", crt.display()));
            tls.push(format!("--tls-private-key-file={}", key.display()));
            tls.push(format!("--client-ca-file={}", d.join("ca.crt").display()));
            d.join("ca.crt")
        } else {
            d.join("certs").join("apiserver.crt")
        };

        let mut apiserver = Daemon::start(
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &[
                format!("--etcd-servers=http://127.0.0.1:{client}"),
                format!("--bind-address={}", opts.bind),
                format!("--secure-port={port}"),
                format!("--cert-dir={}", d.join("certs").display()),
                format!("--token-auth-file={}", tokens.display()),
                format!("--authorization-mode={}", opts.authorization),
                "--anonymous-auth=false".into(),
                "--service-cluster-ip-range=10.96.0.0/24".into(),
                "--service-account-issuer=https://kubernetes.default.svc".into(),
                format!("--service-account-key-file={}", pubkey.display()),
                format!("--service-account-signing-key-file={}", key.display()),
                // Only this apiserver: no Endpoints for itself (it would
                // advertise a loopback address, which validation refuses).
                "--endpoint-reconciler-type=none".into(),
                "--v=1".into(),
            ]
            .into_iter()
            .chain(tls)
            .chain(
                opts.admission
                    .iter()
                    .map(|a| format!("--enable-admission-plugins={a}")),
            )
            .collect::<Vec<String>>(),
            d,
        );
        let url = format!("https://{}:{port}", opts.bind);
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
            ca,
        }
    }

    /// A client certificate and key signed by the test CA (needs
    /// [`Options::pki`]): the user is `cn`, its groups `orgs`.
    pub fn client_cert(&self, cn: &str, orgs: &[&str]) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let stem: String = cn
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let subject: String = orgs
            .iter()
            .map(|o| format!("/O={o}"))
            .chain([format!("/CN={cn}")])
            .collect();
        let (key, csr) = key_and_csr(d, &stem, &subject);
        let crt = d.join(format!("{stem}.crt"));
        sign(
            d,
            &csr,
            &crt,
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        );
        (crt, key)
    }

    /// A kubeconfig authenticating with a client certificate.
    pub fn kubeconfig_cert(&self, cert: &Path, key: &Path, namespace: &str) -> PathBuf {
        let path = self.dir.path().join(format!(
            "kubeconfig-{}",
            cert.file_stem().unwrap().to_string_lossy()
        ));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
             contexts:\n- name: real\n  context:\n    cluster: real\n    user: node\n    namespace: {namespace}\n\
             current-context: real\nusers:\n- name: node\n  user:\n    client-certificate: {}\n    client-key: {}\n",
            self.url,
            self.ca.display(),
            cert.display(),
            key.display()
        );
        std::fs::write(&path, text).unwrap();
        path
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

    /// A namespace and its default service account (no controller-manager
    /// makes it, and the ServiceAccount admission plugin wants it before it
    /// admits pods).
    pub fn add_namespace(&self, ns: &str) {
        self.must(
            "POST",
            "/api/v1/namespaces",
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
        self.must(
            "POST",
            &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        );
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
        let ca = &self.ca;
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
