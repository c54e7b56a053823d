//! `covfleet collect --kube` at cluster scale, through a REAL kube-apiserver
//! and etcd (see `kube_real.rs` for how they are built and what the control
//! plane does and does not cover).
//!
//! Many pods share a few real instrumented programs: each program listens in
//! its own network namespace, and the pods' status (written like a kubelet
//! would) points their podIP at one of them, so the apiserver's pod `proxy`
//! subresource relays to a real coverage server for every pod.
//!
//! * `one_request_per_pod_over_one_connection`: the apiserver's own request
//!   metric counts one proxied request per pod, and a TCP relay in front of
//!   the apiserver sees one connection (HTTP/2) for the whole run.
//! * `a_killed_watch_leaves_no_torn_file`: `collect --watch` killed with
//!   SIGKILL while it rewrites snapshots leaves only complete files, which
//!   `go tool covdata` reads, and a later collect continues the entries.
//! * `bench_collect_at_scale` (ignored; `bench/kube.sh` runs it): pods/s and
//!   CPU of collect and of the apiserver at 400 pods.
//!
//! Skips (with a printed reason) only when the binaries are not built.

mod k8s_support;
mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_support::*;
use serde_json::json;
use support::*;

const NS: &str = "scale";

/// A control plane with `pods` Running pods spread over `servers` network
/// namespaces, each running one instrumented program.
struct Cluster {
    cp: ControlPlane,
    _netns: Vec<Netns>,
}

