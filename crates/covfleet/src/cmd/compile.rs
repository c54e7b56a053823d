//! `covfleet compile --collection DIR`: the collection → `DIR/coverage.db`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::UsageError;

/// Arguments of `covfleet compile`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The collection directory (reads DIR/coverage/*, writes DIR/coverage.db).
    #[arg(long, value_name = "DIR")]
    pub collection: PathBuf,
    /// Recompute matching entries even when unchanged: FIELD=GLOB with FIELD
    /// one of namespace, node, container, image, pod, binary; or '*' for all.
    /// Repeatable; all must match.
    #[arg(long, value_name = "FIELD=GLOB")]
    pub update: Vec<String>,
    /// How replicas of one owner merge: per-block max (default) or sum.
    #[arg(long, value_name = "max|sum", default_value = "max")]
    pub merge: String,
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
    /// Print errors and warnings only.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let merge = db::MergeMode::parse(&args.merge)
        .ok_or_else(|| UsageError(format!("--merge {:?}: expected max or sum", args.merge)))?;
    let mut updates = Vec::new();
    for u in &args.update {
        updates.push(db::UpdateFilter::parse(u).map_err(UsageError)?);
    }
    if !args.collection.join("coverage").is_dir() {
        return Err(UsageError(format!(
            "{}: no coverage/ directory (expected DIR/coverage/<entry>/ from collect or download)",
            args.collection.display()
        ))
        .into());
    }
    if let Some(j) = args.jobs {
        // Only fails when a global pool exists already; then it is used as is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build_global();
    }
    let mut opts = db::CompileOptions::new(&args.collection);
    opts.merge = merge;
    opts.updates = updates;
    if args.inspect_images {
        opts.inspect_images = Some(db::images::InspectOptions {
            insecure_registries: args.insecure_registry.clone(),
            concurrency: 8,
            timeout: None,
        });
    }
    // A progress bar on a terminal only (stderr is talk, stdout is data).
    let bar = (!args.quiet && !args.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} compiling [{bar:30}] {pos}/{len} entries",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    if let Some(bar) = &bar {
        let bar = bar.clone();
        opts.progress = Some(db::ProgressFn(std::sync::Arc::new(move |done, total| {
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
    for (entry, err) in &s.errors {
        eprintln!("covfleet: compile: entry {entry}: {err}");
    }
    if !args.quiet {
        for w in s.warnings.iter().take(20) {
            eprintln!("covfleet: compile: warning: {w}");
        }
        if s.warnings.len() > 20 {
            eprintln!(
                "covfleet: compile: … and {} more warnings",
                s.warnings.len() - 20
            );
        }
    }
    if args.json {
        println!(
            "{{\"entries\":{},\"compiled\":{},\"unchanged\":{},\"removed\":{},\"failed\":{},\"reports_written\":{},\"owners_recomputed\":{},\"owners_deleted\":{},\"owners\":{},\"images_inspected\":{},\"images_failed\":{},\"seconds\":{:.3}}}",
            s.entries,
            s.compiled,
            s.unchanged,
            s.removed,
            s.failed,
            s.reports_written,
            s.owners_recomputed,
            s.owners_deleted,
            s.owners_total,
            s.images_inspected,
            s.images_failed,
            secs
        );
    } else if !args.quiet {
        eprintln!(
            "compiled {} of {} entries ({} unchanged, {} removed, {} failed) → {} reports; {} owners recomputed, {} total; {:.2}s → {}",
            s.compiled,
            s.entries,
            s.unchanged,
            s.removed,
            s.failed,
            s.reports_written,
            s.owners_recomputed,
            s.owners_total,
            secs,
            args.collection.join(db::DB_FILE).display()
        );
    }
    Ok(if s.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
