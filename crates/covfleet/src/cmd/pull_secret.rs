//! `covfleet pull-secret local|cluster`: add, replace or remove the
//! `cluster-code-coverage.openshift.io` auth entry carrying the S3
//! configuration (see `store::registry_auth`) in a pull secret.
//!
//! `local` edits a pull-secret JSON from stdin to stdout; `cluster` edits the
//! `openshift-config/pull-secret` Secret through the Kubernetes API, writing
//! a backup of the old value first. Every other byte of the document is kept
//! ([`splice`]). Secrets are never printed: messages name the bucket, region
//! and prefix only.

pub mod splice;

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use store::config::S3Config;
use store::registry_auth;

use crate::cli::UsageError;
use crate::{Shared, output};
use splice::Change;

/// The namespace and name of the cluster's global pull secret.
pub const SECRET_NAMESPACE: &str = "openshift-config";
/// See [`SECRET_NAMESPACE`].
pub const SECRET_NAME: &str = "pull-secret";
/// The Secret's data key holding the Docker config JSON.
pub const SECRET_KEY: &str = ".dockerconfigjson";

/// Where the pull secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Read a pull-secret JSON on stdin, write the edited one to stdout.
    Local,
    /// Edit the openshift-config/pull-secret Secret through the Kubernetes API.
    Cluster,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `local` (stdin to stdout) or `cluster` (the openshift-config/pull-secret Secret).
    #[arg(value_enum)]
    pub target: Target,
    /// S3 config JSON as `covfleet s3-setup` writes it (configs/BUCKET.json).
    /// Without it, the values are asked for when stdin is a terminal.
    #[arg(short = 'f', long = "config", value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// Key prefix the cluster writes under (e.g. openshift-ci/coverage/my-cluster);
    /// overrides the config's s3BasePath.
    #[arg(long, value_name = "P", required_unless_present = "remove")]
    pub s3_prefix: Option<String>,
    /// Remove the entry instead of adding it (undo).
    #[arg(long, conflicts_with_all = ["config", "s3_prefix"])]
    pub remove: bool,
    /// cluster: print what would change (secrets redacted), change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// cluster: where to write the old value first (created 0600; default
    /// ./pull-secret-backup-UNIXSECONDS.json).
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,
    /// cluster: kubeconfig file (default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// cluster: kubeconfig context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(msg.into()))
}

pub fn run(args: Args, shared: &Shared) -> anyhow::Result<ExitCode> {
    if args.target == Target::Local
        && (args.dry_run
            || args.backup.is_some()
            || args.kubeconfig.is_some()
            || args.context.is_some())
    {
        return Err(usage(
            "--dry-run, --backup, --kubeconfig and --context apply to `pull-secret cluster` only",
        ));
    }
    let value = if args.remove {
        None
    } else {
        let config = config(&args)?;
        output::status(format_args!("entry for {}", describe(&config)));
        Some(registry_auth::entry_value(&config).to_string())
    };
    match args.target {
        Target::Local => local(value.as_deref()),
        Target::Cluster => shared.runtime.block_on(cluster(&args, value.as_deref())),
    }
}

/// The configuration to store: `-f` or the prompts, with `--s3-prefix`.
fn config(args: &Args) -> anyhow::Result<S3Config> {
    let mut config = match &args.config {
        Some(path) => read_config(path)?,
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(usage(
                    "give -f CONFIG (as `covfleet s3-setup` writes it): values are asked for only when stdin is a terminal",
                ));
            }
            prompt_config()?
        }
    };
    let prefix = args
        .s3_prefix
        .as_deref()
        .unwrap_or_default()
        .trim_matches('/');
    if prefix.is_empty() {
        return Err(usage("--s3-prefix must not be empty"));
    }
    config.s3_base_path = prefix.to_string();
    Ok(config)
}

fn read_config(path: &Path) -> anyhow::Result<S3Config> {
    let data = std::fs::read(path)
        .map_err(|e| UsageError::caused_by(format!("cannot read {}", path.display()), e))?;
    // serde_json's message names the line and column, never the value.
    let config = S3Config::from_json(&data).map_err(|e| {
        UsageError::caused_by(format!("{} is not an S3 config JSON", path.display()), e)
    })?;
    for (name, v) in [
        ("s3Bucket", &config.s3_bucket),
        ("s3Region", &config.s3_region),
        ("awsAccessKeyId", &config.aws_access_key_id),
        ("awsSecretAccessKey", &config.aws_secret_access_key),
    ] {
        if v.trim().is_empty() {
            return Err(usage(format!("{}: {name} is empty", path.display())));
        }
    }
    Ok(config)
}

/// `s3://bucket/prefix (region R[, endpoint E])`: no key material.
fn describe(c: &S3Config) -> String {
    let mut s = format!("{} (region {}", c.url(), c.s3_region);
    if let Some(e) = &c.s3_endpoint {
        s.push_str(&format!(", endpoint {e}"));
    }
    s.push(')');
    s
}

