//! `covfleet export`: Go profile, lcov, Cobertura or Codecov reports of a
//! compiled collection.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use report::export::{self, Format};

use super::analysis::{CollectionArgs, owners, usage};

/// Arguments of `covfleet export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub collection: CollectionArgs,
    /// go (text profile, as `go tool covdata textfmt`), lcov, cobertura, codecov.
    #[arg(long, value_name = "FORMAT")]
    pub format: String,
    /// Only owners whose `namespace/owner`, `namespace/type/owner` or owner
    /// name matches; repeatable.
    #[arg(long = "owner", value_name = "GLOB")]
    pub owners: Vec<String>,
    /// One report of all selected owners (counts of the same block add up).
    #[arg(long)]
    pub merge_owners: bool,
    /// Output file (one report) or directory (one file per owner; always a
    /// directory for codecov).
    #[arg(short, long, value_name = "FILE|DIR")]
    pub output: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let format = Format::parse(&args.format).ok_or_else(|| {
        usage(format!(
            "--format {}: expected go, lcov, cobertura or codecov",
            args.format
        ))
    })?;
    let database = args.collection.open()?;
    let paths = args.collection.repo_paths()?;
    let selected = owners(&database, &args.owners)?;
    let covs = selected
        .into_iter()
        .map(|o| report::cov::OwnerCov::load(&database, o))
        .collect::<Result<Vec<_>, _>>()?;
    let datas = export::build(&covs, &paths, args.merge_owners)?;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let to_dir = format == Format::Codecov || args.output.is_dir() || datas.len() > 1;
    if !to_dir {
        write(&args.output, &export::render(&datas[0], format, ts))?;
        crate::output::data(args.output.display());
    } else {
        if args.output.is_file() {
            return Err(usage(format!(
                "-o {}: {} reports need a directory (or --merge-owners)",
                args.output.display(),
                datas.len()
            )));
        }
        std::fs::create_dir_all(&args.output)
            .with_context(|| format!("creating {}", args.output.display()))?;
        let mut flags = Vec::new();
        for d in &datas {
            let name = if format == Format::Codecov {
                let flag = export::codecov_flag(d);
                let name = format!("{flag}.json");
                flags.push((flag, name.clone()));
                name
            } else {
                export::file_name(d, format)
            };
            write(&args.output.join(&name), &export::render(d, format, ts))?;
        }
        if format == Format::Codecov {
            let script = args.output.join("codecov-upload.sh");
            write(&script, &export::codecov_upload_script(&flags))?;
        }
        crate::output::data(args.output.display());
    }
    let unresolved: usize = datas.iter().map(|d| d.unresolved).sum();
    let files: usize = datas.iter().map(|d| d.files.len()).sum();
    crate::output::status(format!(
        "covfleet export: {}, {files} files, {unresolved} without a source checkout (module path stripped)",
        crate::output::plural(datas.len(), "report", "reports")
    ));
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
