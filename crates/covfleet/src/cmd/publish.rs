//! `covfleet publish`: one compiled collection as one run of a history
//! dataset (Parquet, Hive-partitioned by cluster, date and run; see
//! `docs/history.md` and the `history` crate).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use store::{Credentials, Sink, SinkOptions};

use crate::cli::UsageError;
use crate::{Shared, output};

/// Arguments of `covfleet publish`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["collection", "db"])))]
pub struct Args {
    /// A collection directory: compiled into a temporary database first
    /// (DIR/coverage.db is left as it is).
    #[arg(long, value_name = "DIR")]
    pub collection: Option<PathBuf>,
    /// A compiled coverage.db.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// The dataset: s3://BUCKET/PREFIX or file:///DIR (absolute).
    #[arg(long, value_name = "s3://B/P|file:///DIR")]
    pub dataset: String,
    /// The cluster this run comes from (a partition value: A-Z a-z 0-9 . _ -).
    #[arg(long, value_name = "NAME")]
    pub cluster: String,
    /// The run id (default: the newest collection time, YYYYMMDDTHHMMSSZ).
    /// Publishing the same cluster and run again replaces it.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Endpoint of an S3-compatible server (path-style requests), e.g. http://127.0.0.1:9000.
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// Region (default: AWS_REGION, AWS_DEFAULT_REGION, then us-east-1).
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// Print what was published as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(msg.into()))
}

/// Opens the dataset URL. `must_exist`: a `file://` directory must be there
/// already (readers), else it is created (publish).
pub fn open_dataset(
    url: &str,
    endpoint: Option<String>,
    region: Option<String>,
    must_exist: bool,
) -> anyhow::Result<Sink> {
    if let Some(dir) = url.strip_prefix("file://") {
        let dir = Path::new(dir);
        if !dir.is_absolute() || (must_exist && !dir.is_dir()) {
            return Err(usage(format!(
                "--dataset {url}: expected file:///DIR, {} directory given by its absolute path",
                if must_exist { "an existing" } else { "a" }
            )));
        }
    } else if !url.starts_with("s3://") {
        return Err(usage(format!(
            "--dataset {url}: expected s3://BUCKET/PREFIX or file:///DIR"
        )));
    }
    let options = SinkOptions {
        endpoint,
        region,
        credentials: Credentials::Auto,
        ..SinkOptions::default()
    };
    Sink::open(url, &options).map_err(|e| usage(e.to_string()))
}

pub fn run(args: Args, shared: &Shared) -> anyhow::Result<ExitCode> {
    if !history::schema::valid_name(&args.cluster) {
        return Err(usage(format!(
            "--cluster {:?}: use 1-128 characters among A-Z a-z 0-9 . _ -",
            args.cluster
        )));
    }
    if let Some(r) = args
        .run
        .as_deref()
        .filter(|r| !history::schema::valid_name(r))
    {
        return Err(usage(format!(
            "--run {r:?}: use 1-128 characters among A-Z a-z 0-9 . _ -"
        )));
    }
    let sink = open_dataset(&args.dataset, args.endpoint, args.region, false)?;
    let started = std::time::Instant::now();
    let (_tmp, database) = match (&args.collection, &args.db) {
        (Some(dir), _) => {
            output::status(format_args!("publish: compiling {}", dir.display()));
            let (t, d) = history::compile_collection(dir)?;
            (Some(t), d)
        }
        (None, Some(file)) => (
            None,
            db::Database::open(file).map_err(|e| usage(format!("{}: {e}", file.display())))?,
        ),
        (None, None) => return Err(usage("give --collection DIR or --db FILE")),
    };
    let spec = history::RunSpec {
        cluster: args.cluster.clone(),
        run: args.run.clone(),
    };
    let files = history::encode_run(&database, &spec)?;
    drop(database);
    let published = shared.runtime.block_on(history::publish(&sink, &files))?;
    if args.json {
        output::json(&published);
    } else {
        output::status(format_args!(
            "published cluster {} run {} ({}) to {}: {} owners, {} functions, {} blocks, {} bytes{} in {:.1} s",
            published.cluster,
            published.run,
            published.run_time,
            sink.label(),
            published.rows.get("owners").copied().unwrap_or(0),
            published.rows.get("functions").copied().unwrap_or(0),
            published.rows.get("blocks").copied().unwrap_or(0),
            published.bytes,
            if published.replaced_files > 0 {
                format!(
                    ", replacing {}",
                    output::plural(published.replaced_files, "earlier file", "earlier files")
                )
            } else {
                String::new()
            },
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
