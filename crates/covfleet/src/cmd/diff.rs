//! `covfleet diff BASE HEAD`: what HEAD ran that BASE did not (and back).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::analysis::{open_db, usage};

/// Arguments of `covfleet diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The earlier state: a collection directory, a coverage.db, or DIR@PHASE.
    #[arg(value_name = "BASE")]
    pub base: String,
    /// The later state, in the same forms.
    #[arg(value_name = "HEAD")]
    pub head: String,
    /// Only owners whose `namespace/owner`, `namespace/type/owner` or owner
    /// name matches; repeatable.
    #[arg(long = "owner", value_name = "GLOB")]
    pub owners: Vec<String>,
    /// The whole comparison as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write the HTML page (e.g. HEAD/html/diff.html, next to the site).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// More source trees for the HTML page (module roots); repeatable.
    #[arg(long = "source", value_name = "SRC")]
    pub sources: Vec<PathBuf>,
}

/// One side: (database, collection directory, phase).
fn side(spec: &str) -> anyhow::Result<(db::Database, PathBuf, Option<db::Phase>)> {
    let p = Path::new(spec);
    let (path, phase) = if p.exists() {
        (p.to_path_buf(), None)
    } else if let Some((d, ph)) = spec.rsplit_once('@') {
        (PathBuf::from(d), Some(ph.to_string()))
    } else {
        return Err(usage(format!("{spec}: no such collection or database")));
    };
    let (db_path, dir) = if path.is_dir() {
        (path.join(db::DB_FILE), path.clone())
    } else {
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (path.clone(), dir)
    };
    let database = open_db(&db_path)?;
    let phase = match phase {
        None => None,
        Some(name) => match database.phase(&name)? {
            Some(ph) => Some(ph),
            None => {
                let known: Vec<String> = database.phases()?.into_iter().map(|p| p.name).collect();
                return Err(usage(format!(
                    "{spec}: {} records no phase {name:?} ({})",
                    db_path.display(),
                    if known.is_empty() {
                        "it has none: see `collect --phase-start`".to_string()
                    } else {
                        format!("it has {}", known.join(", "))
                    }
                )));
            }
        },
    };
    Ok((database, dir, phase))
}

/// The owners of one side; of a phase, the owners that ran during it, with
/// what they counted in it.
fn load(
    database: &db::Database,
    globs: &[String],
    phase: Option<&db::Phase>,
) -> anyhow::Result<Vec<report::cov::OwnerCov>> {
    let owners = report::cov::select_owners(database, globs).map_err(|e| usage(e.to_string()))?;
    let mut out = Vec::new();
    for o in owners {
        let mut c = report::cov::OwnerCov::load(database, o)?;
        if let Some(ph) = phase {
            let Some(counters) = database.phase_counters(ph.id, c.owner.id)? else {
                continue;
            };
            let stat = database
                .phase_owners(ph.id)?
                .into_iter()
                .find(|po| po.owner_id == c.owner.id);
            if let Some(po) = stat {
                c.owner.total_stmts = po.total_stmts;
                c.owner.covered_stmts = po.covered_stmts;
                c.owner.coverage_pct = po.coverage_pct;
            }
            c.counters = counters;
        }
        out.push(c);
    }
    Ok(out)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (bdb, _, bphase) = side(&args.base)?;
    let (hdb, hdir, hphase) = side(&args.head)?;
    let base = load(&bdb, &args.owners, bphase.as_ref())?;
    let head = load(&hdb, &args.owners, hphase.as_ref())?;
    let d = report::diff::diff(&base, &head);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", report::diff::format_text(&d));
    }
    if let Some(html) = &args.html {
        let roots = args
            .sources
            .iter()
            .map(|s| std::fs::canonicalize(s).unwrap_or_else(|_| s.clone()))
            .collect();
        let paths = report::cov::RepoPaths::new(hdir.join("repos"), roots);
        let source = |o: &report::diff::OwnerDiff, f: &report::diff::FileDiff| {
            let owner = head.iter().find(|c| c.owner.id == o.head_id)?;
            let op = paths.for_owner(&owner.owner, std::slice::from_ref(&f.path));
            report::cov::source_lines(op.disk(&f.path))
        };
        let title = format!("Coverage: {} → {}", args.base, args.head);
        let page = report::diff_html::diff_html(&d, &title, &source);
        if let Some(parent) = html.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(html, page).with_context(|| format!("writing {}", html.display()))?;
        crate::output::status(format!("covfleet diff: wrote {}", html.display()));
        crate::output::site_hint(html, report::site::LinkedPage::Diff);
    }
    Ok(ExitCode::SUCCESS)
}
