//! The seed system's registry-auth convention for S3 credentials.
//!
//! The cluster's pull secret (a Docker `config.json`) carries a fake
//! registry entry, [`ENTRY`], whose `auth` value is
//! `base64("coverage:" + base64(<S3 config JSON>))`. The container runtime
//! never contacts that "registry"; the pull secret is simply how the
//! credentials reach every node. See [`crate::config::S3Config`] for the
//! JSON.
//!
//! ```
//! use store::config::S3Config;
//! use store::registry_auth;
//!
//! let cfg = S3Config {
//!     s3_bucket: "coverage".into(),
//!     s3_region: "us-east-1".into(),
//!     s3_base_path: "openshift-ci/coverage/c1".into(),
//!     aws_access_key_id: "AKIAEXAMPLE".into(),
//!     aws_secret_access_key: "secret".into(),
//!     s3_endpoint: None,
//! };
//! let auth = registry_auth::encode(&cfg);
//! assert_eq!(registry_auth::decode(&auth).unwrap(), cfg);
//! ```

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::config::S3Config;

/// The registry name of the entry holding the S3 configuration.
pub const ENTRY: &str = "cluster-code-coverage.openshift.io";

/// The user name before the `:` in the entry's decoded `auth` value.
pub const USER: &str = "coverage";

/// Where the pull secret is looked for, in order: the kubelet's copy, then
/// the places it lives on bootstrap nodes. The first file that is readable
/// and holds [`ENTRY`] wins.
pub const DEFAULT_PATHS: [&str; 4] = [
    "/var/lib/kubelet/config.json",
    "/root/.docker/config.json",
    "/run/containers/0/auth.json",
    "/root/.config/containers/auth.json",
];

/// Why an entry could not be decoded. Messages never include the secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The `auth` value is not base64.
    #[error("the {ENTRY} auth value is not base64")]
    OuterBase64,
    /// The decoded value is not `coverage:<base64>`.
    #[error("the {ENTRY} auth value does not decode to \"{USER}:<base64 config>\"")]
    NotUserPassword,
    /// The password part is not base64.
    #[error("the {ENTRY} password is not base64")]
    InnerBase64,
    /// The password does not decode to the S3 config JSON.
    #[error("the {ENTRY} password is not the S3 config JSON: {0}")]
    Json(String),
    /// A pull-secret file holds the entry but it cannot be decoded.
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<AuthError>,
    },
}

/// The entry's `auth` value for `config`.
pub fn encode(config: &S3Config) -> String {
    let inner = STANDARD.encode(config.to_json());
    STANDARD.encode(format!("{USER}:{inner}"))
}

/// The entry object (`{"auth": …}`) to put under `auths.<ENTRY>`.
pub fn entry_value(config: &S3Config) -> Value {
    serde_json::json!({ "auth": encode(config) })
}

/// Decodes an `auth` value.
pub fn decode(auth: &str) -> Result<S3Config, AuthError> {
    let outer = STANDARD
        .decode(auth.trim())
        .map_err(|_| AuthError::OuterBase64)?;
    let outer = String::from_utf8(outer).map_err(|_| AuthError::NotUserPassword)?;
    let (_, password) = outer.split_once(':').ok_or(AuthError::NotUserPassword)?;
    decode_password(password)
}

fn decode_password(password: &str) -> Result<S3Config, AuthError> {
    let json = STANDARD
        .decode(password.trim())
        .map_err(|_| AuthError::InnerBase64)?;
    S3Config::from_json(&json).map_err(|e| AuthError::Json(e.to_string()))
}

/// Looks for [`ENTRY`] in one parsed pull secret (`auths.<ENTRY>.auth`, or
/// a separate `password` field). `None` when the entry is absent.
pub fn from_pull_secret(doc: &Value) -> Option<Result<S3Config, AuthError>> {
    let entry = doc.get("auths")?.get(ENTRY)?;
    if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
        return Some(decode(auth));
    }
    entry
        .get("password")
        .and_then(Value::as_str)
        .map(decode_password)
}

/// A configuration found in a pull-secret file.
#[derive(Debug, Clone)]
pub struct Found {
    /// The file it came from.
    pub path: PathBuf,
    /// The decoded configuration.
    pub config: S3Config,
}

