//! `collect -o s3://BUCKET/PREFIX`: the local collection behind the
//! upload, and the mirror that feeds the bucket in the seed layout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use store::mirror::{Mirror, SyncReport};
use store::upload::{Spool, Uploader};
use store::{Credentials, Sink, SinkOptions};

use crate::cli::UsageError;
use crate::output;

/// `~/.cache/covfleet/collect/<bucket>_<prefix>` (or under `COVFLEET_CACHE`).
pub fn default_staging(url: &str) -> anyhow::Result<PathBuf> {
    let cache = std::env::var_os("COVFLEET_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/covfleet")))
        .ok_or_else(|| UsageError::new("no HOME: give --staging DIR"))?;
    let name = store::layout::sanitize(url.trim_start_matches("s3://"));
    Ok(cache.join("collect").join(name))
}

/// The mirror for `url`, with its spool in `local/spool`.
pub fn mirror(
    url: &str,
    local: &Path,
    endpoint: Option<String>,
    region: Option<String>,
    spool_max_bytes: u64,
) -> anyhow::Result<Mirror> {
    let options = SinkOptions {
        endpoint,
        region,
        credentials: Credentials::Auto,
        ..SinkOptions::default()
    };
    let sink = Sink::open(url, &options).map_err(|e| UsageError::new(e.to_string()))?;
    let spool = Spool::open(&local.join("spool"), spool_max_bytes)?;
    Ok(Mirror::new(Uploader::new(sink, spool)))
}

/// Runs `watch` while uploading new snapshots every 2 seconds.
pub async fn watch_and_mirror<T>(
    watch: impl std::future::Future<Output = T>,
    mirror: &mut Mirror,
    root: &Path,
) -> T {
    tokio::pin!(watch);
    loop {
        tokio::select! {
            out = &mut watch => return out,
            () = tokio::time::sleep(Duration::from_secs(2)) => {
                if let Err(e) = mirror.sync(root).await {
                    output::error(format_args!("upload: {e}"));
                }
            }
        }
    }
}

/// Reports the final upload pass; exit 1 when anything is left in the spool.
pub fn finish(r: Result<SyncReport, store::Error>, mirror: &Mirror, code: ExitCode) -> ExitCode {
    let up = mirror.uploader();
    let label = up.sink().label();
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            output::error(format_args!("upload to {label}: {e}"));
            return ExitCode::from(1);
        }
    };
    let st = up.stats();
    output::status(format_args!(
        "uploaded {} to {label}; {} waiting in the spool, {} dropped",
        output::plural(st.stored as usize, "snapshot", "snapshots"),
        st.spool_entries,
        st.dropped
    ));
    if st.spool_entries > 0 || st.dropped > 0 {
        output::error(format_args!(
            "upload to {label} incomplete: {}; {} kept in the spool (the next collect with the same --staging uploads them)",
            r.last_error.as_deref().unwrap_or("see above"),
            output::plural(st.spool_entries as usize, "snapshot", "snapshots")
        ));
        return ExitCode::from(1);
    }
    code
}
