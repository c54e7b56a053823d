//! `covfleet s3-setup`: the bucket (idempotent) with a 90-day expiry rule,
//! then, on AWS, the upload user through the CloudFormation template shipped
//! in `deploy/coverage-s3.cfn.yaml` (policy limited to PutObject, GetObject
//! and ListBucket on that bucket, a user, an access key); the S3 config is
//! written to `configs/<bucket>.json` (mode 0600) for `covfleet pull-secret`.
//!
//! Requests are plain HTTPS signed with SigV4 by `object_store`'s
//! `AwsAuthorizer` (no AWS SDK: the workspace is rustls + ring only).
//! `AWS_ENDPOINT_URL_S3` and `AWS_ENDPOINT_URL_CLOUDFORMATION` point the
//! requests elsewhere (an emulator); `--endpoint` is an S3-compatible server,
//! where only the bucket and its lifecycle are set up.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use md5::Digest as _;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector as _, HttpRequest, HttpRequestBody, ReqwestConnector,
};
use store::config::S3Config;

use crate::cli::UsageError;
use crate::{Shared, output};

/// The CloudFormation template (IAM only; the bucket is made directly).
pub const TEMPLATE: &str = include_str!("../../../../deploy/coverage-s3.cfn.yaml");

/// Days after which coverage objects expire.
pub const EXPIRY_DAYS: u32 = 90;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bucket name.
    #[arg(long, value_name = "B")]
    pub bucket: String,
    /// Region.
    #[arg(long, value_name = "R")]
    pub region: String,
    /// CloudFormation stack holding the IAM policy, user and access key.
    #[arg(long, value_name = "NAME", default_value = "coverage-s3-infra")]
    pub stack_name: String,
    /// s3BasePath written to the config (pull-secret --s3-prefix overrides it).
    #[arg(long, value_name = "PATH", default_value = store::config::DEFAULT_BASE_PATH)]
    pub base_path: String,
    /// Profile in ~/.aws/credentials (default: AWS_PROFILE, else the
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment, else `default`).
    #[arg(long, value_name = "P")]
    pub profile: Option<String>,
    /// An S3-compatible server (path-style): only the bucket and its lifecycle
    /// are set up, and the config holds the credentials used.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Directory the config is written to.
    #[arg(long, value_name = "DIR", default_value = "configs")]
    pub configs_dir: PathBuf,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(msg.into()))
}

pub fn run(args: Args, shared: &Shared) -> anyhow::Result<ExitCode> {
    if args.bucket.is_empty()
        || !args
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(usage(format!(
            "--bucket {:?}: a bucket name is lowercase letters, digits, '-' and '.'",
            args.bucket
        )));
    }
    let cred = credentials(args.profile.as_deref())?;
    shared.runtime.block_on(setup(&args, cred))
}

/// Static credentials from `--profile`, `AWS_PROFILE`, the environment or
/// the `default` profile, in that order.
fn credentials(profile: Option<&str>) -> anyhow::Result<AwsCredential> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let profile = profile.map(str::to_string).or_else(|| env("AWS_PROFILE"));
    if profile.is_none()
        && let (Some(key_id), Some(secret_key)) =
            (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        return Ok(AwsCredential {
            key_id,
            secret_key,
            token: env("AWS_SESSION_TOKEN"),
        });
    }
    let profile = profile.unwrap_or_else(|| "default".into());
    let file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".aws/credentials")
        });
    let text = std::fs::read_to_string(&file).map_err(|e| {
        UsageError::caused_by(
            format!(
                "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or give --profile (cannot read {})",
                file.display()
            ),
            e,
        )
    })?;
    profile_credentials(&text, &profile).ok_or_else(|| {
        usage(format!(
            "{}: profile [{profile}] has no aws_access_key_id and aws_secret_access_key",
            file.display()
        ))
    })
}

/// Reads `[profile]`'s keys from an INI credentials file.
fn profile_credentials(text: &str, profile: &str) -> Option<AwsCredential> {
    let mut in_section = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            in_section = name == profile || name == format!("profile {profile}");
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_string());
            match k.trim() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    Some(AwsCredential {
        key_id: id?,
        secret_key: secret?,
        token,
    })
}

