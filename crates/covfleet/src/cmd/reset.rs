//! `covfleet reset`: `POST /coverage/reset` on every target, so that a later
//! `covfleet collect --phase NAME` measures only what ran in between.

use std::process::ExitCode;

use crate::Shared;
use crate::cmd::collect::{TargetArgs, Verb, report};

/// Arguments of `covfleet reset`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub targets: TargetArgs,
}

pub fn run(args: Args, shared: &Shared) -> anyhow::Result<ExitCode> {
    let settings = args.targets.settings(std::path::PathBuf::new())?;
    let progress = args.targets.progress("resetting");
    let summary = shared.runtime.block_on(async {
        let collector = args
            .targets
            .collector(settings, progress.as_ref().map(|p| p.0.clone()))
            .await?;
        Ok::<_, anyhow::Error>(collector.reset().await)
    })?;
    if let Some((_, bar)) = progress {
        bar.finish_and_clear();
    }
    Ok(report(&summary, &args.targets, Verb::Reset))
}
