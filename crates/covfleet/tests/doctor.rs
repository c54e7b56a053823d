//! `covfleet doctor` on real Go programs built at test time from
//! `go/fixtures/doctor` (static, stripped, `-coverpkg` without main, set /
//! count / atomic, amd64 and arm64, with and without the injected server),
//! run as real processes (non-root uids, PID 1 of a new PID namespace, a
//! private mount namespace, a network namespace), and checked against what
//! Go really writes to GOCOVERDIR when they are stopped.
//!
//! Needs root (unshare, setuid, ip netns) and the Go toolchain.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use support::{Netns, covfleet, server_go, signal, stdout_json, wait_for};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../go/fixtures/doctor");
const NOBODY: u32 = 65532; // distroless "nonroot", as in seed 05

struct Built {
    dir: PathBuf,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("doctor-fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        copy_tree(Path::new(FIXTURE), &dir.join("src"));
        // A second tree with the injected coverage server in each main.
        copy_tree(Path::new(FIXTURE), &dir.join("srv"));
        for cmd in ["datastorage", "graceful"] {
            std::fs::copy(
                server_go(),
                dir.join("srv/cmd")
                    .join(cmd)
                    .join("zz_covfleet_coverage_server.go"),
            )
            .unwrap();
        }
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        Built { dir }
    })
}

