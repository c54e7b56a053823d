//! A place to put objects: `file://DIR` or `s3://BUCKET[/PREFIX]`, over
//! the `object_store` crate. Keys are relative to the prefix.
//!
//! S3 requests are signed (SigV4), retried with exponential backoff and
//! bounded by a timeout; an S3-compatible server (`--endpoint`) is spoken
//! to path-style. Objects are always written whole (one `PUT`, or a write
//! to a temporary file and a rename for `file://`), so no reader ever sees
//! a partial object.
//!
//! Credentials ([`Credentials::Auto`]), in order: `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) from the environment;
//! web identity (IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`); the
//! AWS profile `AWS_PROFILE` (default `default`) in
//! `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`); the
//! seed's registry-auth pull-secret entry ([`crate::registry_auth`]);
//! otherwise the instance metadata service.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

use crate::config::{S3Config, redact_key_id};
use crate::error::Error;

/// Where the credentials for `s3://` come from.
#[derive(Clone, Default)]
pub enum Credentials {
    /// Environment, web identity, AWS profile, registry auth, instance
    /// metadata (see the module documentation).
    #[default]
    Auto,
    /// A static key pair.
    Static {
        access_key_id: String,
        secret_access_key: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Auto => f.write_str("Auto"),
            Credentials::Static { access_key_id, .. } => f
                .debug_struct("Static")
                .field("access_key_id", &redact_key_id(access_key_id))
                .field("secret_access_key", &"<redacted>")
                .finish(),
        }
    }
}

/// How to reach the store.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// S3-compatible endpoint (`http://127.0.0.1:9000`); path-style.
    pub endpoint: Option<String>,
    /// Region (default: from the environment, else `us-east-1`).
    pub region: Option<String>,
    pub credentials: Credentials,
    /// Retries per request (exponential backoff from 100 ms).
    pub retries: usize,
    /// Give up on a request (including its retries) after this long.
    pub retry_timeout: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Pull-secret files searched for the registry-auth entry when
    /// [`Credentials::Auto`] finds nothing else.
    pub registry_auth_paths: Vec<std::path::PathBuf>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            endpoint: None,
            region: None,
            credentials: Credentials::Auto,
            retries: 3,
            retry_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            registry_auth_paths: crate::registry_auth::DEFAULT_PATHS
                .iter()
                .map(Into::into)
                .collect(),
        }
    }
}

impl SinkOptions {
    /// Options (endpoint, region, static credentials) from an [`S3Config`].
    pub fn from_config(config: &S3Config) -> SinkOptions {
        SinkOptions {
            endpoint: config.s3_endpoint.clone(),
            region: Some(config.s3_region.clone()).filter(|r| !r.is_empty()),
            credentials: Credentials::Static {
                access_key_id: config.aws_access_key_id.clone(),
                secret_access_key: config.aws_secret_access_key.clone(),
            },
            ..SinkOptions::default()
        }
    }
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Key relative to the sink's prefix.
    pub key: String,
    pub size: u64,
    pub last_modified: SystemTime,
}

/// An object store and a key prefix.
#[derive(Clone)]
pub struct Sink {
    store: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    /// `s3://bucket/prefix (endpoint URL)` or `file:///dir`, for messages.
    label: String,
    bucket: String,
    key_id: String,
}

impl std::fmt::Debug for Sink {
    // The store's own Debug could show credentials: only the label.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("store", &self.label).finish()
    }
}

/// Splits `s3://BUCKET/PREFIX` into bucket and prefix.
pub fn parse_s3_url(url: &str) -> Result<(String, String), Error> {
    let bad = |why: &str| Error::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("no s3:// scheme"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("no bucket"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

fn prefix_path(label: &str, prefix: &str) -> Result<Option<Path>, Error> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Ok(None);
    }
    Path::parse(prefix).map(Some).map_err(|e| Error::BadUrl {
        url: label.to_string(),
        why: format!("bad prefix {prefix:?}: {e}"),
    })
}

/// Reads `[profile]` from an AWS shared credentials file.
fn profile_credentials() -> Option<(String, String, Option<String>)> {
    let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| FsPath::new(&h).join(".aws/credentials")))?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let text = std::fs::read_to_string(file).ok()?;
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((id?, secret?, token))
}