fn cluster(bin: &Path, servers: usize, pods: usize) -> Cluster {
    let f = fixtures();
    let netns: Vec<Netns> = (0..servers)
        .map(|i| {
            let n = Netns::with_veth();
            n.spawn_ready(&f.named("app"), &[&(3 + i % 4).to_string()], &[]);
            n
        })
        .collect();
    let ips: Vec<String> = netns.iter().map(|n| n.ip.clone().unwrap()).collect();
    let cp = ControlPlane::start(bin);
    cp.must(
        "POST",
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    );
    cp.must(
        "POST",
        &format!("/api/v1/namespaces/{NS}/serviceaccounts"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
    );
    // curl per request: a few threads keep creating 400 pods short.
    let threads = 8.min(pods.max(1));
    std::thread::scope(|s| {
        for t in 0..threads {
            let (cp, ips) = (&cp, &ips);
            s.spawn(move || {
                for i in (t..pods).step_by(threads) {
                    let name = format!("app-{i:04}");
                    cp.must(
                        "POST",
                        &format!("/api/v1/namespaces/{NS}/pods"),
                        json!({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": name, "labels": {"app": "scale"}},
                            "spec": {"nodeName": format!("node-{}", i % 8),
                                "containers": [container("app", "quay.invalid/app:1", "/app")]}}),
                    );
                    cp.must(
                        "PATCH",
                        &format!("/api/v1/namespaces/{NS}/pods/{name}/status"),
                        running_status(
                            &ips[i % ips.len()],
                            "198.18.0.2",
                            &[("app", "quay.invalid/app:1", 0)],
                        ),
                    );
                }
            });
        }
    });
    Cluster { cp, _netns: netns }
}

fn control_plane_binaries(test: &str) -> Option<PathBuf> {
    match k8s_bin() {
        Ok(b) => Some(b),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// A TCP relay on loopback to `to`, counting the connections it accepted.
fn counting_relay(to: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(down) = conn else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let Ok(up) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            for (mut from, mut into) in [
                (down.try_clone().unwrap(), up.try_clone().unwrap()),
                (up, down),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (port, accepted)
}

fn apiserver_port(cp: &ControlPlane) -> u16 {
    cp.url.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn one_request_per_pod_over_one_connection() {
    let Some(bin) = control_plane_binaries("one_request_per_pod_over_one_connection") else {
        return;
    };
    let pods = 6;
    let c = cluster(&bin, 2, pods);
    let (relay, accepted) = counting_relay(apiserver_port(&c.cp));
    let kc =
        c.cp.kubeconfig_at(&format!("https://127.0.0.1:{relay}"), TOKEN, NS);
    let before = c.cp.pod_proxy_requests();
    let out_dir = c.cp.dir.path().join("out");
    let out = Command::new(covfleet())
        .args(["collect", "--kube", "--kubeconfig"])
        .arg(&kc)
        .args(["--json", "-o"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        s(&out),
        c.cp.apiserver.tail()
    );
    let summary = stdout_json(&out);
    assert_eq!(summary["collected"], pods, "{summary}");
    // The identity comes with the snapshot: no separate /health probe.
    let proxied = c.cp.pod_proxy_requests() - before;
    assert_eq!(proxied, pods as u64, "proxied requests for {pods} pods");
    // The pod list and the six concurrent proxied requests share one
    // connection: HTTP/2 (HTTP/1.1 would open one per request in flight).
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "connections to the apiserver"
    );
    let dirs = entries(&out_dir);
    assert_eq!(dirs.len(), pods);
    for d in dirs {
        let m = read_json(&d.join("metadata.json"));
        assert_eq!(m["source"], "kube", "{m}");
        assert!(m["pod_name"].as_str().unwrap().starts_with("app-"), "{m}");
        let info = read_json(&d.join("info.json"));
        assert_eq!(info["binary_name"], "app", "{info}");
        assert!(total_count(&work_profile(&d)) > 0, "{}", d.display());
    }
}

/// Every file under `out/coverage` at its final name is complete: counter
/// and meta-data files decode (`go tool covdata` reads each entry) and the
/// JSON files parse. Returns the number of entries.
fn assert_no_torn_file(out: &Path) -> usize {
    let dirs = entries(out);
    for d in &dirs {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".json") {
                read_json(&e.path());
            }
        }
        // covdata reads every covmeta.* and covcounters.* of the entry and
        // fails on a short or partial one.
        assert!(total_count(&work_profile(d)) > 0, "{}", d.display());
    }
    dirs.len()
}

#[test]
fn a_killed_watch_leaves_no_torn_file() {
    let Some(bin) = control_plane_binaries("a_killed_watch_leaves_no_torn_file") else {
        return;
    };
    let pods = 40;
    let c = cluster(&bin, 2, pods);
    let kc = c.cp.kubeconfig(TOKEN, NS);
    let out_dir = c.cp.dir.path().join("out");
    for round in 0..3u64 {
        let mut child = Command::new(covfleet())
            .args(["collect", "--kube", "--kubeconfig"])
            .arg(&kc)
            .args(["--watch", "--json", "-o"])
            .arg(&out_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Polled every second at first: kill it while it rewrites snapshots,
        // at a different point of the second in each round.
        wait_for("every pod's first snapshot", || {
            entries(&out_dir).len() >= pods
                && entries(&out_dir)
                    .iter()
                    .all(|d| d.join("metadata.json").is_file())
        });
        std::thread::sleep(Duration::from_millis(1000 + 330 * round));
        signal(child.id(), "KILL");
        let status = child.wait().unwrap();
        assert!(!status.success());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(assert_no_torn_file(&out_dir), pods, "{err}");
    }
    // A later run continues the same entries.
    let out = Command::new(covfleet())
        .args(["collect", "--kube", "--kubeconfig"])
        .arg(&kc)
        .args(["--json", "-o"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out));
    assert_eq!(stdout_json(&out)["collected"], pods, "{}", s(&out));
    assert_eq!(assert_no_torn_file(&out_dir), pods);
    for d in entries(&out_dir) {
        let m = read_json(&d.join("metadata.json"));
        assert!(m["snapshots"].as_u64().unwrap() >= 2, "{m}");
    }
}

/// CPU seconds from `/proc/PID/stat`: its own (utime + stime) or its
/// waited-for children's (cutime + cstime).
fn cpu_seconds(stat: &str, children: bool, ticks: f64) -> f64 {
    // Fields after the command name, which is in parentheses: field 3 on.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let from = if children { 16 } else { 14 } - 3;
    let sum: u64 = f[from..from + 2]
        .iter()
        .map(|v| v.parse::<u64>().unwrap())
        .sum();
    sum as f64 / ticks
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `bench/kube.sh`: environment `COVFLEET_BENCH_PODS` (400),
/// `COVFLEET_BENCH_SERVERS` (16), `COVFLEET_BENCH_RUNS` (5),
/// `COVFLEET_BENCH_CONCURRENCY` (16 64: values of --concurrency),
/// `COVFLEET_BENCH_BINS` (`label=path …` other covfleet binaries, measured
/// interleaved with this one), `COVFLEET_BENCH_OUT` (where output goes).
#[test]
#[ignore = "benchmark: bench/kube.sh"]
fn bench_collect_at_scale() {
    let Some(bin) = control_plane_binaries("bench_collect_at_scale") else {
        return;
    };
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let pods: usize = env("COVFLEET_BENCH_PODS", "400").parse().unwrap();
    let servers: usize = env("COVFLEET_BENCH_SERVERS", "16").parse().unwrap();
    let runs: usize = env("COVFLEET_BENCH_RUNS", "5").parse().unwrap();
    let concurrency = env("COVFLEET_BENCH_CONCURRENCY", "16 64");
    let mut bins: Vec<(String, PathBuf)> = vec![("this tree".into(), covfleet().into())];
    for spec in env("COVFLEET_BENCH_BINS", "").split_whitespace() {
        let (label, path) = spec.split_once('=').unwrap_or((spec, spec));
        bins.push((label.to_string(), path.into()));
    }
    let out_root = PathBuf::from(env(
        "COVFLEET_BENCH_OUT",
        &Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("kube-bench")
            .to_string_lossy(),
    ));
    let t = Instant::now();
    let c = cluster(&bin, servers, pods);
    println!(
        "{pods} Running pods over {servers} coverage servers, made in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(out_root.parent().unwrap_or(Path::new("/")))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("output under {} ({fs})", out_root.display());
    let kc = c.cp.kubeconfig(TOKEN, NS);
    let ticks = clock_ticks();
    let api_stat = format!("/proc/{}/stat", c.cp.apiserver.child.id());
    let stat = |p: &str| std::fs::read_to_string(p).unwrap();
    for conc in concurrency.split_whitespace() {
        // label -> (seconds, collect CPU, apiserver CPU) per run
        let mut figures: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); bins.len()];
        for run in 0..runs {
            for (i, (label, path)) in bins.iter().enumerate() {
                let out_dir = out_root.join(format!("c{conc}-r{run}-b{i}"));
                let _ = std::fs::remove_dir_all(&out_dir);
                std::fs::create_dir_all(&out_dir).unwrap();
                let api0 = cpu_seconds(&stat(&api_stat), false, ticks);
                let self0 = cpu_seconds(&stat("/proc/self/stat"), true, ticks);
                let t = Instant::now();
                let out = Command::new(path)
                    .args(["collect", "--kube", "--kubeconfig"])
                    .arg(&kc)
                    .args(["--concurrency", conc, "--json", "-o"])
                    .arg(&out_dir)
                    .output()
                    .unwrap();
                let secs = t.elapsed().as_secs_f64();
                let own = cpu_seconds(&stat("/proc/self/stat"), true, ticks) - self0;
                let api = cpu_seconds(&stat(&api_stat), false, ticks) - api0;
                assert!(out.status.success(), "{label}: {}", s(&out));
                assert_eq!(stdout_json(&out)["collected"], pods, "{label}");
                println!(
                    "  --concurrency {conc} run {run} {label:>12}: {secs:.3} s = {:>5.0} pods/s; collect CPU {own:.2} s; apiserver CPU {api:.2} s = {:.2} ms/pod",
                    pods as f64 / secs,
                    api * 1000.0 / pods as f64
                );
                figures[i].push((secs, own, api));
                let _ = std::fs::remove_dir_all(&out_dir);
            }
        }
        for ((label, _), f) in bins.iter().zip(&mut figures) {
            let secs = median(&mut f.iter().map(|x| x.0).collect::<Vec<_>>());
            let own = median(&mut f.iter().map(|x| x.1).collect::<Vec<_>>());
            let api = median(&mut f.iter().map(|x| x.2).collect::<Vec<_>>());
            println!(
                "--concurrency {conc} {label}: median {secs:.3} s = {:.0} pods/s (target >= 700); collect CPU {own:.2} s; apiserver CPU {:.2} ms/pod",
                pods as f64 / secs,
                api * 1000.0 / pods as f64
            );
        }
    }
}