/// `go build` in the fixture tree (`srv` = with the coverage server) into
/// bin/NAME; `env` adds to a clean GOFLAGS.
fn go_build(name: &str, tree: &str, env: &[(&str, &str)], args: &[&str], pkg: &str) -> PathBuf {
    let b = built();
    let out = b.dir.join("bin").join(name);
    if out.is_file() {
        return out;
    }
    let mut c = Command::new("go");
    c.arg("build").args(args).arg("-o").arg(&out).arg(pkg);
    c.current_dir(b.dir.join(tree)).env("GOFLAGS", "");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run go");
    assert!(
        o.status.success(),
        "go build {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn doctor(args: &[&str]) -> (Output, Value) {
    let out = Command::new(covfleet())
        .arg("doctor")
        .args(args)
        .arg("--json")
        .output()
        .expect("run covfleet doctor");
    let v = stdout_json(&out);
    (out, v)
}

fn ids(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn finding<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {v:#}"))
}

fn files(dir: &Path) -> (usize, usize) {
    let (mut m, mut c) = (0, 0);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with("covmeta.") {
            m += 1;
        } else if n.starts_with("covcounters.") {
            c += 1;
        }
    }
    (m, c)
}

/// A started program that printed "ready"; killed on drop.
struct Running {
    child: Child,
    /// The program's own PID (the child of `unshare --fork` when used).
    pid: u32,
    _out: BufReader<std::process::ChildStdout>,
}

impl Running {
    fn start(mut c: Command, forked: bool) -> Running {
        c.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null());
        let mut child = c.spawn().expect("start program");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("ready"), "not ready: {line:?}");
        let pid = if forked {
            let parent = child.id();
            let mut kid = None;
            wait_for("the forked child", || {
                kid = support::children_of(parent).first().copied();
                kid.is_some()
            });
            kid.unwrap()
        } else {
            child.id()
        };
        Running {
            child,
            pid,
            _out: out,
        }
    }

    /// SIGTERM to the program; waits for it (and unshare) to end.
    fn stop(mut self) -> std::process::ExitStatus {
        signal(self.pid, "TERM");
        let st = self.child.wait().unwrap();
        self.pid = 0;
        st
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.pid != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory anyone may write to, like seed 05's `drwxrwxrwx /coverdata`.
fn coverdata(tmp: &Path, name: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = tmp.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
    d
}

/// A copy of `prog` in `tmp`, where other uids can run it (the build
/// directory is under /root, mode 0700).
fn runnable(tmp: &Path, prog: &Path) -> PathBuf {
    let to = tmp.join(prog.file_name().unwrap());
    std::fs::copy(prog, &to).unwrap();
    to
}

fn world_readable_tmp() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

#[test]
fn binary_findings_follow_how_it_was_built() {
    let plain = go_build("plain", "src", &[], &[], "./cmd/datastorage");
    let (out, v) = doctor(&[plain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert!(ids(&v).contains(&"not-instrumented".into()), "{v:#}");

    // Static, stripped, atomic, with the injected server: all good, and the
    // packages are read from the meta-data (no symbol table).
    let full = go_build(
        "full-stripped",
        "srv",
        &[("CGO_ENABLED", "0")],
        &[
            "-cover",
            "-covermode=atomic",
            "-ldflags=-s -w -extldflags -static",
        ],
        "./cmd/datastorage",
    );
    let (out, v) = doctor(&[full.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    let got = ids(&v);
    // The injected server links os/signal itself (its SIGTERM flush).
    for id in [
        "instrumented",
        "coverage-server",
        "stripped",
        "static",
        "signal-handling",
    ] {
        assert!(got.contains(&id.to_string()), "{id} missing: {v:#}");
    }
    assert_eq!(finding(&v, "cover-mode")["severity"], "ok", "{v:#}");
    let inst = finding(&v, "instrumented")["summary"].as_str().unwrap();
    assert!(
        inst.contains("covfleet.invalid/doctorfix/store")
            && inst.contains("covfleet.invalid/doctorfix/cmd/datastorage"),
        "{inst}"
    );
    assert!(!got.contains(&"main-not-instrumented".into()), "{v:#}");

    // The graceful variant links os/signal.
    let graceful = go_build("graceful-set", "src", &[], &["-cover"], "./cmd/graceful");
    let (_, v) = doctor(&[graceful.to_str().unwrap()]);
    assert!(ids(&v).contains(&"signal-handling".into()), "{v:#}");
    assert_eq!(finding(&v, "cover-mode")["severity"], "warning", "{v:#}");
    assert!(
        finding(&v, "cover-mode")["summary"]
            .as_str()
            .unwrap()
            .contains("mode set")
    );

    // arm64, read without running it.
    for (mode, sev) in [("atomic", "ok"), ("count", "warning")] {
        let arm = go_build(
            &format!("arm64-{mode}"),
            "src",
            &[("GOARCH", "arm64"), ("CGO_ENABLED", "0")],
            &["-cover", &format!("-covermode={mode}"), "-ldflags=-s -w"],
            "./cmd/datastorage",
        );
        let (_, v) = doctor(&[arm.to_str().unwrap()]);
        let f = finding(&v, "cover-mode");
        assert_eq!(f["severity"], sev, "{mode}: {v:#}");
        if sev != "ok" {
            assert!(f["summary"].as_str().unwrap().contains(mode), "{v:#}");
        }
    }

    // Not a Go program at all: a usage error naming the file.
    let out = Command::new(covfleet())
        .args(["doctor", "/bin/sh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/bin/sh"));
}

#[test]
fn coverpkg_without_main_writes_nothing_at_exit_and_doctor_says_so() {
    let tmp = world_readable_tmp();
    let without = go_build(
        "graceful-coverpkg-store",
        "src",
        &[],
        &["-cover", "-covermode=atomic", "-coverpkg=./store"],
        "./cmd/graceful",
    );
    let with = go_build(
        "graceful-coverpkg-all",
        "src",
        &[],
        &["-cover", "-covermode=atomic", "-coverpkg=./..."],
        "./cmd/graceful",
    );
    let (out, v) = doctor(&[without.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(finding(&v, "main-not-instrumented")["severity"], "problem");
    let (_, v) = doctor(&[with.to_str().unwrap()]);
    assert!(!ids(&v).contains(&"main-not-instrumented".into()), "{v:#}");

    // Ground truth: both stop normally on SIGTERM; only one writes.
    for (prog, want_files) in [(&without, false), (&with, true)] {
        let dir = coverdata(
            tmp.path(),
            prog.file_name().unwrap().to_str().unwrap(),
            0o777,
        );
        let mut c = Command::new(prog);
        c.env("GOCOVERDIR", &dir);
        let st = Running::start(c, false).stop();
        assert_eq!(st.code(), Some(0));
        let (m, cnt) = files(&dir);
        assert_eq!(
            (m > 0 && cnt > 0),
            want_files,
            "{}: {m} meta {cnt} counters",
            prog.display()
        );
    }

    // --try-exit tells the same without touching the real directory.
    let (_, v) = doctor(&[without.to_str().unwrap(), "--try-exit"]);
    assert_eq!(
        finding(&v, "try-exit-no-counters")["severity"],
        "problem",
        "{v:#}"
    );
    let (_, v) = doctor(&[with.to_str().unwrap(), "--try-exit"]);
    assert_eq!(finding(&v, "try-exit-writes")["severity"], "ok", "{v:#}");
}

/// Seed 05: a static `GOFLAGS=-cover` build, as uid 65532, PID 1 of its
/// container, GOCOVERDIR on a drwxrwxrwx directory, stopped with SIGTERM —
/// and the directory never gets counters. Static linking, the copy between
/// build stages and the image are not the cause; the exit path is.
#[test]
fn seed05_sigterm_without_a_normal_exit_is_the_cause() {
    let tmp = world_readable_tmp();
    let static_env = [("GOFLAGS", "-cover"), ("CGO_ENABLED", "0")];
    let prog = go_build(
        "datastorage-static",
        "src",
        &static_env,
        &["-ldflags=-extldflags -static"],
        "./cmd/datastorage",
    );
    let prog = runnable(tmp.path(), &prog);
    let dir = coverdata(tmp.path(), "coverdata", 0o777);
    let start = |prog: &Path| {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--kill-child"])
            .arg(format!("--setgid={NOBODY}"))
            .arg(format!("--setuid={NOBODY}"))
            .arg("--")
            .arg(prog)
            .env("GOCOVERDIR", &dir);
        Running::start(c, true)
    };
    let running = start(&prog);
    let (out, v) = doctor(&["--pid", &running.pid.to_string(), "--try-exit"]);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    // What seed 05 suspected, ruled out one by one.
    assert_eq!(finding(&v, "instrumented")["severity"], "ok");
    assert_eq!(finding(&v, "static")["severity"], "info");
    let w = finding(&v, "gocoverdir-writable");
    assert!(
        w["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("uid {NOBODY}")),
        "{w}"
    );
    assert!(
        finding(&v, "gocoverdir-contents")["summary"]
            .as_str()
            .unwrap()
            .contains("1 covmeta and 0 covcounters")
    );
    // The cause.
    assert_eq!(finding(&v, "no-signal-handling")["severity"], "warning");
    assert_eq!(finding(&v, "container-init")["severity"], "warning");
    let k = finding(&v, "try-exit-killed");
    assert_eq!(k["severity"], "problem");
    let s = k["summary"].as_str().unwrap();
    assert!(
        s.contains("PID 1") && s.contains("exited with status 2"),
        "{s}"
    );
    assert!(k["fix"].as_str().unwrap().contains("signal.NotifyContext"));
    let problems: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "problem")
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(problems, ["try-exit-killed"], "{v:#}");

    // And that is what really happens: the real process leaves no counters.
    let st = running.stop();
    assert!(!st.success(), "{st:?}");
    assert_eq!(files(&dir), (1, 0));

    // The fix, checked the same way: the graceful program writes counters.
    let graceful = go_build("graceful-static", "src", &static_env, &[], "./cmd/graceful");
    let graceful = runnable(tmp.path(), &graceful);
    let dir2 = coverdata(tmp.path(), "coverdata2", 0o777);
    let mut c = Command::new("unshare");
    c.args(["--pid", "--fork", "--kill-child"])
        .arg(format!("--setgid={NOBODY}"))
        .arg(format!("--setuid={NOBODY}"))
        .arg("--")
        .arg(&graceful)
        .env("GOCOVERDIR", &dir2);
    let running = Running::start(c, true);
    let (out, v) = doctor(&["--pid", &running.pid.to_string(), "--try-exit"]);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(finding(&v, "try-exit-writes")["severity"], "ok", "{v:#}");
    running.stop();
    let (m, cnt) = files(&dir2);
    assert!(m == 1 && cnt == 1, "{m} meta, {cnt} counters");
}

#[test]
fn gocoverdir_is_judged_as_the_process_sees_it() {
    let tmp = world_readable_tmp();
    let prog = go_build(
        "datastorage-cover",
        "src",
        &[],
        &["-cover"],
        "./cmd/datastorage",
    );
    let as_nobody = |dir: &Path| {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg(&prog)
            .env("GOCOVERDIR", dir);
        c
    };

    // Owned by root, 0755: not writable for uid 65532.
    let root_only = coverdata(tmp.path(), "root-only", 0o755);
    let r = Running::start(as_nobody(&root_only), false);
    let (_, v) = doctor(&["--pid", &r.pid.to_string()]);
    let f = finding(&v, "gocoverdir-not-writable");
    assert!(f["summary"].as_str().unwrap().contains("uid 65532"), "{f}");
    assert_eq!(finding(&v, "gocoverdir-no-meta")["severity"], "problem");
    drop(r);

    // Missing.
    let missing = tmp.path().join("not-there");
    let r = Running::start(as_nobody(&missing), false);
    let (_, v) = doctor(&["--pid", &r.pid.to_string()]);
    assert_eq!(finding(&v, "gocoverdir-missing")["severity"], "problem");
    drop(r);

    // Only in the process's own mount namespace: a tmpfs (mode 1777) over a
    // root-owned 0755 directory. From here the directory is empty and not
    // writable for 65532; the process sees its tmpfs and writes there.
    let hidden = coverdata(tmp.path(), "ns-only", 0o755);
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o mode=1777 covfleet-test {d} && exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {p}",
            d = hidden.display(),
            p = prog.display()
        ))
        .env("GOCOVERDIR", &hidden);
    let r = Running::start(c, false);
    let (_, v) = doctor(&["--pid", &r.pid.to_string()]);
    assert_eq!(
        finding(&v, "gocoverdir-writable")["severity"],
        "ok",
        "{v:#}"
    );
    assert!(
        finding(&v, "gocoverdir-contents")["summary"]
            .as_str()
            .unwrap()
            .contains("1 covmeta")
    );
    assert_eq!(files(&hidden), (0, 0), "the host view stays empty");
    drop(r);
}

#[test]
fn pid_and_url_find_the_coverage_server() {
    let atomic = go_build(
        "datastorage-server",
        "srv",
        &[],
        &["-cover", "-covermode=atomic"],
        "./cmd/datastorage",
    );
    let set = go_build(
        "datastorage-server-set",
        "srv",
        &[],
        &["-cover"],
        "./cmd/datastorage",
    );
    let ns = Netns::new();
    let p = ns.spawn_ready(&atomic, &[], &[]);
    let out = ns.covfleet(&["doctor", "--pid", &p.pid.to_string(), "--json"]);
    let v = stdout_json(&out);
    let s = finding(&v, "server-answers")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        s.contains(&format!("pid {}", p.pid)) && s.contains("datastorage-server"),
        "{s}"
    );
    assert_eq!(finding(&v, "server-serves-counters")["severity"], "ok");
    assert_eq!(finding(&v, "gocoverdir-unset")["severity"], "info", "{v:#}");
    assert_eq!(out.status.code(), Some(0), "{v:#}");

    let out = ns.covfleet(&["doctor", "--url", "http://127.0.0.1:53700", "--json"]);
    let v = stdout_json(&out);
    assert_eq!(
        finding(&v, "server-serves-counters")["severity"],
        "ok",
        "{v:#}"
    );

    // From outside its network namespace (the host here, a pod's process
    // on a node): probed from inside the namespace, with the same result.
    let out = Command::new(covfleet())
        .args(["doctor", "--pid", &p.pid.to_string(), "--json"])
        .output()
        .unwrap();
    let v = stdout_json(&out);
    assert_eq!(
        finding(&v, "server-other-netns")["severity"],
        "info",
        "{v:#}"
    );
    assert_eq!(
        finding(&v, "server-serves-counters")["severity"],
        "ok",
        "{v:#}"
    );
    let s = finding(&v, "server-answers")["summary"].as_str().unwrap();
    assert!(s.contains("network namespace of pid"), "{s}");
    assert!(s.contains(&format!("pid {}", p.pid)), "{s}");
    assert_eq!(out.status.code(), Some(0), "{v:#}");

    // A set-mode build: the server answers but cannot serve counters.
    let ns2 = Netns::new();
    ns2.spawn_ready(&set, &[], &[]);
    let out = ns2.covfleet(&["doctor", "--url", "http://127.0.0.1:53700", "--json"]);
    let v = stdout_json(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        finding(&v, "server-no-counters")["severity"],
        "problem",
        "{v:#}"
    );

    // Nothing there.
    let out = ns2.covfleet(&["doctor", "--url", "http://127.0.0.1:53749", "--json"]);
    let v = stdout_json(&out);
    assert_eq!(finding(&v, "server-unreachable")["severity"], "problem");
}