/// Searches `paths` in order; the first file that is readable JSON holding
/// [`ENTRY`] wins. Unreadable or non-JSON files and files without the entry
/// are skipped. An entry that is present but cannot be decoded is an error
/// naming its file. `Ok(None)` when no file holds the entry.
pub fn search<P: AsRef<Path>>(paths: &[P]) -> Result<Option<Found>, AuthError> {
    for p in paths {
        let path = p.as_ref();
        let Ok(data) = std::fs::read(path) else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<Value>(&data) else {
            tracing::debug!(path = %path.display(), "not JSON, skipped");
            continue;
        };
        match from_pull_secret(&doc) {
            None => continue,
            Some(Ok(config)) => {
                return Ok(Some(Found {
                    path: path.to_path_buf(),
                    config,
                }));
            }
            Some(Err(e)) => {
                return Err(AuthError::InFile {
                    path: path.to_path_buf(),
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(None)
}

/// [`search`] over [`DEFAULT_PATHS`].
pub fn search_default() -> Result<Option<Found>, AuthError> {
    search(&DEFAULT_PATHS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(bucket: &str) -> S3Config {
        S3Config {
            s3_bucket: bucket.into(),
            s3_region: "us-east-1".into(),
            s3_base_path: "openshift-ci/coverage".into(),
            aws_access_key_id: "AKIAEXAMPLE".into(),
            aws_secret_access_key: "s3cr3t-value".into(),
            s3_endpoint: Some("http://127.0.0.1:9000".into()),
        }
    }

    #[test]
    fn encoding_is_the_seeds() {
        let c = cfg("b");
        let outer = String::from_utf8(STANDARD.decode(encode(&c)).unwrap()).unwrap();
        let inner = outer.strip_prefix("coverage:").unwrap();
        let json = STANDARD.decode(inner).unwrap();
        let v: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["s3Bucket"], "b");
        assert_eq!(v["awsSecretAccessKey"], "s3cr3t-value");
        assert_eq!(decode(&encode(&c)).unwrap(), c);
    }

    #[test]
    fn bad_values_are_errors_without_secrets() {
        assert!(matches!(decode("%%%"), Err(AuthError::OuterBase64)));
        let no_colon = STANDARD.encode("coverage");
        assert!(matches!(decode(&no_colon), Err(AuthError::NotUserPassword)));
        let bad_inner = STANDARD.encode("coverage:%%%");
        assert!(matches!(decode(&bad_inner), Err(AuthError::InnerBase64)));
        let not_json = STANDARD.encode(format!("coverage:{}", STANDARD.encode("s3cr3t")));
        let e = decode(&not_json).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn search_takes_the_first_file_holding_the_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing.json");
        let garbage = tmp.path().join("garbage.json");
        std::fs::write(&garbage, b"not json").unwrap();
        let other = tmp.path().join("other.json");
        std::fs::write(&other, br#"{"auths":{"quay.io":{"auth":"eDp5"}}}"#).unwrap();
        let first = tmp.path().join("first.json");
        let doc = serde_json::json!({"auths": {"quay.io": {"auth": "eDp5"}, ENTRY: entry_value(&cfg("one"))}});
        std::fs::write(&first, doc.to_string()).unwrap();
        let second = tmp.path().join("second.json");
        let doc = serde_json::json!({"auths": {ENTRY: entry_value(&cfg("two"))}});
        std::fs::write(&second, doc.to_string()).unwrap();

        let found = search(&[&missing, &garbage, &other, &first, &second])
            .unwrap()
            .unwrap();
        assert_eq!(found.path, first);
        assert_eq!(found.config.s3_bucket, "one");
        assert!(search(&[&missing, &garbage, &other]).unwrap().is_none());

        let broken = tmp.path().join("broken.json");
        std::fs::write(
            &broken,
            format!(r#"{{"auths":{{"{ENTRY}":{{"auth":"%%"}}}}}}"#),
        )
        .unwrap();
        let e = search(&[&broken, &second]).unwrap_err();
        assert!(e.to_string().contains("broken.json"), "{e}");
    }
}
