//! Image → source repository and commit, from the labels OpenShift's builds
//! put on images (`io.openshift.build.source-location`,
//! `io.openshift.build.commit.id`), read from the image config through the
//! OCI distribution API, with `oc image info` as a fallback when `oc` is on
//! PATH. Never fatal: failures are recorded per image and retried after an
//! hour; successes are cached in `image_sources`.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use crate::error::InspectError;
use db::inspect::{ImageInspector, ImageLabels, InspectFailure};

/// The label naming the source repository.
pub const LABEL_SOURCE_URL: &str = "io.openshift.build.source-location";
/// The label naming the source commit.
pub const LABEL_COMMIT: &str = "io.openshift.build.commit.id";

/// (source URL, commit), each when present.
pub type SourcePair = (Option<String>, Option<String>);

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// Registries (`host[:port]`) spoken to over plain HTTP, besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Images inspected at once.
    pub concurrency: usize,
    /// Per-request timeout (default 15 s).
    pub timeout: Option<Duration>,
}

/// The source labels of an image config JSON (`config.Labels`, or `Labels`
/// at the top level as `oc image info` prints it under `config`).
pub fn labels_from_config(config_json: &str) -> Result<SourcePair, serde_json::Error> {
    let v: Value = serde_json::from_str(config_json)?;
    let labels = v
        .pointer("/config/Labels")
        .or_else(|| v.pointer("/config/config/Labels"))
        .or_else(|| v.get("Labels"))
        .cloned()
        .unwrap_or(Value::Null);
    let get = |k: &str| {
        labels
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok((get(LABEL_SOURCE_URL), get(LABEL_COMMIT)))
}

fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// Credentials for a registry from the usual auth files
/// (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `~/.docker/config.json`); anonymous otherwise.
fn auth_for(registry: &str) -> RegistryAuth {
    let mut files = Vec::new();
    if let Ok(f) = std::env::var("REGISTRY_AUTH_FILE") {
        files.push(std::path::PathBuf::from(f));
    }
    if let Ok(d) = std::env::var("XDG_RUNTIME_DIR") {
        files.push(std::path::Path::new(&d).join("containers/auth.json"));
    }
    if let Ok(h) = std::env::var("HOME") {
        files.push(std::path::Path::new(&h).join(".docker/config.json"));
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let Some(auth) = v
            .pointer("/auths")
            .and_then(|a| a.get(registry))
            .and_then(|e| e.get("auth"))
        else {
            continue;
        };
        use base64::Engine as _;
        if let Some(decoded) = auth
            .as_str()
            .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
            .and_then(|b| String::from_utf8(b).ok())
            && let Some((u, p)) = decoded.split_once(':')
        {
            return RegistryAuth::Basic(u.to_string(), p.to_string());
        }
    }
    RegistryAuth::Anonymous
}

async fn inspect_oci(client: &Client, image: &str) -> Result<SourcePair, InspectError> {
    let reference: Reference = image.parse().map_err(|source| InspectError::Reference {
        image: image.to_string(),
        source,
    })?;
    let auth = auth_for(reference.resolve_registry());
    let (_, _, config) = client
        .pull_manifest_and_config(&reference, &auth)
        .await
        .map_err(|source| InspectError::Registry {
            image: image.to_string(),
            source,
        })?;
    labels_from_config(&config).map_err(|source| InspectError::Config {
        image: image.to_string(),
        source,
    })
}

/// `oc image info`; `None` when there is no `oc` to run.
fn inspect_oc(image: &str) -> Option<Result<SourcePair, InspectError>> {
    let out = Command::new("oc")
        .args(["image", "info", image, "-o", "json"])
        .stdin(Stdio::null())
        .output()
        .ok()?; // no `oc`: no fallback
    if !out.status.success() {
        return Some(Err(InspectError::Oc {
            image: image.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }));
    }
    Some(
        labels_from_config(&String::from_utf8_lossy(&out.stdout)).map_err(|source| {
            InspectError::Config {
                image: image.to_string(),
                source,
            }
        }),
    )
}

/// Reads the source labels of images from their registries, at most
/// `opts.concurrency` at once; one result per image, in order. Never fails
/// as a whole. Needs a tokio runtime with IO and time enabled, and a rustls
/// crypto provider installed by the caller.
pub async fn inspect_registries(
    images: &[String],
    opts: &InspectOptions,
) -> Vec<Result<SourcePair, InspectError>> {
    let mut insecure: Vec<String> = opts.insecure_registries.clone();
    for i in images {
        if let Ok(r) = i.parse::<Reference>() {
            let reg = r.resolve_registry().to_string();
            if is_loopback_registry(&reg) && !insecure.contains(&reg) {
                insecure.push(reg);
            }
        }
    }
    let timeout = opts.timeout.unwrap_or(Duration::from_secs(15));
    let client = Arc::new(Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure),
        connect_timeout: Some(timeout),
        read_timeout: Some(timeout),
        ..ClientConfig::default()
    }));
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, image) in images.iter().enumerate() {
        let (client, sem, image) = (client.clone(), sem.clone(), image.clone());
        set.spawn(async move {
            let _permit = sem.acquire().await;
            let r = match tokio::time::timeout(timeout * 2, inspect_oci(&client, &image)).await {
                Ok(r) => r,
                Err(_) => Err(InspectError::Timeout {
                    image,
                    timeout: timeout * 2,
                }),
            };
            (i, r)
        });
    }
    let mut out: BTreeMap<usize, _> = BTreeMap::new();
    while let Some(j) = set.join_next().await {
        if let Ok((i, r)) = j {
            out.insert(i, r);
        }
    }
    images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            out.remove(&i).unwrap_or_else(|| {
                Err(InspectError::Task {
                    image: image.clone(),
                })
            })
        })
        .collect()
}

