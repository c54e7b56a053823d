//! The S3 configuration shared by the agent, `collect -o s3://…`,
//! `download`, `pull-secret` and `s3-setup`.
//!
//! The JSON form is the seed system's (camelCase keys), the payload of the
//! `cluster-code-coverage.openshift.io` registry-auth entry
//! (see [`crate::registry_auth`]):
//!
//! ```json
//! {"s3Bucket": "my-bucket", "s3Region": "us-east-1",
//!  "s3BasePath": "openshift-ci/coverage",
//!  "awsAccessKeyId": "AKIA…", "awsSecretAccessKey": "…",
//!  "s3Endpoint": "http://127.0.0.1:9000"}
//! ```
//!
//! `s3Endpoint` is optional (S3-compatible servers; it implies path-style
//! requests). The `Debug` form never shows the secret key, and only the
//! first four characters of the access key id.

use serde::{Deserialize, Serialize};

/// Default `s3BasePath` (the seed's `s3-setup.py --base-path` default).
pub const DEFAULT_BASE_PATH: &str = "openshift-ci/coverage";

/// Bucket, region, base path, static credentials and optional endpoint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Config {
    /// Bucket name.
    pub s3_bucket: String,
    /// Region (`us-east-1` for most S3-compatible servers).
    pub s3_region: String,
    /// Key prefix under which every object is written, without slashes at
    /// either end (e.g. `openshift-ci/coverage/my-cluster`).
    #[serde(default)]
    pub s3_base_path: String,
    /// Access key id.
    pub aws_access_key_id: String,
    /// Secret access key. Never logged.
    pub aws_secret_access_key: String,
    /// Endpoint URL of an S3-compatible server (path-style requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
}

impl S3Config {
    /// Parses the JSON form.
    pub fn from_json(data: &[u8]) -> Result<S3Config, serde_json::Error> {
        serde_json::from_slice(data)
    }

    /// The JSON form (compact).
    pub fn to_json(&self) -> String {
        // Serializing plain strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `s3://BUCKET/BASE_PATH`.
    pub fn url(&self) -> String {
        let base = self.s3_base_path.trim_matches('/');
        if base.is_empty() {
            format!("s3://{}", self.s3_bucket)
        } else {
            format!("s3://{}/{}", self.s3_bucket, base)
        }
    }
}

/// Shows at most the first four characters of a key id.
pub(crate) fn redact_key_id(id: &str) -> String {
    let head: String = id.chars().take(4).collect();
    if id.chars().count() > 4 {
        format!("{head}…")
    } else {
        head
    }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_region", &self.s3_region)
            .field("s3_base_path", &self.s3_base_path)
            .field("aws_access_key_id", &redact_key_id(&self.aws_access_key_id))
            .field("aws_secret_access_key", &"<redacted>")
            .field("s3_endpoint", &self.s3_endpoint)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> S3Config {
        S3Config {
            s3_bucket: "b".into(),
            s3_region: "us-east-1".into(),
            s3_base_path: "openshift-ci/coverage".into(),
            aws_access_key_id: "AKIAEXAMPLE".into(),
            aws_secret_access_key: "very-secret-value".into(),
            s3_endpoint: Some("http://127.0.0.1:9000".into()),
        }
    }

    #[test]
    fn json_keys_are_the_seeds() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        for k in [
            "s3Bucket",
            "s3Region",
            "s3BasePath",
            "awsAccessKeyId",
            "awsSecretAccessKey",
            "s3Endpoint",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        let back = S3Config::from_json(sample().to_json().as_bytes()).unwrap();
        assert_eq!(back, sample());
        let no_ep: S3Config = serde_json::from_str(
            r#"{"s3Bucket":"b","s3Region":"r","s3BasePath":"p","awsAccessKeyId":"k","awsSecretAccessKey":"s"}"#,
        )
        .unwrap();
        assert_eq!(no_ep.s3_endpoint, None);
        assert!(!no_ep.to_json().contains("s3Endpoint"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let d = format!("{:?}", sample());
        assert!(!d.contains("very-secret-value"), "{d}");
        assert!(!d.contains("AKIAEXAMPLE"), "{d}");
        assert!(d.contains("AKIA…"), "{d}");
    }

    #[test]
    fn url_joins_bucket_and_base() {
        assert_eq!(sample().url(), "s3://b/openshift-ci/coverage");
        let mut c = sample();
        c.s3_base_path = "/".into();
        assert_eq!(c.url(), "s3://b");
    }
}
