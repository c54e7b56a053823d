//! `covfleet agent`: the node agent (DaemonSet, systemd unit, or by hand).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use agent::metrics::Metrics;
use agent::pods::PodIndex;
use scrape::schedule::Schedule;
use store::upload::{Spool, Uploader};
use store::{Credentials, Sink, SinkOptions};

use crate::cli::UsageError;

/// Find every instrumented process on this node and keep its coverage in a sink.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where snapshots go: s3://BUCKET/PREFIX or file://DIR (the seed layout).
    /// S3 credentials: AWS_* environment, profile, web identity, then the
    /// registry-auth entry (see docs/store.md).
    #[arg(long, value_name = "URL")]
    pub sink: String,
    /// Endpoint of an S3-compatible server (path-style).
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// Signing region (default AWS_REGION, then us-east-1).
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// Where snapshots wait while the sink is unreachable (kept across restarts).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/covfleet/spool")]
    pub spool: PathBuf,
    /// Most bytes the spool keeps (the newest snapshot per process).
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    pub spool_max_bytes: u64,
    /// Kubeconfig (default: in-cluster, the kubelet's --kubeconfig, then
    /// /var/lib/kubelet/kubeconfig; waited for while missing).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Collect host processes only; never talk to Kubernetes.
    #[arg(long, conflicts_with = "kubeconfig")]
    pub no_kube: bool,
    /// This node's name (default: a SelfSubjectReview of the credentials).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// The node's name in the layout (default: the node name — --node-name,
    /// NODE_NAME, else learned from the API once known — else the host name).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// The host's /proc.
    #[arg(long = "proc", value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Port range coverage servers use.
    #[arg(long, value_name = "FIRST-LAST", default_value = "53700-53749", value_parser = super::collect::parse_ports)]
    pub ports: std::ops::RangeInclusive<u16>,
    /// Pause between scans of /proc for new processes.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub scan_interval: Duration,
    /// Polling schedule: EVERY:UNTIL steps, then the steady interval.
    #[arg(long, value_name = "SPEC", default_value = "1s:10s,5s:5m,10s", value_parser = Schedule::parse)]
    pub schedule: Schedule,
    /// Limit for one request to a coverage server.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
    /// Largest answer accepted from one coverage server, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub max_target_mib: usize,
    /// Most coverage servers followed at once.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_targets: usize,
    /// crictl, for attributing containers the API server does not know.
    #[arg(long, value_name = "PATH")]
    pub crictl: Option<PathBuf>,
    /// Serve /healthz and /metrics here.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// A directory whose exit-time coverage (what programs run with
    /// GOCOVERDIR=DIR, or `DIR/<namespace>/<pod>/<container>` for a pod's
    /// own subdirectory, write when they exit) is stored in the sink like
    /// scraped coverage, then removed; repeatable. See docs/agent.md.
    #[arg(long = "watch-dir", value_name = "DIR")]
    pub watch_dirs: Vec<PathBuf>,
    /// How exit-time files are attributed: by the writing process's cgroup
    /// where fanotify saw it (needs CAP_SYS_ADMIN), else by the path; or by
    /// the path only.
    #[arg(long, value_name = "HOW", default_value = "cgroup")]
    pub watch_attribution: WatchAttribution,
    /// Where batches of exit-time files being stored are journaled
    /// (default: the spool directory's path with `-exits` appended).
    #[arg(long, value_name = "DIR")]
    pub watch_journal: Option<PathBuf>,
    /// Bearer token the servers require (their COVERAGE_TOKEN).
    #[arg(
        long,
        env = "COVERAGE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

/// `--watch-attribution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchAttribution {
    /// The writer's cgroup (fanotify), else the path convention.
    Cgroup,
    /// `DIR/<namespace>/<pod>/<container>/` only.
    Path,
}

