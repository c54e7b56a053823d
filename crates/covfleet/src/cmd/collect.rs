//! `covfleet collect`: scrape live coverage into `-o DIR/coverage/<entry>/`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use scrape::collect::{Collector, Event, Progress, Settings, Sources, Summary};
use scrape::kube::{Selection, Via};
use scrape::marks::{MarkKind, MarkRequest};

use crate::cli::UsageError;
use crate::{Shared, output};

/// Which coverage servers to talk to, and how (shared with `reset`).
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// A coverage server's base URL, e.g. http://10.0.0.5:53700 (repeatable).
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// Coverage servers listening on this host (this network namespace),
    /// found through /proc/net/tcp{,6} and checked against the owning PID.
    #[arg(long)]
    pub local: bool,
    /// Pods of a Kubernetes cluster (kubeconfig or in-cluster configuration).
    #[arg(long)]
    pub kube: bool,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE", requires = "kube")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME", requires = "kube")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace).
    #[arg(
        short = 'n',
        long,
        value_name = "NS",
        requires = "kube",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, requires = "kube")]
    pub all_namespaces: bool,
    /// Label selector, e.g. app=api,tier!=db.
    #[arg(short = 'l', long, value_name = "SELECTOR", requires = "kube")]
    pub selector: Option<String>,
    /// Only this pod (repeatable; in --namespace).
    #[arg(long = "pod", value_name = "NAME", requires = "kube", conflicts_with_all = ["all_namespaces", "selector"])]
    pub pods: Vec<String>,
    /// How to reach pods: through the API server's pod proxy, or port-forward.
    #[arg(long, value_enum, default_value = "proxy", requires = "kube")]
    pub via: ViaArg,
    /// Port range coverage servers use.
    #[arg(long, value_name = "FIRST-LAST", default_value = "53700-53749", value_parser = parse_ports)]
    pub ports: std::ops::RangeInclusive<u16>,
    /// Bearer token the servers require (their COVERAGE_TOKEN).
    #[arg(
        long,
        env = "COVERAGE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Limit for one request.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Extra attempts after a connection error, timeout or HTTP 502-504.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
    /// Largest answer accepted from one server, as sent and after gzip
    /// decompression (e.g. 64MiB, 1GiB).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = scrape::budget::parse_size)]
    pub max_snapshot_size: u64,
    /// Bytes of answers held in memory at once, across all targets; fetches
    /// wait for room (e.g. 512MiB, 2GiB).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = scrape::budget::parse_size)]
    pub max_in_flight: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// How to reach pods.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ViaArg {
    Proxy,
    PortForward,
}

pub(crate) fn parse_ports(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.trim().parse().map_err(|_| format!("not a port: {a:?}"))?;
    let b: u16 = b.trim().parse().map_err(|_| format!("not a port: {b:?}"))?;
    if a == 0 || b < a {
        return Err(format!(
            "bad port range {s:?} (want FIRST-LAST, FIRST >= 1)"
        ));
    }
    Ok(a..=b)
}

impl TargetArgs {
    /// Resolves the flags into engine settings (usage errors: exit 2).
    pub fn settings(&self, output: PathBuf) -> anyhow::Result<Settings> {
        if self.urls.is_empty() && !self.local && !self.kube {
            return Err(UsageError::new("no targets: give --url URL, --local or --kube").into());
        }
        for url in &self.urls {
            scrape::transport::Direct::new(url, self.timeout)
                .map_err(|e| UsageError::caused_by("--url", e))?;
        }
        if self.concurrency == 0 {
            return Err(UsageError::new("--concurrency must be at least 1").into());
        }
        let kube = self.kube.then(|| {
            (
                Selection {
                    kubeconfig: self.kubeconfig.clone(),
                    context: self.context.clone(),
                    namespace: self.namespace.clone(),
                    all_namespaces: self.all_namespaces,
                    selector: self.selector.clone(),
                    pods: self.pods.clone(),
                },
                match self.via {
                    ViaArg::Proxy => Via::Proxy,
                    ViaArg::PortForward => Via::PortForward,
                },
            )
        });
        let sources = Sources {
            urls: self.urls.clone(),
            local: self.local,
            kube,
        };
        let mut s = Settings::new(sources, output);
        s.ports = self.ports.clone();
        s.client.timeout = self.timeout;
        s.client.retries = self.retries;
        s.client.token = self.token.clone().filter(|t| !t.is_empty());
        s.concurrency = self.concurrency;
        s.client.limits = scrape::budget::Limits::new(self.max_snapshot_size, self.max_in_flight)
            .map_err(|e| UsageError::new(e.to_string()))?;
        Ok(s)
    }

