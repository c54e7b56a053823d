//! `covfleet reset`: `POST /coverage/reset` on every target, so that a later
//! `covfleet collect --phase NAME` measures only what ran in between.

use std::process::ExitCode;

use scrape::collect::Collector;

use crate::cli::UsageError;
use crate::cmd::collect::{TargetArgs, report, runtime};

/// Arguments of `covfleet reset`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub targets: TargetArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = args.targets.settings(std::path::PathBuf::new())?;
    let rt = runtime()?;
    let progress = args.targets.progress("resetting");
    let summary = rt.block_on(async {
        let collector = Collector::new(settings, progress.as_ref().map(|p| p.0.clone()))
            .await
            .map_err(|e| UsageError(e.to_string()))?;
        Ok::<_, anyhow::Error>(collector.reset().await)
    })?;
    if let Some((_, bar)) = progress {
        bar.finish_and_clear();
    }
    Ok(report(&summary, &args.targets, "reset"))
}
