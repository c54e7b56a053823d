//! `covfleet download`: fetch an S3 prefix, or a local directory, in the
//! seed layout into `DIR/coverage/` (see `store::download`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use store::download::{DownloadOptions, Filters, Progress};
use store::{Credentials, Sink, SinkOptions};

use crate::cli::UsageError;
use crate::cmd::CollectionArg;
use crate::{Shared, output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub collection: CollectionArg,
    /// Bucket name.
    #[arg(
        long,
        value_name = "B",
        conflicts_with = "url",
        required_unless_present = "url"
    )]
    pub bucket: Option<String>,
    /// Key prefix (the producer's s3BasePath, e.g. openshift-ci/coverage/my-cluster).
    #[arg(long, value_name = "P", requires = "bucket")]
    pub prefix: Option<String>,
    /// Bucket and prefix as one URL, s3://B/P; or file:///DIR, a tree in the
    /// seed layout on local disk (what `covfleet agent --sink file://DIR` writes).
    #[arg(long, value_name = "s3://B/P|file:///DIR")]
    pub url: Option<String>,
    /// Endpoint of an S3-compatible server (path-style requests), e.g. http://127.0.0.1:9000.
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// Region (default: AWS_REGION, AWS_DEFAULT_REGION, then us-east-1).
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_concurrency: u32,
    /// Skip entries a previous run completed, without comparing them to the listing.
    #[arg(long)]
    pub skip_existing: bool,
    /// Only hosts (nodes) matching this glob.
    #[arg(long, value_name = "GLOB")]
    pub host: Option<String>,
    /// Only namespaces matching this glob (`_host_` for host processes).
    #[arg(long, value_name = "GLOB")]
    pub namespace: Option<String>,
    /// Only pods matching this glob (excludes host processes).
    #[arg(long, value_name = "GLOB")]
    pub pod: Option<String>,
    /// Skip objects larger than this many bytes (the bucket is untrusted input).
    #[arg(long, value_name = "BYTES", default_value_t = 512 << 20)]
    pub max_object_bytes: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(msg.into()))
}

pub fn run(args: Args, shared: &Shared) -> anyhow::Result<ExitCode> {
    let collection = args.collection.dir()?;
    let local = args.url.as_deref().filter(|u| u.starts_with("file://"));
    let (bucket, prefix) = match (&args.url, &args.bucket) {
        _ if local.is_some() => (String::new(), String::new()),
        (Some(u), _) => store::sink::parse_s3_url(u).map_err(|e| usage(e.to_string()))?,
        (None, Some(b)) => (
            b.clone(),
            args.prefix
                .clone()
                .unwrap_or_default()
                .trim_matches('/')
                .to_string(),
        ),
        (None, None) => {
            return Err(usage(
                "give --bucket B [--prefix P], --url s3://B/P or --url file:///DIR",
            ));
        }
    };
    let filters = Filters::new(
        args.host.as_deref(),
        args.namespace.as_deref(),
        args.pod.as_deref(),
    )
    .map_err(|e| usage(format!("bad glob: {e}")))?;
    let options = SinkOptions {
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        credentials: Credentials::Auto,
        ..SinkOptions::default()
    };
    let sink = match local {
        Some(url) => {
            let dir = Path::new(url.trim_start_matches("file://"));
            if !dir.is_absolute() || !dir.is_dir() {
                return Err(usage(format!(
                    "--url {url}: expected file:///DIR, an existing directory given by its absolute path"
                )));
            }
            Sink::open(url, &options)
        }
        None => Sink::open_s3(&bucket, &prefix, &options),
    }
    .map_err(|e| usage(e.to_string()))?;
    let bar = output::progress_bar("downloading", "entries", args.json);
    let progress: Option<store::download::ProgressFn> = if let Some(bar) = &bar {
        let bar = bar.clone();
        Some(Arc::new(move |p: Progress| {
            bar.set_length(p.entries_total);
            bar.set_position(p.entries_done);
            bar.set_message(format!(
                "downloading ({} objects, {})",
                p.objects,
                human_bytes(p.bytes)
            ));
        }))
    } else if !args.json && !output::quiet() {
        // Plain lines, about every 10% and at the end.
        Some(Arc::new(|p: Progress| {
            let step = (p.entries_total / 10).max(1);
            if p.entries_done.is_multiple_of(step) || p.entries_done == p.entries_total {
                output::status(format_args!(
                    "download: {}/{} entries, {} objects, {}",
                    p.entries_done,
                    p.entries_total,
                    p.objects,
                    human_bytes(p.bytes)
                ));
            }
        }))
    } else {
        None
    };
    let opts = DownloadOptions {
        max_concurrency: args.max_concurrency as usize,
        skip_existing: args.skip_existing,
        filters,
        max_object_bytes: args.max_object_bytes,
        progress,
    };
    let started = std::time::Instant::now();
    let report = shared
        .runtime
        .block_on(store::download::download(&sink, &collection, &opts))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    if report.entries == 0 {
        output::warn(format_args!(
            "download: nothing in the seed layout under {}{}",
            sink.label(),
            if report.ignored_keys > 0 {
                format!(" ({} keys in other shapes ignored)", report.ignored_keys)
            } else {
                String::new()
            }
        ));
    }
    for (entry, e) in &report.failed {
        output::error(format_args!("download: entry {entry}: {e}"));
    }
    if args.json {
        let v = serde_json::json!({
            "entries": report.entries,
            "entries_unchanged": report.entries_unchanged,
            "objects": report.objects,
            "bytes": report.bytes,
            "superseded": report.superseded,
            "ignored_keys": report.ignored_keys,
            "too_large": report.too_large,
            "failed": report.failed.iter().map(|(n, e)| serde_json::json!({"entry": n, "error": e.to_string()})).collect::<Vec<_>>(),
            "seconds": secs,
        });
        output::json(&v);
    } else {
        output::status(format_args!(
            "download: {} from {}: {} entries ({} unchanged), {} objects, {} in {:.1}s; {} older counter slots not kept, {} keys outside the layout, {} too large, {} failed",
            collection.display(),
            sink.label(),
            report.entries,
            report.entries_unchanged,
            report.objects,
            human_bytes(report.bytes),
            secs,
            report.superseded,
            report.ignored_keys,
            report.too_large,
            report.failed.len()
        ));
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}
