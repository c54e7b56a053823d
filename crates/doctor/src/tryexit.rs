//! `--try-exit`: run a copy of the program with a fresh `GOCOVERDIR`, let it
//! start, send SIGTERM the way a pod stop does, and look at what Go wrote.
//!
//! The copy runs with the given arguments, environment (its own
//! `GOCOVERDIR` replaces any other), uid and gid, and — for a process that
//! is PID 1 of its container — as PID 1 of a new PID namespace
//! (`unshare --pid --fork`), because the kernel treats signals to a
//! namespace's init differently. It is SIGKILLed if it outlives the grace
//! period, and never left running.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde::Serialize;

use crate::{Error, FIX_SIGTERM, Finding, Severity};

/// What to run and how long to wait.
#[derive(Debug, Clone)]
pub struct Plan {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Environment of the copy (without GOCOVERDIR; it gets its own).
    pub env: Vec<(OsString, OsString)>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Run as PID 1 of a new PID namespace.
    pub as_init: bool,
    /// How long the program runs before SIGTERM.
    pub run_for: Duration,
    /// How long it may take to exit after SIGTERM (then SIGKILL).
    pub grace: Duration,
}

/// How the copy ended and what it left.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// It exited before the SIGTERM was sent.
    pub exited_early: bool,
    /// Exit code, when it exited normally.
    pub code: Option<i32>,
    /// Signal that ended it, when a signal did.
    pub signal: Option<i32>,
    /// It was still running after the grace period (then killed).
    pub hung: bool,
    pub meta_files: usize,
    pub counter_files: usize,
    /// Last lines of its stderr.
    pub stderr_tail: String,
}

fn fail(plan: &Plan, reason: impl Into<String>) -> Error {
    Error::TryExit {
        program: plan.program.clone(),
        reason: reason.into(),
    }
}

