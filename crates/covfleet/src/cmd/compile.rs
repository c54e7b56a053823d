//! `covfleet compile [DIR]`: the collection → `DIR/coverage.db`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::cli::UsageError;
use crate::cmd::CollectionArg;
use crate::{Shared, output};

/// Arguments of `covfleet compile`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub collection: CollectionArg,
    /// Recompute matching entries even when unchanged: FIELD=GLOB with FIELD
    /// one of namespace, node, container, image, pod, binary; or '*' for all.
    /// Repeatable; all must match.
    #[arg(long, value_name = "FIELD=GLOB")]
    pub update: Vec<String>,
    /// How replicas of one owner merge: per-block max or sum.
    #[arg(long, value_enum, default_value_t = MergeArg::Max)]
    pub merge: MergeArg,
    /// Worker threads for decoding (default: all cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Read the source repository and commit of images without info.json
    /// sources from their labels (io.openshift.build.source-location,
    /// io.openshift.build.commit.id), through the OCI registry API, else
    /// `oc image info`. Cached in the database; failures are warnings.
    #[arg(long)]
    pub inspect_images: bool,
    /// A registry (HOST or HOST:PORT) to reach over plain HTTP (loopback ones always are).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// How replicas of one owner merge (`--merge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MergeArg {
    /// Per block, the highest count of any replica.
    Max,
    /// Per block, the total over all replicas.
    Sum,
}

impl From<MergeArg> for db::ReplicaMerge {
    fn from(m: MergeArg) -> Self {
        match m {
            MergeArg::Max => db::ReplicaMerge::Max,
            MergeArg::Sum => db::ReplicaMerge::Sum,
        }
    }
}

/// Warnings printed in full; the rest are counted.
const WARNINGS_SHOWN: usize = 20;

/// The summary `--json` prints (the text summary says the same).
#[derive(Debug, Serialize)]
struct Printed<'a> {
    #[serde(flatten)]
    summary: &'a db::CompileSummary,
    seconds: f64,
}

pub fn run(args: Args, shared: &Shared) -> anyhow::Result<ExitCode> {
    let collection = args.collection.dir()?;
    let mut updates = Vec::new();
    for u in &args.update {
        updates.push(db::UpdateFilter::parse(u).map_err(|e| UsageError::caused_by("--update", e))?);
    }
    if !collection.join("coverage").is_dir() {
        return Err(UsageError::new(format!(
            "{}: no coverage/ directory (expected DIR/coverage/<entry>/ with the entries `covfleet collect` writes)",
            collection.display()
        ))
        .into());
    }
    if let Some(j) = args.jobs {
        // Only fails when a global pool exists already; then it is used as is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build_global();
    }
    let mut opts = db::CompileOptions::new(&collection);
    opts.merge = args.merge.into();
    opts.updates = updates;
    if args.inspect_images {
        let inspector = provenance::image::Inspector::new(
            provenance::image::InspectOptions {
                insecure_registries: args.insecure_registry.clone(),
                concurrency: 8,
                timeout: None,
            },
            shared.runtime.clone(),
        );
        opts.inspect_images = Some(Arc::new(inspector));
    }
    // A progress bar on a terminal only (stderr is talk, stdout is data).
    let bar = output::progress_bar("compiling", "entries", args.json);
    if let Some(bar) = &bar {
        let bar = bar.clone();
        opts.progress = Some(db::ProgressFn(Arc::new(move |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })));
    }
    let start = Instant::now();
    let result = db::compile(&opts);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let s = result?;
    let secs = start.elapsed().as_secs_f64();
    print_problems(&s);
    if args.json {
        output::json(&Printed {
            summary: &s,
            seconds: (secs * 1000.0).round() / 1000.0,
        });
    } else {
        output::status(format_args!(
            "compiled {} of {} ({} unchanged, {} removed, {} failed) → {}; {} recomputed, {} total; {secs:.2}s → {}",
            s.compiled,
            output::plural(s.entries, "entry", "entries"),
            s.unchanged,
            s.removed,
            s.failed,
            output::plural(s.reports_written, "report", "reports"),
            output::plural(s.owners_recomputed, "owner", "owners"),
            s.owners_total,
            collection.join(db::DB_FILE).display()
        ));
    }
    Ok(if s.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Entries that failed (errors), then the first warnings.
fn print_problems(s: &db::CompileSummary) {
    for (entry, err) in &s.errors {
        output::error(format_args!("entry {entry}: {err}"));
    }
    for w in s.warnings.iter().take(WARNINGS_SHOWN) {
        output::warn(w);
    }
    if s.warnings.len() > WARNINGS_SHOWN {
        for _ in WARNINGS_SHOWN + 1..s.warnings.len() {
            output::warn_silently();
        }
        output::warn(format_args!(
            "… and {} more",
            s.warnings.len() - WARNINGS_SHOWN
        ));
    }
}