    /// A progress bar on stderr when it is a terminal (and not --quiet/--json).
    pub fn progress(&self, what: &'static str) -> Option<(Progress, indicatif::ProgressBar)> {
        let bar = output::progress_bar(what, "", self.json)?;
        let b = bar.clone();
        let p: Progress = Arc::new(move |e| match e {
            Event::Discovered(n) => b.inc_length(n as u64),
            Event::Done { .. } => b.inc(1),
            Event::Round { fetched } => b.set_message(format!("{what}: fetched {fetched}")),
            other => {
                if let Some(line) = watch_line(&other) {
                    b.println(line);
                }
            }
        });
        Some((p, bar))
    }

    /// Connects to the configured sources. A Kubernetes configuration that
    /// cannot be loaded is a setup error (exit 2); its cause is kept.
    pub async fn collector(
        &self,
        settings: Settings,
        progress: Option<Progress>,
    ) -> anyhow::Result<Collector> {
        match Collector::new(settings, progress).await {
            Ok(c) => Ok(c),
            Err(e @ scrape::Error::KubeConfig { .. }) => Err(UsageError::caused_by(
                "cannot load the Kubernetes client configuration",
                e,
            )
            .into()),
            Err(e) => Err(anyhow::Error::new(e)),
        }
    }
}

/// Arguments of `covfleet collect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Collection directory: entries go to DIR/coverage/ENTRY/. Or
    /// s3://BUCKET/PREFIX: snapshots are kept in --staging and uploaded in
    /// the seed layout (see docs/store.md).
    #[arg(short = 'o', long = "output", value_name = "DIR|s3://B/P")]
    pub output: PathBuf,
    /// With -o s3://…: the local collection directory (and spool) behind the
    /// upload (default `~/.cache/covfleet/collect/<bucket>_<prefix>`).
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// With -o s3://…: endpoint of an S3-compatible server (path-style).
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// With -o s3://…: signing region (default AWS_REGION, then us-east-1).
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// With -o s3://…: most bytes kept while the bucket is unreachable.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    pub spool_max_bytes: u64,
    /// Keep collecting (1 s for 10 s, 5 s until 5 min, then 10 s), pick up new
    /// targets, and scrape once more on SIGINT/SIGTERM before exiting.
    #[arg(long)]
    pub watch: bool,
    /// Name of the phase this collection measures (recorded in metadata.json
    /// and in the entry names), e.g. after `covfleet reset`.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["phase_start", "phase_end"])]
    pub phase: Option<String>,
    /// Mark the start of phase NAME: this collection's snapshots are also
    /// kept as the phase's starting point (no counters are reset); compile
    /// measures the phase as the difference to its end (docs/collect.md).
    #[arg(long, value_name = "NAME", conflicts_with = "watch")]
    pub phase_start: Option<String>,
    /// Mark the end of phase NAME (started earlier in this collection). With
    /// --phase-start too, one snapshot ends one phase and starts the next.
    #[arg(long, value_name = "NAME", conflicts_with = "watch")]
    pub phase_end: Option<String>,
    /// With --watch: phase names, in order, marked by signals: SIGUSR1 ends
    /// the open phase (if any) and starts the next name; SIGUSR2 ends the
    /// open phase.
    #[arg(long, value_name = "NAME,…", value_delimiter = ',', requires = "watch")]
    pub signal_phases: Vec<String>,
    /// Most entries one target may create in a run (each new process, meta
    /// hash or counter reset behind one target makes one); the target is
    /// then stopped and reported as failed.
    #[arg(long, value_name = "N", default_value_t = scrape::collect::DEFAULT_MAX_ENTRIES_PER_TARGET)]
    pub max_entries_per_target: u32,
    /// With --watch: how often a summary line is printed on stderr when it
    /// is not a terminal (state changes are printed as they happen).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration, requires = "watch")]
    pub summary_every: Duration,
    #[command(flatten)]
    pub targets: TargetArgs,
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The marks `--phase-end` / `--phase-start` ask for (the end first).
fn mark_requests(args: &Args) -> anyhow::Result<Vec<MarkRequest>> {
    let mut reqs = Vec::new();
    if let Some(p) = &args.phase_end {
        reqs.push(MarkRequest {
            kind: MarkKind::End,
            phase: p.clone(),
        });
    }
    if let Some(p) = &args.phase_start {
        reqs.push(MarkRequest {
            kind: MarkKind::Start,
            phase: p.clone(),
        });
    }
    for r in reqs.iter().chain(
        args.signal_phases
            .iter()
            .map(|p| MarkRequest {
                kind: MarkKind::Start,
                phase: p.clone(),
            })
            .collect::<Vec<_>>()
            .iter(),
    ) {
        if !scrape::marks::valid_name(&r.phase) {
            return Err(UsageError::new(
                scrape::marks::MarkError::BadName {
                    phase: r.phase.clone(),
                }
                .to_string(),
            )
            .into());
        }
    }
    Ok(reqs)
}