/// The PID to signal: the program itself, or under `unshare --fork` its child.
fn target_pid(plan: &Plan, child: &Child) -> Option<u32> {
    if !plan.as_init {
        return Some(child.id());
    }
    let path = format!("/proc/{0}/task/{0}/children", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Some(p) = text.split_whitespace().next().and_then(|p| p.parse().ok())
        {
            return Some(p);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn wait_until(
    child: &mut Child,
    until: Instant,
) -> Result<Option<std::process::ExitStatus>, std::io::Error> {
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Runs the plan and returns what happened.
pub fn run(plan: &Plan) -> Result<Outcome, Error> {
    let tmp = tempfile::Builder::new()
        .prefix("covfleet-try-exit-")
        .tempdir()
        .map_err(|e| fail(plan, format!("cannot make a temporary directory: {e}")))?;
    let set_mode = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| fail(plan, format!("chmod {}: {e}", p.display())))
    };
    set_mode(tmp.path(), 0o755)?;
    let name = plan
        .program
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "program".into());
    let copy = tmp.path().join(&name);
    std::fs::copy(&plan.program, &copy)
        .map_err(|e| fail(plan, format!("cannot copy the program: {e}")))?;
    set_mode(&copy, 0o755)?;
    let covdir = tmp.path().join("gocoverdir");
    std::fs::create_dir(&covdir).map_err(|e| fail(plan, format!("mkdir: {e}")))?;
    if let Some(uid) = plan.uid {
        std::os::unix::fs::chown(&covdir, Some(uid), plan.gid)
            .map_err(|e| fail(plan, format!("chown {}: {e}", covdir.display())))?;
    }
    let stderr_path = tmp.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| {
        fail(
            plan,
            format!("cannot create {}: {e}", stderr_path.display()),
        )
    })?;

    let mut cmd = if plan.as_init {
        // unshare needs root for the new namespace; it drops to the uid
        // and gid itself (clearing supplementary groups) before exec.
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--kill-child"]);
        if let Some(gid) = plan.gid {
            c.arg(format!("--setgid={gid}"));
        }
        if let Some(uid) = plan.uid {
            c.arg(format!("--setuid={uid}"));
        }
        c.arg("--").arg(&copy);
        c
    } else {
        Command::new(&copy)
    };
    cmd.args(&plan.args)
        .env_clear()
        .envs(plan.env.iter().filter(|(k, _)| k != "GOCOVERDIR").cloned())
        .env("GOCOVERDIR", &covdir)
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    if !plan.as_init {
        if let Some(uid) = plan.uid {
            cmd.uid(uid);
        }
        if let Some(gid) = plan.gid {
            cmd.gid(gid);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(plan, format!("cannot start it: {e}")))?;

    let result = (|| {
        let target = target_pid(plan, &child)
            .ok_or_else(|| fail(plan, "the program did not start under unshare"))?;
        let early = wait_until(&mut child, Instant::now() + plan.run_for)
            .map_err(|e| fail(plan, e.to_string()))?;
        let (status, hung) = match early {
            Some(st) => (Some(st), false),
            None => {
                let pid = Pid::from_raw(target as i32).ok_or_else(|| fail(plan, "bad pid"))?;
                kill_process(pid, Signal::TERM)
                    .map_err(|e| fail(plan, format!("kill -TERM {target}: {e}")))?;
                match wait_until(&mut child, Instant::now() + plan.grace)
                    .map_err(|e| fail(plan, e.to_string()))?
                {
                    Some(st) => (Some(st), false),
                    None => (None, true),
                }
            }
        };
        Ok::<_, Error>((early.is_some(), status, hung))
    })();
    if !matches!(result, Ok((_, Some(_), _))) {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (exited_early, status, hung) = result?;
    let (mut meta_files, mut counter_files) = (0, 0);
    if let Ok(rd) = std::fs::read_dir(&covdir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("covmeta.") {
                meta_files += 1;
            } else if n.starts_with("covcounters.") {
                counter_files += 1;
            }
        }
    }
    let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let stderr_tail = lines[lines.len().saturating_sub(5)..].join("\n");
    Ok(Outcome {
        exited_early,
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        hung,
        meta_files,
        counter_files,
        stderr_tail,
    })
}

fn signal_name(sig: i32) -> String {
    match sig {
        15 => "SIGTERM".into(),
        9 => "SIGKILL".into(),
        2 => "SIGINT".into(),
        6 => "SIGABRT".into(),
        n => format!("signal {n}"),
    }
}

/// Findings from an outcome.
pub fn findings(plan: &Plan, o: &Outcome) -> Vec<Finding> {
    let how = match (o.code, o.signal) {
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(s)) => format!("was killed by {}", signal_name(s)),
        _ => "did not exit".into(),
    };
    let wrote = format!(
        "GOCOVERDIR got {} covmeta and {} covcounters file(s)",
        o.meta_files, o.counter_files
    );
    let who = if plan.as_init {
        " (running as PID 1 of a new PID namespace, like a container's main process)"
    } else {
        ""
    };
    let mut out = Vec::new();
    if o.exited_early {
        let sev = if o.counter_files > 0 {
            Severity::Info
        } else {
            Severity::Warning
        };
        let mut f = Finding::new(
            "try-exit-early",
            sev,
            format!(
                "the copy{who} {how} before the SIGTERM (within {:?}); {wrote}{}",
                plan.run_for,
                if o.stderr_tail.is_empty() {
                    String::new()
                } else {
                    format!("; its stderr ends: {}", o.stderr_tail)
                }
            ),
        );
        if o.counter_files == 0 {
            f = f.fix("give it the arguments it needs to keep running (`covfleet doctor BINARY --try-exit -- ARGS…`)");
        }
        out.push(f);
        return out;
    }
    if o.hung {
        out.push(
            Finding::new(
                "try-exit-hung",
                Severity::Problem,
                format!(
                    "the copy{who} was still running {:?} after SIGTERM (then SIGKILLed); {wrote}: a pod stop would SIGKILL it after terminationGracePeriodSeconds and nothing is written",
                    plan.grace
                ),
            )
            .fix(FIX_SIGTERM),
        );
    } else if o.counter_files > 0 {
        out.push(Finding::new(
            "try-exit-writes",
            Severity::Ok,
            format!(
                "on SIGTERM the copy{who} {how}; {wrote}: Go writes coverage on this exit path"
            ),
        ));
    } else if o.signal.is_some() || (plan.as_init && o.code == Some(2)) {
        out.push(
            Finding::new(
                "try-exit-killed",
                Severity::Problem,
                format!(
                    "on SIGTERM the copy{who} {how} without a normal exit; {wrote}: Go writes the meta-data at start and the counters only when main returns or os.Exit is called, so a stop by SIGTERM leaves no counters — this is why GOCOVERDIR stays empty, not static linking, the image or the volume"
                ),
            )
            .fix(FIX_SIGTERM),
        );
    } else {
        out.push(
            Finding::new(
                "try-exit-no-counters",
                Severity::Problem,
                format!("on SIGTERM the copy{who} {how}, but {wrote}"),
            )
            .fix("make sure main is instrumented (-coverpkg includes it) and the program leaves through return from main or os.Exit, not syscall.Exit"),
        );
    }
    if o.meta_files == 0 {
        out.push(Finding::new(
            "try-exit-no-meta",
            Severity::Problem,
            "no covmeta file either: Go did not even write the meta-data at start (not instrumented, or main not instrumented)",
        ));
    }
    out
}
