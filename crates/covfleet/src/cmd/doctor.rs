//! `covfleet doctor`: why coverage is missing, each finding with its fix.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use doctor::{Report, Severity, gobin, tryexit};

use crate::Shared;
use crate::cli::UsageError;
use crate::output;

/// Arguments of `covfleet doctor`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["binary", "pid", "url", "kube"])))]
pub struct Args {
    /// A Go executable to examine (stripped binaries work).
    #[arg(value_name = "BINARY")]
    pub binary: Option<PathBuf>,
    /// A running process: its executable, GOCOVERDIR as it sees it, its
    /// coverage server, whether it is PID 1 of a container.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// A coverage server's base URL: does it answer, for which binary and PID.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A pod, through the Kubernetes API: phase, containers, restarts and
    /// how the last run ended, GOCOVERDIR in the spec and its volume, and
    /// which coverage server answers on which port (through the pod proxy).
    #[arg(long, value_name = "POD")]
    pub kube: Option<String>,
    /// With --kube: the pod's namespace (default: the context's).
    #[arg(short = 'n', long, value_name = "NS", requires = "kube")]
    pub namespace: Option<String>,
    /// With --kube: only this container.
    #[arg(long, value_name = "NAME", requires = "kube")]
    pub container: Option<String>,
    /// With --kube: kubeconfig file (default: $KUBECONFIG, ~/.kube/config,
    /// then in-cluster).
    #[arg(long, value_name = "FILE", requires = "kube")]
    pub kubeconfig: Option<PathBuf>,
    /// With --kube: kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME", requires = "kube")]
    pub context: Option<String>,
    /// With --kube: the coverage port range.
    #[arg(long, value_name = "FIRST-LAST", default_value = "53700-53749", value_parser = super::collect::parse_ports)]
    pub ports: std::ops::RangeInclusive<u16>,
    /// Also run a copy with a fresh GOCOVERDIR, send it SIGTERM and see
    /// whether Go writes coverage on that exit path (as the process's uid,
    /// as PID 1 of a new PID namespace when the process is one).
    #[arg(long, conflicts_with_all = ["url", "kube"])]
    pub try_exit: bool,
    /// With --try-exit: how long the copy runs before the SIGTERM.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub run_for: Duration,
    /// With --try-exit: how long it may take to exit after SIGTERM.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Limit for one request to a coverage server.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Bearer token the servers require (their COVERAGE_TOKEN).
    #[arg(
        long,
        env = "COVERAGE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Print the findings as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// With BINARY --try-exit: arguments for the program.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<OsString>,
}

pub fn run(args: Args, shared: &Shared) -> anyhow::Result<ExitCode> {
    let token = args.token.clone().filter(|t| !t.is_empty());
    let client = doctor::server::options(args.timeout, token);
    let report = if let Some(path) = &args.binary {
        let bin =
            gobin::read(path).map_err(|e| UsageError::caused_by("cannot examine the binary", e))?;
        let mut report = Report::new(format!("binary {}", path.display()));
        report.findings = doctor::binary::findings(&bin);
        if args.try_exit {
            let plan = tryexit::Plan {
                program: path.clone(),
                args: args.args.clone(),
                env: std::env::vars_os().collect(),
                uid: None,
                gid: None,
                as_init: false,
                run_for: args.run_for,
                grace: args.grace,
            };
            let outcome = tryexit::run(&plan)?;
            report.findings.extend(tryexit::findings(&plan, &outcome));
        }
        report
    } else if let Some(pid) = args.pid {
        let opts = doctor::process::Options {
            proc_root: PathBuf::from("/proc"),
            client,
        };
        let (mut report, facts) = shared
            .runtime
            .block_on(doctor::process::diagnose(pid, &opts))
            .map_err(|e| UsageError::caused_by(format!("cannot examine process {pid}"), e))?;
        if args.try_exit {
            let plan = process_plan(pid, &facts, &args)?;
            let outcome = tryexit::run(&plan)?;
            report.findings.extend(tryexit::findings(&plan, &outcome));
        }
        report
    } else if let Some(url) = &args.url {
        let check = shared.runtime.block_on(doctor::server::check(url, &client));
        let mut report = Report::new(format!("url {url}"));
        report.findings = check.findings;
        report
    } else if let Some(pod) = &args.kube {
        shared.runtime.block_on(diagnose_pod(pod, &args, &client))?
    } else {
        return Err(UsageError::new("give BINARY, --pid PID, --url URL or --kube POD").into());
    };
    print(&report, args.json);
    Ok(if report.has_problems() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--kube POD`: the pod through the API (configuration problems and API
/// errors other than "not found" are setup errors, exit 2).
async fn diagnose_pod(
    pod: &str,
    args: &Args,
    client: &scrape::protocol::ClientOptions,
) -> anyhow::Result<Report> {
    let sel = scrape::kube::Selection {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        ..Default::default()
    };
    let kube = scrape::kube::client(&sel)
        .await
        .map_err(|e| UsageError::caused_by("cannot load the Kubernetes client configuration", e))?;
    let target = doctor::kube::Target {
        namespace: args
            .namespace
            .clone()
            .unwrap_or_else(|| kube.default_namespace().to_string()),
        pod: pod.to_string(),
        container: args.container.clone(),
        ports: args.ports.clone(),
    };
    Ok(doctor::kube::diagnose(&kube, &target, client)
        .await
        .map_err(|e| UsageError::caused_by("cannot examine the pod", e))?)
}

/// A copy of process `pid`: its executable, arguments, full environment,
/// uid and gid; as PID 1 of a new PID namespace when it is one.
fn process_plan(
    pid: u32,
    facts: &doctor::process::ProcFacts,
    args: &Args,
) -> anyhow::Result<tryexit::Plan> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let env = std::fs::read(dir.join("environ")).map_err(|e| {
        UsageError::caused_by(format!("process {pid}: cannot read its environment"), e)
    })?;
    use std::os::unix::ffi::OsStrExt;
    let env = env
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let i = kv.iter().position(|&b| b == b'=')?;
            Some((
                std::ffi::OsStr::from_bytes(&kv[..i]).to_os_string(),
                std::ffi::OsStr::from_bytes(&kv[i + 1..]).to_os_string(),
            ))
        })
        .collect();
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let argv: Vec<OsString> = cmdline
        .split(|&b| b == 0)
        .skip(1)
        .filter(|s| !s.is_empty())
        .map(|s| std::ffi::OsStr::from_bytes(s).to_os_string())
        .collect();
    let program = match &facts.exe {
        Some(exe) if exe.is_file() => exe.clone(),
        _ => dir.join("exe"),
    };
    Ok(tryexit::Plan {
        program,
        args: if args.args.is_empty() {
            argv
        } else {
            args.args.clone()
        },
        env,
        uid: Some(facts.uid),
        gid: Some(facts.gid),
        as_init: facts.container_init(),
        run_for: args.run_for,
        grace: args.grace,
    })
}

fn print(report: &Report, json: bool) {
    if json {
        output::json(report);
        return;
    }
    output::data(&report.target);
    for f in &report.findings {
        output::data(format_args!("  [{}] {}", f.severity.label(), f.summary));
        if let Some(fix) = &f.fix {
            output::data(format_args!("      fix: {fix}"));
        }
    }
    let problems = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .count();
    if problems == 0 {
        output::data("no problem found");
    } else {
        output::data(format_args!(
            "{} found",
            output::plural(problems, "problem", "problems")
        ));
    }
}
