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

/// One site per phase, in `OUT/phase/<name>/` (the index's phase switch
/// links its rows there); sites of phases that are gone are removed.
fn render_phases(
    db_path: &std::path::Path,
    opts: &report::Options,
    phases: &[db::Phase],
    summary: &mut report::Summary,
) -> anyhow::Result<()> {
    let root = opts.out_dir.join("phase");
    let mut keep = std::collections::BTreeSet::new();
    for ph in phases {
        // marks.json is written by collect; a hand-edited name that is not
        // one path component gets no site.
        if !scrape::marks::valid_name(&ph.name) {
            continue;
        }
        keep.insert(ph.name.clone());
        let database = db::Database::open(db_path)
            .with_context(|| format!("opening {}", db_path.display()))?;
        let sub = report::Options {
            out_dir: opts.out_dir.join(report::history::phase_dir(&ph.name)),
            title: format!("{} — phase {}", opts.title, ph.name),
            ..opts.clone()
        };
        let s = report::render(&report::DbSource::for_phase(database, ph.id), &sub).with_context(
            || format!("rendering phase {} into {}", ph.name, sub.out_dir.display()),
        )?;
        summary.pages_written += s.pages_written;
        summary.pages_unchanged += s.pages_unchanged;
        summary.row_errors.extend(
            s.row_errors
                .into_iter()
                .map(|e| format!("phase {}: {e}", ph.name)),
        );
    }
    if let Ok(rd) = std::fs::read_dir(&root) {
        for e in rd.flatten() {
            if !keep.contains(&*e.file_name().to_string_lossy()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
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
    let phases = database.phases().unwrap_or_default();
    let mut summary = report::render(&report::DbSource::new(database), &opts)
        .with_context(|| format!("rendering into {}", out_dir.display()))?;
    render_phases(&db_path, &opts, &phases, &mut summary)?;
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