/// A signed-request client for one region and credential, on
/// object_store's HTTP client (the stack `store` uses).
struct Aws {
    http: HttpClient,
    cred: AwsCredential,
    region: String,
}

/// A response: status and body text.
struct Answer {
    status: u16,
    body: String,
}

impl Aws {
    async fn send(
        &self,
        service: &str,
        method: http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let mut req: HttpRequest = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .body(HttpRequestBody::from(body))
            .with_context(|| format!("bad URL {url}"))?;
        for (k, v) in headers {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(k.as_bytes())?,
                http::HeaderValue::from_str(v)?,
            );
        }
        AwsAuthorizer::new(&self.cred, service, &self.region)
            .with_sign_payload(true)
            .try_authorize(&mut req, None)
            .map_err(|e| anyhow!("cannot sign the request to {url}: {e}"))?;
        let resp = self
            .http
            .execute(req)
            .await
            .with_context(|| format!("{service} request to {url}"))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        let body = String::from_utf8_lossy(&bytes).into_owned();
        Ok(Answer { status, body })
    }
}

/// The text of the first `<tag>…</tag>` in `xml` (entities decoded).
fn tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(unescape(&xml[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `Code: Message` of an AWS error answer (never contains a secret).
fn aws_error(a: &Answer) -> String {
    let code = tag(&a.body, "Code").unwrap_or_default();
    let msg = tag(&a.body, "Message").unwrap_or_default();
    format!("HTTP {}: {code} {msg}", a.status)
        .trim()
        .to_string()
}

async fn setup(args: &Args, cred: AwsCredential) -> anyhow::Result<ExitCode> {
    let aws = Aws {
        http: ReqwestConnector::default()
            .connect(
                &ClientOptions::new()
                    .with_timeout(Duration::from_secs(60))
                    .with_allow_http(true),
            )
            .context("building the HTTP client")?,
        cred,
        region: args.region.clone(),
    };
    let env_endpoint = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let s3_base = match &args.endpoint {
        Some(e) => format!("{}/{}", e.trim_end_matches('/'), args.bucket),
        None => match env_endpoint("AWS_ENDPOINT_URL_S3") {
            Some(e) => format!("{}/{}", e.trim_end_matches('/'), args.bucket),
            None => format!("https://{}.s3.{}.amazonaws.com", args.bucket, args.region),
        },
    };
    ensure_bucket(&aws, &s3_base, args).await?;
    put_lifecycle(&aws, &s3_base, &args.bucket).await?;

    let (key_id, secret) = if args.endpoint.is_some() {
        (aws.cred.key_id.clone(), aws.cred.secret_key.clone())
    } else {
        let cfn = env_endpoint("AWS_ENDPOINT_URL_CLOUDFORMATION")
            .unwrap_or_else(|| format!("https://cloudformation.{}.amazonaws.com", args.region));
        stack(&aws, cfn.trim_end_matches('/'), args).await?
    };
    let config = S3Config {
        s3_bucket: args.bucket.clone(),
        s3_region: args.region.clone(),
        s3_base_path: args.base_path.trim_matches('/').to_string(),
        aws_access_key_id: key_id,
        aws_secret_access_key: secret,
        s3_endpoint: args.endpoint.clone(),
    };
    let path = args.configs_dir.join(format!("{}.json", args.bucket));
    write_config(&path, &config)
        .with_context(|| format!("cannot write the config {}", path.display()))?;
    output::data(path.display());
    output::hint(format_args!(
        "next: covfleet pull-secret cluster -f {} --s3-prefix {}/<cluster>",
        path.display(),
        config.s3_base_path
    ));
    Ok(ExitCode::SUCCESS)
}

async fn ensure_bucket(aws: &Aws, base: &str, args: &Args) -> anyhow::Result<()> {
    let head = aws
        .send("s3", http::Method::HEAD, base, &[], Vec::new())
        .await?;
    match head.status {
        200 => {
            output::status(format_args!("bucket {} exists", args.bucket));
            return Ok(());
        }
        404 => {}
        403 => bail!(
            "bucket {}: HTTP 403 (it belongs to another account, or these credentials may not read it)",
            args.bucket
        ),
        _ => bail!("bucket {}: HEAD answered {}", args.bucket, aws_error(&head)),
    }
    let body = if args.region == "us-east-1" || args.endpoint.is_some() {
        Vec::new()
    } else {
        format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
            args.region
        )
        .into_bytes()
    };
    let a = aws.send("s3", http::Method::PUT, base, &[], body).await?;
    let code = tag(&a.body, "Code").unwrap_or_default();
    if (200..300).contains(&a.status) || code == "BucketAlreadyOwnedByYou" {
        output::status(format_args!("bucket {} created", args.bucket));
        Ok(())
    } else {
        bail!("cannot create bucket {}: {}", args.bucket, aws_error(&a))
    }
}

/// The lifecycle document: every object expires after [`EXPIRY_DAYS`].
pub fn lifecycle_xml() -> String {
    format!(
        "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ID>covfleet-expire-{EXPIRY_DAYS}d</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status><Expiration><Days>{EXPIRY_DAYS}</Days></Expiration></Rule></LifecycleConfiguration>"
    )
}

async fn put_lifecycle(aws: &Aws, base: &str, bucket: &str) -> anyhow::Result<()> {
    let body = lifecycle_xml().into_bytes();
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
    let url = format!("{base}?lifecycle");
    let a = aws
        .send(
            "s3",
            http::Method::PUT,
            &url,
            &[
                ("content-md5", md5),
                ("content-type", "application/xml".into()),
            ],
            body,
        )
        .await?;
    if !(200..300).contains(&a.status) {
        bail!(
            "cannot set the lifecycle of bucket {bucket}: {}",
            aws_error(&a)
        );
    }
    output::status(format_args!(
        "bucket {bucket}: objects expire after {EXPIRY_DAYS} days"
    ));
    Ok(())
}

/// A CloudFormation Query API call (form-encoded POST).
async fn cfn(aws: &Aws, url: &str, params: &[(&str, &str)]) -> anyhow::Result<Answer> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Version", "2010-05-15");
    for (k, v) in params {
        form.append_pair(k, v);
    }
    aws.send(
        "cloudformation",
        http::Method::POST,
        &format!("{url}/"),
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        form.finish().into_bytes(),
    )
    .await
}

/// The stack's status, `None` when it does not exist.
async fn stack_status(
    aws: &Aws,
    url: &str,
    name: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let a = cfn(
        aws,
        url,
        &[("Action", "DescribeStacks"), ("StackName", name)],
    )
    .await?;
    if a.status == 400 && a.body.contains("does not exist") {
        return Ok(None);
    }
    if !(200..300).contains(&a.status) {
        bail!("DescribeStacks {name}: {}", aws_error(&a));
    }
    let status = tag(&a.body, "StackStatus").unwrap_or_default();
    Ok(Some((status, a.body)))
}

/// Polls until the stack leaves its `*_IN_PROGRESS` state.
async fn settle(aws: &Aws, url: &str, name: &str) -> anyhow::Result<Option<(String, String)>> {
    for _ in 0..360 {
        match stack_status(aws, url, name).await? {
            Some((s, _)) if s.ends_with("_IN_PROGRESS") => {
                tokio::time::sleep(Duration::from_secs(5)).await
            }
            other => return Ok(other),
        }
    }
    bail!("stack {name} still in progress after 30 minutes")
}

fn is_failed(status: &str) -> bool {
    status.ends_with("_FAILED") || status.contains("ROLLBACK")
}

/// Creates (or re-creates a failed) stack; returns the access key.
async fn stack(aws: &Aws, url: &str, args: &Args) -> anyhow::Result<(String, String)> {
    let name = args.stack_name.as_str();
    let mut current = settle(aws, url, name).await?;
    if let Some((s, _)) = &current
        && is_failed(s)
    {
        output::warn(format_args!(
            "stack {name} is {s}: deleting it and creating it again"
        ));
        let a = cfn(aws, url, &[("Action", "DeleteStack"), ("StackName", name)]).await?;
        if !(200..300).contains(&a.status) {
            bail!("DeleteStack {name}: {}", aws_error(&a));
        }
        current = settle(aws, url, name).await?;
        if let Some((s, _)) = &current
            && s != "DELETE_COMPLETE"
        {
            bail!("stack {name} could not be deleted: {s}");
        }
        current = None;
    }
    let body = match current {
        Some((s, _)) if s == "DELETE_COMPLETE" => create(aws, url, args).await?.1,
        Some((_, body)) => {
            output::status(format_args!("stack {name} exists"));
            body
        }
        None => create(aws, url, args).await?.1,
    };
    let outputs = outputs(&body);
    let get = |k: &str| {
        outputs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| anyhow!("stack {name} has no {k} output"))
    };
    Ok((get("AccessKeyId")?, get("SecretAccessKey")?))
}