/// Image inspection for `compile --inspect-images`: the registry first, then
/// `oc image info` when `oc` is on PATH. Runs on the runtime it is given.
#[derive(Debug)]
pub struct Inspector {
    opts: InspectOptions,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Inspector {
    /// An inspector running its requests on `runtime` (which must have IO and
    /// time enabled; the caller installs the rustls crypto provider).
    pub fn new(opts: InspectOptions, runtime: Arc<tokio::runtime::Runtime>) -> Self {
        Inspector { opts, runtime }
    }

    /// Inspects images; one result per image, in order.
    pub fn inspect_all(&self, images: &[String]) -> Vec<Result<ImageLabels, InspectError>> {
        if images.is_empty() {
            return Vec::new();
        }
        let oci = self
            .runtime
            .block_on(inspect_registries(images, &self.opts));
        images
            .iter()
            .zip(oci)
            .map(|(image, r)| match r {
                Ok((u, c)) => Ok(ImageLabels {
                    source_url: u,
                    source_commit: c,
                    origin: "label",
                }),
                Err(registry) => match inspect_oc(image) {
                    Some(Ok((u, c))) => Ok(ImageLabels {
                        source_url: u,
                        source_commit: c,
                        origin: "oc",
                    }),
                    Some(Err(oc)) => Err(InspectError::Both {
                        registry: Box::new(registry),
                        oc: Box::new(oc),
                    }),
                    None => Err(registry),
                },
            })
            .collect()
    }
}

impl ImageInspector for Inspector {
    fn inspect(&self, images: &[String]) -> Vec<Result<ImageLabels, InspectFailure>> {
        self.inspect_all(images)
            .into_iter()
            .map(|r| r.map_err(InspectFailure::from))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_in_both_config_shapes() {
        let oci = r#"{"architecture":"amd64","config":{"Labels":{"io.openshift.build.source-location":"https://github.com/o/r","io.openshift.build.commit.id":"abc123"}}}"#;
        assert_eq!(
            labels_from_config(oci).unwrap(),
            (Some("https://github.com/o/r".into()), Some("abc123".into()))
        );
        let oc =
            r#"{"name":"x","config":{"config":{"Labels":{"io.openshift.build.commit.id":"def"}}}}"#;
        assert_eq!(labels_from_config(oc).unwrap(), (None, Some("def".into())));
        assert_eq!(labels_from_config("{}").unwrap(), (None, None));
        assert!(labels_from_config("nope").is_err());
    }

    #[test]
    fn loopback_registries() {
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(is_loopback_registry("localhost:5000"));
        assert!(is_loopback_registry("[::1]:5000"));
        assert!(!is_loopback_registry("quay.io"));
    }
}