fn open_uploader(args: &Args) -> anyhow::Result<Uploader> {
    let options = SinkOptions {
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        credentials: Credentials::Auto,
        ..SinkOptions::default()
    };
    let sink = Sink::open(&args.sink, &options)
        .map_err(|e| UsageError::new(format!("--sink {}: {e}", args.sink)))?;
    let spool = Spool::open(&args.spool, args.spool_max_bytes)
        .map_err(|e| UsageError::new(format!("--spool {}: {e}", args.spool.display())))?;
    Ok(Uploader::new(sink, spool))
}

pub fn run(args: Args, shared: &crate::Shared) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COVFLEET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let hostname = args
        .hostname
        .clone()
        .or_else(|| args.node_name.clone())
        .unwrap_or_else(scrape::local::hostname);
    let mut cfg = agent::Config::new(hostname);
    cfg.proc_root = args.proc_root.clone();
    cfg.ports = args.ports.clone();
    cfg.scan_every = args.scan_interval;
    cfg.schedule = args.schedule.clone();
    cfg.timeout = args.timeout;
    cfg.concurrency = args.concurrency.max(1);
    cfg.max_target_bytes = args.max_target_mib.max(1) << 20;
    cfg.max_targets = args.max_targets;
    cfg.crictl = args.crictl.clone();
    cfg.hostname_from_node = args.hostname.is_none() && args.node_name.is_none() && !args.no_kube;
    cfg.token = args.token.clone();
    if !args.no_kube {
        cfg.kube_grace = Duration::from_secs(10);
    }
    if !args.watch_dirs.is_empty() {
        let journal = args.watch_journal.clone().unwrap_or_else(|| {
            let mut s = args.spool.clone().into_os_string();
            s.push("-exits");
            PathBuf::from(s)
        });
        cfg.watch = Some(agent::exits::WatchConfig {
            dirs: args.watch_dirs.clone(),
            state_dir: journal,
            hostname: cfg.hostname.clone(),
            hostname_from_node: cfg.hostname_from_node,
            max_file_bytes: cfg.max_target_bytes as u64,
            concurrency: cfg.concurrency,
            attribution: match args.watch_attribution {
                WatchAttribution::Cgroup => agent::exits::Attribution::Cgroup,
                WatchAttribution::Path => agent::exits::Attribution::Path,
            },
            proc_root: cfg.proc_root.clone(),
            unknown_container_grace: if args.no_kube {
                Duration::ZERO
            } else {
                cfg.unknown_container_grace
            },
            crictl: cfg.crictl.clone(),
        });
    }
    shared.runtime.block_on(async move {
        // Handlers first: a SIGTERM that arrives while the agent starts (or
        // before the run loop first polls its shutdown future) must still
        // mean "scrape once more and exit", never the default death.
        let shutdown = shutdown_on_signal()?;
        let uploader = Arc::new(open_uploader(&args)?);
        let metrics = Arc::new(Metrics::default());
        let listener = agent::metrics::bind(args.listen)
            .await
            .map_err(|e| UsageError::new(format!("--listen {}: {e}", args.listen)))?;
        tokio::spawn(agent::metrics::serve(listener, metrics.clone()));
        let index = Arc::new(RwLock::new(PodIndex::default()));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if !args.no_kube {
            tokio::spawn(agent::kubeconfig::pod_metadata_loop(
                args.kubeconfig.clone(),
                args.proc_root.clone(),
                args.node_name.clone(),
                index.clone(),
                tx,
            ));
        }
        tracing::info!(sink = %args.sink, listen = %args.listen, "covfleet agent started");
        let a = agent::Agent::new(cfg, uploader, index, metrics);
        a.run(rx, shutdown).await;
        tracing::info!("covfleet agent stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Registers the SIGTERM and SIGINT handlers now and returns the future that
/// completes on the first of them.
fn shutdown_on_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| UsageError::caused_by("cannot handle SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| UsageError::caused_by("cannot handle SIGINT", e))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