async fn create(aws: &Aws, url: &str, args: &Args) -> anyhow::Result<(String, String)> {
    let name = args.stack_name.as_str();
    let a = cfn(
        aws,
        url,
        &[
            ("Action", "CreateStack"),
            ("StackName", name),
            ("TemplateBody", TEMPLATE),
            ("Parameters.member.1.ParameterKey", "BucketName"),
            ("Parameters.member.1.ParameterValue", &args.bucket),
            ("Capabilities.member.1", "CAPABILITY_IAM"),
        ],
    )
    .await?;
    if !(200..300).contains(&a.status) {
        bail!("CreateStack {name}: {}", aws_error(&a));
    }
    output::status(format_args!("stack {name}: creating"));
    match settle(aws, url, name).await? {
        Some((s, body)) if s == "CREATE_COMPLETE" => {
            output::status(format_args!("stack {name}: {s}"));
            Ok((s, body))
        }
        Some((s, _)) => {
            bail!("stack {name} ended {s}; see its events in the CloudFormation console")
        }
        None => bail!("stack {name} disappeared while being created"),
    }
}

/// `(OutputKey, OutputValue)` pairs of a DescribeStacks answer.
fn outputs(xml: &str) -> Vec<(String, String)> {
    let Some(start) = xml.find("<Outputs>") else {
        return Vec::new();
    };
    let end = xml[start..]
        .find("</Outputs>")
        .map_or(xml.len(), |e| start + e);
    xml[start..end]
        .split("<member>")
        .filter_map(|m| Some((tag(m, "OutputKey")?, tag(m, "OutputValue")?)))
        .collect()
}