/// `--signal-phases`: turns SIGUSR1 / SIGUSR2 into mark batches.
fn signal_marks(
    names: Vec<String>,
) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<Vec<MarkRequest>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    tokio::spawn(async move {
        let mut next = names.into_iter();
        let mut open: Option<String> = None;
        loop {
            let start = tokio::select! {
                _ = usr1.recv() => true,
                _ = usr2.recv() => false,
            };
            let mut batch = Vec::new();
            if let Some(p) = open.take() {
                batch.push(MarkRequest {
                    kind: MarkKind::End,
                    phase: p,
                });
            }
            if start {
                match next.next() {
                    Some(p) => {
                        open = Some(p.clone());
                        batch.push(MarkRequest {
                            kind: MarkKind::Start,
                            phase: p,
                        });
                    }
                    None => output::error("SIGUSR1: no phase left in --signal-phases"),
                }
            }
            if !batch.is_empty() && tx.send(batch).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

pub fn run(args: Args, shared: &Shared) -> anyhow::Result<ExitCode> {
    if let Some(p) = &args.phase
        && p.trim().is_empty()
    {
        return Err(UsageError::new("--phase needs a name").into());
    }
    let marks = mark_requests(&args)?;
    let s3_url = args
        .output
        .to_str()
        .filter(|o| o.starts_with("s3://"))
        .map(str::to_string);
    let local = match (&s3_url, &args.staging) {
        (Some(_), Some(dir)) => dir.clone(),
        (Some(url), None) => super::upload::default_staging(url)?,
        (None, _) => args.output.clone(),
    };
    let mut settings = args.targets.settings(local.clone())?;
    settings.phase = args.phase.clone();
    if args.max_entries_per_target == 0 {
        return Err(UsageError::new("--max-entries-per-target must be at least 1").into());
    }
    settings.max_entries_per_target = args.max_entries_per_target;
    settings.summary_every = args.summary_every.max(Duration::from_secs(1));
    let coverage = local.join("coverage");
    std::fs::create_dir_all(&coverage)
        .map_err(|e| UsageError::caused_by(format!("cannot create {}", coverage.display()), e))?;
    let mut mirror = match &s3_url {
        Some(url) => Some(super::upload::mirror(
            url,
            &local,
            args.endpoint.clone(),
            args.region.clone(),
            args.spool_max_bytes,
        )?),
        None => None,
    };
    let progress = args.targets.progress("collecting");
    // Without a terminal (CI logs, systemd), --watch says what changes.
    let log: Option<Progress> = (args.watch && progress.is_none() && !output::quiet()).then(|| {
        let p: Progress = Arc::new(|e| {
            if let Some(line) = watch_line(&e) {
                eprintln!("{line}");
            }
        });
        p
    });
    let root = coverage;
    let (summary, upload) = shared.runtime.block_on(async {
        let collector = args
            .targets
            .collector(settings, progress.as_ref().map(|p| p.0.clone()).or(log))
            .await?;
        let summary = if args.watch {
            // Handlers are installed before the first scrape, so an early
            // signal still gets its final scrape.
            let signal = shutdown_signal();
            let marks = if args.signal_phases.is_empty() {
                None
            } else {
                Some(signal_marks(args.signal_phases.clone())?)
            };
            let watch = collector.watch_marked(signal, marks);
            match mirror.as_mut() {
                Some(m) => super::upload::watch_and_mirror(watch, m, &root).await,
                None => watch.await,
            }
        } else if marks.is_empty() {
            collector.collect_once().await
        } else {
            collector
                .collect_once_marked(&marks)
                .await
                .map_err(|e| match e {
                    scrape::Error::Marks(m) => UsageError::new(m.to_string()).into(),
                    other => anyhow::Error::new(other),
                })?
        };
        let upload = match mirror.as_mut() {
            Some(m) => Some(m.sync(&root).await),
            None => None,
        };
        Ok::<_, anyhow::Error>((summary, upload))
    })?;
    if let Some((_, bar)) = progress {
        bar.finish_and_clear();
    }
    let code = report(&summary, &args.targets, Verb::Collect);
    match (upload, &mirror) {
        (Some(r), Some(m)) => Ok(super::upload::finish(r, m, code)),
        _ => Ok(code),
    }
}

/// What a run of the collect engine did: `collect` or `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Collect,
    Reset,
}

/// One line of `--watch` news, with a time stamp; `None` for progress ticks.
fn watch_line(e: &Event) -> Option<String> {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let line = match e {
        Event::Found { target, entry } => {
            format!("collecting {} -> {}", clean(target), entry.display())
        }
        Event::Lost { target, reason } => format!(
            "ended {} (its data is kept): {}",
            clean(target),
            clean(without_target(reason, target))
        ),
        Event::Failed { target, reason } => format!(
            "FAILED {}: {}",
            clean(target),
            clean(without_target(reason, target))
        ),
        Event::Status {
            live,
            collected,
            failed,
        } => format!("watching {live} processes; collected {collected} so far, failing {failed}"),
        Event::Marked { mark } => format!(
            "phase {} {} (mark {}, {} processes)",
            mark.phase,
            if mark.kind == MarkKind::Start {
                "started"
            } else {
                "ended"
            },
            mark.seq,
            mark.processes
        ),
        Event::MarkFailed { reason } => format!("phase mark NOT taken: {}", clean(reason)),
        _ => return None,
    };
    Some(format!("{now} {line}"))
}

/// Text to print on a terminal: no control characters (escape sequences).
fn clean(s: &str) -> String {
    scrape::protocol::printable(s.as_bytes())
}

/// Scrape errors name their target already; print it once per line.
fn without_target<'a>(reason: &'a str, target: &str) -> &'a str {
    reason
        .strip_prefix(target)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(reason)
}

