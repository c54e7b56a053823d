//! `covfleet render [DIR]`: the static HTML site of a compiled collection.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::cli::UsageError;
use crate::cmd::CollectionArg;
use crate::output;

/// Arguments of `covfleet render`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub collection: CollectionArg,
    /// Where to write the site [default: DIR/html].
    #[arg(long, value_name = "OUT")]
    pub output_dir: Option<PathBuf>,
    /// More source trees to annotate from (module roots with a go.mod),
    /// searched by module path; repeatable.
    #[arg(long = "source", value_name = "DIR")]
    pub sources: Vec<PathBuf>,
    /// Title of the site [default: the collection directory's name].
    #[arg(long)]
    pub title: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let collection = args.collection.dir()?;
    let db_path = collection.join(db::DB_FILE);
    if !db_path.is_file() {
        return Err(UsageError::new(format!(
            "{} not found: run `covfleet compile {}` first",
            db_path.display(),
            collection.display()
        ))
        .into());
    }
    for s in &args.sources {
        if !s.is_dir() {
            return Err(
                UsageError::new(format!("--source {}: not a directory", s.display())).into(),
            );
        }
    }
    // A database covfleet cannot read (not ours, too new, too old) is a
    // setup problem: compile (again) fixes it.
    let database = db::Database::open(&db_path).map_err(|e| {
        UsageError::caused_by(
            format!(
                "cannot read {} (run `covfleet compile {}`)",
                db_path.display(),
                collection.display()
            ),
            e,
        )
    })?;
    let out_dir = args
        .output_dir
        .clone()
        .unwrap_or_else(|| collection.join("html"));
    let title = args.title.clone().unwrap_or_else(|| {
        std::fs::canonicalize(&collection)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "covfleet".into())
    });
    let opts = report::Options {
        out_dir: out_dir.clone(),
        repos_dir: collection.join("repos"),
        extra_source_roots: args.sources.clone(),
        title,
    };
    let started = Instant::now();
    let summary = report::render(&report::DbSource::new(database), &opts)
        .with_context(|| format!("rendering into {}", out_dir.display()))?;
    output::status(format_args!(
        "rendered {}: {} written, {} unchanged; {} with source, {} without; {:.2}s",
        output::plural(summary.rows, "row", "rows"),
        output::plural(summary.pages_written, "page", "pages"),
        summary.pages_unchanged,
        output::plural(summary.files_with_source, "file", "files"),
        summary.files_without_source,
        started.elapsed().as_secs_f64()
    ));
    if summary.files_without_source > 0 && summary.files_with_source == 0 {
        output::hint(format_args!(
            "no source found: pass the source tree with `--source DIR`, or run `covfleet clone-sources {}` to fetch each binary's repository",
            collection.display()
        ));
    }
    for e in &summary.row_errors {
        output::error(format_args!("page failed: {e}"));
    }
    output::data(out_dir.join("index.html").display());
    Ok(if summary.row_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
