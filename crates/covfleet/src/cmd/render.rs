//! `covfleet render`: the static HTML site of a compiled collection.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::cli::UsageError;

/// Arguments of `covfleet render`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The collection directory (holds coverage.db from `covfleet compile`,
    /// and repos/ from `covfleet clone-sources`).
    #[arg(long, value_name = "DIR")]
    pub collection: PathBuf,
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
    /// Print nothing but the path of index.html.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let db_path = args.collection.join(db::DB_FILE);
    if !db_path.is_file() {
        return Err(anyhow::Error::new(UsageError(format!(
            "{} not found: run `covfleet compile --collection {}` first",
            db_path.display(),
            args.collection.display()
        ))));
    }
    for s in &args.sources {
        if !s.is_dir() {
            return Err(anyhow::Error::new(UsageError(format!(
                "--source {}: not a directory",
                s.display()
            ))));
        }
    }
    // A database covfleet cannot read (not ours, too new, too old) is a
    // setup problem: compile (again) fixes it.
    let database = db::Database::open(&db_path).map_err(|e| {
        UsageError(format!(
            "{}: {} (run `covfleet compile --collection {}`)",
            db_path.display(),
            error_chain(&e),
            args.collection.display()
        ))
    })?;
    let out_dir = args
        .output_dir
        .clone()
        .unwrap_or_else(|| args.collection.join("html"));
    let title = args.title.clone().unwrap_or_else(|| {
        std::fs::canonicalize(&args.collection)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "covfleet".into())
    });
    let opts = report::Options {
        out_dir: out_dir.clone(),
        repos_dir: args.collection.join("repos"),
        extra_source_roots: args.sources.clone(),
        title,
    };
    let started = Instant::now();
    let summary = report::render(&report::DbSource::new(database), &opts)
        .with_context(|| format!("rendering into {}", out_dir.display()))?;
    if !args.quiet {
        eprintln!(
            "covfleet render: {} rows, {} pages written, {} unchanged, {} files with source, {} without, {:.2}s",
            summary.rows,
            summary.pages_written,
            summary.pages_unchanged,
            summary.files_with_source,
            summary.files_without_source,
            started.elapsed().as_secs_f64()
        );
        for e in &summary.row_errors {
            eprintln!("covfleet render: page failed: {e}");
        }
    }
    println!("{}", out_dir.join("index.html").display());
    Ok(if summary.row_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let c_s = c.to_string();
        if !s.ends_with(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cur = c.source();
    }
    s
}