fn prompt_config() -> anyhow::Result<S3Config> {
    let stdin = std::io::stdin();
    let ask = |q: &str, secret: bool| -> anyhow::Result<String> {
        eprint!("{q}: ");
        let _ = std::io::stderr().flush();
        let _echo = if secret { EchoOff::new() } else { None };
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the answer")?;
        if secret {
            eprintln!();
        }
        Ok(line.trim().to_string())
    };
    let required = |v: String, what: &str| {
        if v.is_empty() {
            Err(usage(format!("{what} is required")))
        } else {
            Ok(v)
        }
    };
    let s3_bucket = required(ask("S3 bucket", false)?, "the bucket")?;
    let s3_region = required(ask("S3 region", false)?, "the region")?;
    let aws_access_key_id = required(ask("AWS access key id", false)?, "the access key id")?;
    let aws_secret_access_key = required(
        ask("AWS secret access key (not echoed)", true)?,
        "the secret access key",
    )?;
    let endpoint = ask("S3 endpoint URL (empty for AWS)", false)?;
    Ok(S3Config {
        s3_bucket,
        s3_region,
        s3_base_path: String::new(),
        aws_access_key_id,
        aws_secret_access_key,
        s3_endpoint: (!endpoint.is_empty()).then_some(endpoint),
    })
}

/// Turns terminal echo off on stdin until dropped.
struct EchoOff(rustix::termios::Termios);

impl EchoOff {
    fn new() -> Option<EchoOff> {
        let fd = std::io::stdin();
        let old = rustix::termios::tcgetattr(&fd).ok()?;
        let mut quiet = old.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &quiet).ok()?;
        Some(EchoOff(old))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.0,
        );
    }
}

fn change_word(c: Change, dry: bool) -> &'static str {
    match (c, dry) {
        (Change::Added, false) => "added",
        (Change::Added, true) => "would add",
        (Change::Replaced, false) => "replaced",
        (Change::Replaced, true) => "would replace",
        (Change::Removed, false) => "removed",
        (Change::Removed, true) => "would remove",
        (Change::Absent, _) => "found no",
    }
}

fn local(value: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut doc = String::new();
    std::io::stdin()
        .read_to_string(&mut doc)
        .context("reading the pull secret from stdin")?;
    let (out, change) = splice::apply(&doc, registry_auth::ENTRY, value)
        .map_err(|e| UsageError::caused_by("cannot edit the pull secret from stdin", e))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
        .context("writing the pull secret to stdout")?;
    output::status(format_args!(
        "{} {} entry",
        change_word(change, false),
        registry_auth::ENTRY
    ));
    Ok(ExitCode::SUCCESS)
}

async fn cluster(args: &Args, value: Option<&str>) -> anyhow::Result<ExitCode> {
    let sel = scrape::kube::Selection {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        ..Default::default()
    };
    let client = scrape::kube::client(&sel).await?;
    let api: Api<Secret> = Api::namespaced(client, SECRET_NAMESPACE);
    let what = format!("Secret {SECRET_NAMESPACE}/{SECRET_NAME}");
    let mut secret = api
        .get(SECRET_NAME)
        .await
        .with_context(|| format!("cannot read the {what}"))?;
    let old = secret
        .data
        .as_ref()
        .and_then(|d| d.get(SECRET_KEY))
        .map(|b| b.0.clone())
        .ok_or_else(|| anyhow::anyhow!("the {what} has no {SECRET_KEY} key"))?;
    let old_text = String::from_utf8(old.clone())
        .map_err(|_| anyhow::anyhow!("the {what}'s {SECRET_KEY} is not UTF-8"))?;
    let (new_text, change) = splice::apply(&old_text, registry_auth::ENTRY, value)
        .with_context(|| format!("cannot edit the {what}'s {SECRET_KEY}"))?;
    if let Some(Ok(current)) = serde_json::from_str(&old_text)
        .ok()
        .as_ref()
        .and_then(registry_auth::from_pull_secret)
    {
        output::status(format_args!("current entry: {}", describe(&current)));
    }
    if change == Change::Absent {
        output::status(format_args!(
            "the {what} holds no {} entry: nothing to remove",
            registry_auth::ENTRY
        ));
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        output::data(format_args!(
            "{} {} entry in the {what} (dry run: nothing changed)",
            change_word(change, true),
            registry_auth::ENTRY
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let backup = args.backup.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        PathBuf::from(format!("pull-secret-backup-{secs}.json"))
    });
    write_private(&backup, &old).map_err(|e| {
        UsageError::caused_by(format!("cannot write the backup {}", backup.display()), e)
    })?;
    output::status(format_args!(
        "backup of the old {SECRET_KEY}: {} (`--remove` undoes this change)",
        backup.display()
    ));
    secret
        .data
        .get_or_insert_with(BTreeMap::new)
        .insert(SECRET_KEY.to_string(), ByteString(new_text.into_bytes()));
    // The resourceVersion from the read makes a concurrent edit a conflict.
    api.replace(SECRET_NAME, &PostParams::default(), &secret)
        .await
        .with_context(|| {
            format!(
                "cannot update the {what} (the backup is {})",
                backup.display()
            )
        })?;
    output::data(format_args!(
        "{} {} entry in the {what}",
        change_word(change, false),
        registry_auth::ENTRY
    ));
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` (must not exist) with mode 0600 and writes `data`.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
