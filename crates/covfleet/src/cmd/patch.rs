//! `covfleet patch`: coverage of the lines changed between two commits.

use std::path::PathBuf;
use std::process::ExitCode;

use super::analysis::{CollectionArgs, owners, usage};

/// Arguments of `covfleet patch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub collection: CollectionArgs,
    /// The git repository (a checkout; e.g. one `clone-sources` made).
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// The revision the change starts from.
    #[arg(long, value_name = "REV")]
    pub base: String,
    /// The revision the collected binaries were built from.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub head: String,
    /// Only owners whose `namespace/owner`, `namespace/type/owner` or owner
    /// name matches; repeatable.
    #[arg(long = "owner", value_name = "GLOB")]
    pub owners: Vec<String>,
    /// Exit 1 when the changed lines' coverage (all owners together) is
    /// below PCT.
    #[arg(long, value_name = "PCT")]
    pub fail_under: Option<f64>,
    /// JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.repo.is_dir() {
        return Err(usage(format!(
            "--repo {}: not a directory",
            args.repo.display()
        )));
    }
    let top = report::patch::repo_top(&args.repo).map_err(|e| usage(e.to_string()))?;
    let changes = report::patch::git_changes(&top, &args.base, &args.head)
        .map_err(|e| usage(e.to_string()))?;
    let database = args.collection.open()?;
    let mut ca = args.collection.clone();
    ca.sources.push(top.clone());
    let paths = ca.repo_paths()?;
    let mut covs = Vec::new();
    for o in owners(&database, &args.owners)? {
        let c = report::cov::OwnerCov::load(&database, o)?;
        let op = paths.for_owner(&c.owner, &c.file_names());
        covs.push((c, op));
    }
    let r = report::patch::patch_coverage(changes, &covs);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", report::patch::format_text(&r));
    }
    if let Some(min) = args.fail_under
        && r.pct < min
    {
        crate::output::error(format!(
            "{:.1}% of the changed lines ran, below --fail-under {min}",
            r.pct
        ));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