impl Sink {
    /// Opens `file://DIR` (created when missing) or `s3://BUCKET[/PREFIX]`.
    pub fn open(url: &str, options: &SinkOptions) -> Result<Sink, Error> {
        if let Some(dir) = url.strip_prefix("file://") {
            return Sink::open_dir(FsPath::new(dir));
        }
        let (bucket, prefix) = parse_s3_url(url)?;
        Sink::open_s3(&bucket, &prefix, options)
    }

    /// A local directory (created when missing).
    pub fn open_dir(dir: &FsPath) -> Result<Sink, Error> {
        if dir.as_os_str().is_empty() {
            return Err(Error::BadUrl {
                url: "file://".into(),
                why: "no directory".into(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let label = format!("file://{}", dir.display());
        let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| Error::Setup {
            store: label.clone(),
            message: e.to_string(),
        })?;
        Ok(Sink {
            store: Arc::new(store),
            prefix: None,
            label,
            bucket: String::new(),
            key_id: String::new(),
        })
    }

    /// An S3 bucket (or an S3-compatible server's, with `options.endpoint`).
    pub fn open_s3(bucket: &str, prefix: &str, options: &SinkOptions) -> Result<Sink, Error> {
        let url = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let label = match &options.endpoint {
            Some(ep) => format!("{url} (endpoint {ep})"),
            None => url.clone(),
        };
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let mut key_id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
        let mut region = options.region.clone();
        let mut endpoint = options.endpoint.clone();
        match &options.credentials {
            Credentials::Static {
                access_key_id,
                secret_access_key,
            } => {
                key_id = access_key_id.clone();
                b = b
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key);
            }
            Credentials::Auto => {
                let env_keys = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
                let web_identity = std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE").is_some();
                if !env_keys && !web_identity {
                    if let Some((id, secret, token)) = profile_credentials() {
                        key_id = id.clone();
                        b = b.with_access_key_id(id).with_secret_access_key(secret);
                        if let Some(t) = token {
                            b = b.with_token(t);
                        }
                    } else if let Some(found) =
                        crate::registry_auth::search(&options.registry_auth_paths)?
                    {
                        tracing::info!(
                            path = %found.path.display(),
                            "S3 credentials from the registry-auth entry"
                        );
                        let c = found.config;
                        key_id = c.aws_access_key_id.clone();
                        b = b
                            .with_access_key_id(c.aws_access_key_id)
                            .with_secret_access_key(c.aws_secret_access_key);
                        region = region.or(Some(c.s3_region).filter(|r| !r.is_empty()));
                        endpoint = endpoint.or(c.s3_endpoint);
                    }
                }
            }
        }
        let region = region
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        b = b.with_region(region);
        let mut client = ClientOptions::new()
            .with_timeout(options.timeout)
            .with_connect_timeout(options.connect_timeout);
        if let Some(ep) = &endpoint {
            b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
            if ep.starts_with("http://") {
                client = client.with_allow_http(true);
            }
        }
        b = b.with_client_options(client).with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: options.retries,
            retry_timeout: options.retry_timeout,
        });
        let store = b.build().map_err(|e| Error::Setup {
            store: label.clone(),
            message: e.to_string(),
        })?;
        Ok(Sink {
            store: Arc::new(store),
            prefix: prefix_path(&url, prefix)?,
            label,
            bucket: bucket.to_string(),
            key_id: if key_id.is_empty() {
                "<none found in the environment, an AWS profile or the registry-auth entry; \
                 instance metadata was tried>"
                    .into()
            } else {
                redact_key_id(&key_id)
            },
        })
    }

    /// Opens the bucket and prefix an [`S3Config`] names, with its
    /// endpoint and credentials.
    pub fn from_config(config: &S3Config) -> Result<Sink, Error> {
        Sink::open_s3(
            &config.s3_bucket,
            config.s3_base_path.trim_matches('/'),
            &SinkOptions::from_config(config),
        )
    }

    /// A sink on the same store under `sub` (relative to this prefix).
    pub fn sub(&self, sub: &str) -> Result<Sink, Error> {
        let path = self.path(sub.trim_matches('/'))?;
        let mut s = self.clone();
        s.prefix = Some(path).filter(|p| !p.as_ref().is_empty());
        Ok(s)
    }