pub fn report(summary: &Summary, targets: &TargetArgs, verb: Verb) -> ExitCode {
    if targets.json {
        output::json(summary);
    } else {
        let (verb, done) = match verb {
            Verb::Reset => ("reset", summary.reset),
            Verb::Collect => ("collected", summary.collected),
        };
        output::status(format_args!(
            "found {}, {verb} {done}, skipped {}, failed {}",
            summary.found,
            summary.skipped.len(),
            summary.failed.len()
        ));
        for e in &summary.entries {
            output::status(format_args!(
                "  collected {} (pid {}, {}{}) -> {}",
                clean(&e.binary),
                e.pid,
                output::plural(e.snapshots as usize, "snapshot", "snapshots"),
                if e.ended { ", ended" } else { "" },
                e.dir.display()
            ));
        }
        for m in &summary.marks {
            output::status(format_args!(
                "  phase {} {} (mark {})",
                m.phase,
                m.kind.as_str(),
                m.seq
            ));
        }
        for s in &summary.skipped {
            output::status(format_args!(
                "  skipped {}: {}",
                clean(&s.target),
                clean(without_target(&s.reason, &s.target))
            ));
        }
        for f in &summary.failed {
            output::error(format_args!(
                "{}: {}",
                clean(&f.target),
                clean(without_target(&f.reason, &f.target))
            ));
        }
    }
    let (verb, done) = match verb {
        Verb::Reset => ("reset", summary.reset),
        Verb::Collect => ("collected", summary.collected),
    };
    if done == 0 && !summary.marks.is_empty() && summary.found == 0 {
        // A phase boundary with no process running yet (e.g. the start of
        // "install"): the mark is what was asked for; processes that start
        // later count in the phase from their start.
        output::status("no coverage server found yet: the phase marks are recorded");
        return ExitCode::SUCCESS;
    }
    if done == 0 {
        // Nothing of what the run was pointed at was collected: a failure,
        // with the reason in plain words (also under --json and --quiet).
        output::error(format_args!("nothing {verb}: {}", nothing_reason(summary)));
        return ExitCode::from(1);
    }
    if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Why a run collected nothing, in one phrase.
fn nothing_reason(summary: &Summary) -> String {
    let reasons: Vec<&str> = summary
        .skipped
        .iter()
        .chain(&summary.failed)
        .map(|r| without_target(&r.reason, &r.target))
        .collect();
    match reasons.as_slice() {
        [] => "no coverage server found".into(),
        [one] => clean(one),
        many => {
            let mut uniq: Vec<&str> = many.to_vec();
            uniq.sort_unstable();
            uniq.dedup();
            if uniq.len() == 1 {
                format!("{} targets: {}", many.len(), clean(uniq[0]))
            } else {
                format!("{} targets skipped or failed (see above)", many.len())
            }
        }
    }
}