/// Writes the config through a 0600 temporary file renamed into place.
fn write_config(path: &Path, config: &S3Config) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp~");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut json = serde_json::to_string_pretty(config).unwrap_or_default();
    json.push('\n');
    f.write_all(json.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_outputs_parse() {
        let ini = "[default]\naws_access_key_id = A\naws_secret_access_key=B\n[profile p]\naws_access_key_id=C\naws_secret_access_key = D\naws_session_token=T\n";
        let d = profile_credentials(ini, "default").unwrap();
        assert_eq!((d.key_id.as_str(), d.secret_key.as_str()), ("A", "B"));
        let p = profile_credentials(ini, "p").unwrap();
        assert_eq!(p.token.as_deref(), Some("T"));
        assert!(profile_credentials(ini, "none").is_none());
        let xml = "<Stacks><member><StackStatus>CREATE_COMPLETE</StackStatus><Outputs><member><OutputKey>AccessKeyId</OutputKey><OutputValue>AK</OutputValue></member><member><OutputKey>SecretAccessKey</OutputKey><OutputValue>s&amp;k</OutputValue></member></Outputs></member></Stacks>";
        assert_eq!(
            outputs(xml),
            vec![
                ("AccessKeyId".into(), "AK".into()),
                ("SecretAccessKey".into(), "s&k".into())
            ]
        );
        assert!(is_failed("ROLLBACK_COMPLETE") && is_failed("CREATE_FAILED"));
        assert!(!is_failed("CREATE_COMPLETE"));
    }
}