    /// `s3://bucket/prefix (endpoint URL)` or `file://DIR`.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn path(&self, key: &str) -> Result<Path, Error> {
        let bad = |why| Error::BadKey {
            store: self.label.clone(),
            key: key.to_string(),
            why,
        };
        if key.starts_with('/') {
            return Err(bad("absolute"));
        }
        if key.split('/').any(|p| p == ".." || p == ".") {
            return Err(bad("has . or .. components"));
        }
        let rel = Path::parse(key).map_err(|_| bad("not a valid object key"))?;
        Ok(match &self.prefix {
            Some(p) => rel.parts().fold(p.clone(), |acc, part| acc.join(part)),
            None => rel,
        })
    }

    fn request_error(&self, op: &'static str, key: &str, e: object_store::Error) -> Error {
        let key = if key.is_empty() {
            self.prefix
                .as_ref()
                .map_or_else(|| "/".to_string(), |p| format!("{p}/"))
        } else {
            key.to_string()
        };
        let key = key.as_str();
        // Listing errors come back as `Generic`: recognise S3's answers.
        let denied = match &e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => true,
            object_store::Error::Generic { .. } => {
                let m = e.to_string();
                [
                    "403 Forbidden",
                    "401 Unauthorized",
                    "SignatureDoesNotMatch",
                    "InvalidAccessKeyId",
                    "AccessDenied",
                ]
                .iter()
                .any(|k| m.contains(k))
            }
            _ => false,
        };
        match e {
            e if denied => Error::Denied {
                store: self.label.clone(),
                bucket: self.bucket.clone(),
                key_id: self.key_id.clone(),
                op,
                key: key.to_string(),
                source: Box::new(e),
            },
            e => Error::Request {
                store: self.label.clone(),
                op,
                key: key.to_string(),
                source: Box::new(e),
            },
        }
    }

    /// Writes one object whole.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), Error> {
        let path = self.path(key)?;
        self.store
            .put(&path, PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(|e| self.request_error("put", key, e))
    }

    /// Reads one object. `Ok(None)` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
        let path = self.path(key)?;
        let r = match self.store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.request_error("get", key, e)),
        };
        r.bytes()
            .await
            .map(Some)
            .map_err(|e| self.request_error("get", key, e))
    }

    /// Deletes one object (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.request_error("delete", key, e)),
        }
    }

    /// The "subdirectories" directly under `sub` (relative to the prefix),
    /// as keys relative to the prefix without a trailing `/`.
    pub async fn list_dirs(&self, sub: &str) -> Result<Vec<String>, Error> {
        let sub = sub.trim_matches('/');
        let base = if sub.is_empty() {
            self.prefix.clone()
        } else {
            Some(self.path(sub)?)
        };
        let strip = self.prefix.as_ref().map_or(0, |p| p.as_ref().len() + 1);
        let r = self
            .store
            .list_with_delimiter(base.as_ref())
            .await
            .map_err(|e| self.request_error("list", sub, e))?;
        Ok(r.common_prefixes
            .iter()
            .map(|p| p.as_ref().get(strip..).unwrap_or_default().to_string())
            .collect())
    }

    /// Lists every object under `sub` (relative to the prefix; `""` for
    /// all), keys relative to the prefix.
    pub async fn list(&self, sub: &str) -> Result<Vec<Listed>, Error> {
        let sub = sub.trim_matches('/');
        let base = if sub.is_empty() {
            self.prefix.clone()
        } else {
            Some(self.path(sub)?)
        };
        let strip = self.prefix.as_ref().map(|p| p.as_ref().len() + 1);
        self.store
            .list(base.as_ref())
            .map_err(|e| self.request_error("list", sub, e))
            .map(|r| {
                r.map(|m| {
                    let full = m.location.as_ref();
                    let key = match strip {
                        Some(n) if full.len() >= n => full[n..].to_string(),
                        _ => full.to_string(),
                    };
                    let secs = m.last_modified.timestamp();
                    let nanos = m.last_modified.timestamp_subsec_nanos();
                    let last_modified = if secs >= 0 {
                        SystemTime::UNIX_EPOCH + Duration::new(secs as u64, nanos)
                    } else {
                        SystemTime::UNIX_EPOCH
                    };
                    Listed {
                        key,
                        size: m.size,
                        last_modified,
                    }
                })
            })
            .try_collect()
            .await
    }
}
