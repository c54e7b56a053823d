//! The store layer against a real S3-compatible server (s3s-fs on loopback,
//! SigV4 verified): sink round trips, wrong credentials, the uploader's
//! layout and slots, the spool across an outage and a restart, download.

use std::time::Duration;

use bytes::Bytes;
use store::download::{DownloadOptions, Filters, download};
use store::upload::{Outcome, Snapshot, Spool, Uploader};
use store::{Credentials, Location, Sink, SinkOptions};
use testkit::S3Server;

const HASH: &str = "0123456789abcdef0123456789abcdef";

fn options(s3: &S3Server) -> SinkOptions {
    SinkOptions {
        endpoint: Some(s3.endpoint.clone()),
        region: Some(s3.region.clone()),
        credentials: Credentials::Static {
            access_key_id: s3.access_key.clone(),
            secret_access_key: s3.secret_key.clone(),
        },
        retries: 1,
        retry_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        registry_auth_paths: vec![],
    }
}

fn sink(s3: &S3Server, prefix: &str) -> Sink {
    Sink::open(&format!("s3://{}/{prefix}", s3.bucket), &options(s3)).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn pod(n: u32) -> Location {
    Location::Pod {
        hostname: "node-1".into(),
        namespace: "shop".into(),
        pod: format!("api-{n}"),
        container: "api".into(),
        discovery_time: "20261130T120000Z".into(),
        image: "quay.io/shop/api@sha256:0a1b".into(),
        binary: "api".into(),
    }
}

fn snap(loc: Location, pid: u32, counters: &str, first: bool) -> Snapshot {
    Snapshot {
        location: loc,
        pid,
        hash: HASH.into(),
        meta: first.then(|| Bytes::from_static(b"META")),
        counters: Bytes::from(counters.to_string()),
        info: first.then(|| Bytes::from_static(b"{\"binary_name\":\"api\"}")),
        metadata: None,
    }
}

/// Every file under the bucket directory, relative, sorted.
fn files(s3: &S3Server) -> Vec<String> {
    let mut out = Vec::new();
    let root = s3.bucket_dir();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !rel.starts_with(".s3s") && !rel.contains("/.s3s") {
                    out.push(rel);
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn sink_round_trip_on_a_real_server() {
    let Some(s3) = S3Server::start() else { return };
    rt().block_on(async {
        let s = sink(&s3, "openshift-ci/coverage");
        s.put("a/b/x.bin", Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(
            s.get("a/b/x.bin").await.unwrap().unwrap(),
            Bytes::from_static(b"hello")
        );
        assert!(s.get("a/b/none").await.unwrap().is_none());
        let l = s.list("").await.unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].key, "a/b/x.bin");
        assert_eq!(l[0].size, 5);
        assert_eq!(s.list_dirs("").await.unwrap(), vec!["a".to_string()]);
        assert!(s.put("../escape", Bytes::new()).await.is_err());
    });
    // The server really stored it under the prefix.
    assert_eq!(
        std::fs::read(s3.bucket_dir().join("openshift-ci/coverage/a/b/x.bin")).unwrap(),
        b"hello"
    );
}

#[test]
fn wrong_credentials_name_bucket_and_endpoint() {
    let Some(s3) = S3Server::start() else { return };
    let mut o = options(&s3);
    o.credentials = Credentials::Static {
        access_key_id: s3.access_key.clone(),
        secret_access_key: "wrong-secret-value".into(),
    };
    let s = Sink::open(&format!("s3://{}/p", s3.bucket), &o).unwrap();
    let e = rt()
        .block_on(s.put("k", Bytes::from_static(b"x")))
        .unwrap_err();
    let msg = e.to_string();
    assert!(e.is_denied(), "{msg}");
    assert!(
        msg.contains(&s3.bucket) && msg.contains(&s3.endpoint),
        "{msg}"
    );
    assert!(!msg.contains("wrong-secret-value"), "{msg}");
}

#[test]
fn uploader_writes_the_seed_layout_with_alternating_slots() {
    let Some(s3) = S3Server::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let up = Uploader::new(
        sink(&s3, "cov"),
        Spool::open(&tmp.path().join("spool"), 1 << 20).unwrap(),
    );
    rt().block_on(async {
        for (i, c) in ["c1", "c2", "c3"].iter().enumerate() {
            let o = up.store(snap(pod(1), 7, c, i == 0)).await.unwrap();
            assert_eq!(o, Outcome::Stored { slot: [1, 2, 1][i] });
        }
        let host = Location::Host {
            hostname: "node-1".into(),
            discovery_time: "20261130T120000Z".into(),
            binary: "kubelet".into(),
        };
        up.store(snap(host, 9, "h1", true)).await.unwrap();
    });
    let d = "cov/node-1/shop/api-1/api/20261130T120000Z/quay.io_shop_api_sha256_0a1b/api";
    assert_eq!(
        files(&s3),
        vec![
            format!("cov/node-1/_host_/20261130T120000Z/kubelet/covcounters.{HASH}.9.1"),
            format!("cov/node-1/_host_/20261130T120000Z/kubelet/covmeta.{HASH}"),
            "cov/node-1/_host_/20261130T120000Z/kubelet/info.json".to_string(),
            format!("{d}/covcounters.{HASH}.7.1"),
            format!("{d}/covcounters.{HASH}.7.2"),
            format!("{d}/covmeta.{HASH}"),
            format!("{d}/info.json"),
        ]
    );
    let read = |f: String| std::fs::read_to_string(s3.bucket_dir().join(f)).unwrap();
    assert_eq!(read(format!("{d}/covcounters.{HASH}.7.1")), "c3");
    assert_eq!(read(format!("{d}/covcounters.{HASH}.7.2")), "c2");
    assert_eq!(up.stats().stored, 4);
}

#[test]
fn outage_spools_latest_and_restart_drains_without_duplicates() {
    let Some(mut s3) = S3Server::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let spool_dir = tmp.path().join("spool");
    let rt = rt();
    {
        let up = Uploader::new(sink(&s3, "cov"), Spool::open(&spool_dir, 1 << 20).unwrap());
        rt.block_on(async {
            // Process 1 stored once before the outage.
            assert!(matches!(
                up.store(snap(pod(1), 1, "p1-a", true)).await.unwrap(),
                Outcome::Stored { .. }
            ));
        });
        s3.stop();
        rt.block_on(async {
            for c in ["p1-b", "p1-c"] {
                let o = up.store(snap(pod(1), 1, c, false)).await.unwrap();
                assert!(matches!(o, Outcome::Spooled { .. }), "{o:?}");
            }
            // Process 2 first seen during the outage: its meta must survive too.
            up.store(snap(pod(2), 2, "p2-a", true)).await.unwrap();
            up.store(snap(pod(2), 2, "p2-b", false)).await.unwrap();
        });
        let st = up.stats();
        assert_eq!(st.spool_entries, 2, "{st:?}");
        assert_eq!(st.spooled, 4);
        // The agent is killed here: the uploader is dropped with a full spool.
    }
    s3.restart();
    let up = Uploader::new(sink(&s3, "cov"), Spool::open(&spool_dir, 1 << 20).unwrap());
    let n = rt.block_on(up.drain()).unwrap();
    assert_eq!(n, 2);
    assert_eq!(up.stats().spool_entries, 0);
    let all = files(&s3);
    let d1 = "cov/node-1/shop/api-1/api/20261130T120000Z/quay.io_shop_api_sha256_0a1b/api";
    let d2 = d1.replace("api-1", "api-2");
    assert_eq!(
        all,
        vec![
            format!("{d1}/covcounters.{HASH}.1.1"),
            format!("{d1}/covcounters.{HASH}.1.2"),
            format!("{d1}/covmeta.{HASH}"),
            format!("{d1}/info.json"),
            format!("{d2}/covcounters.{HASH}.2.1"),
            format!("{d2}/covmeta.{HASH}"),
            format!("{d2}/info.json"),
        ]
    );
    let read = |f: String| std::fs::read_to_string(s3.bucket_dir().join(f)).unwrap();
    // The latest snapshot of each process is stored; the earlier one of
    // process 1 is kept in the other slot.
    assert_eq!(read(format!("{d1}/covcounters.{HASH}.1.2")), "p1-c");
    assert_eq!(read(format!("{d1}/covcounters.{HASH}.1.1")), "p1-a");
    assert_eq!(read(format!("{d2}/covcounters.{HASH}.2.1")), "p2-b");
    assert_eq!(read(format!("{d2}/covmeta.{HASH}")), "META");
}

#[test]
fn spool_is_bounded_and_drops_the_oldest_process_first() {
    let Some(mut s3) = S3Server::start() else {
        return;
    };
    s3.stop();
    let tmp = tempfile::tempdir().unwrap();
    let up = Uploader::new(
        sink(&s3, "cov"),
        Spool::open(&tmp.path().join("spool"), 4000).unwrap(),
    );
    let big = "x".repeat(1000);
    rt().block_on(async {
        for i in 0..5 {
            let o = up.store(snap(pod(i), i, &big, false)).await.unwrap();
            assert!(matches!(o, Outcome::Spooled { .. }), "{o:?}");
        }
        let huge = "y".repeat(5000);
        let o = up.store(snap(pod(9), 9, &huge, false)).await.unwrap();
        assert!(matches!(o, Outcome::Dropped { .. }), "{o:?}");
    });
    let st = up.stats();
    assert!(st.spool_bytes <= 4000, "{st:?}");
    assert!(st.dropped >= 3, "{st:?}");
    assert_eq!(st.spool_entries + st.dropped, 6, "{st:?}");
    // The newest process is still there.
    s3.restart();
    rt().block_on(up.drain()).unwrap();
    assert!(
        files(&s3).iter().any(|f| f.contains("/api-4/")),
        "{:?}",
        files(&s3)
    );
    assert!(!files(&s3).iter().any(|f| f.contains("/api-0/")));
}

#[test]
fn download_builds_entries_with_metadata_and_keeps_the_newest_slot() {
    let Some(s3) = S3Server::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let coll = tmp.path().join("coll");
    let rt = rt();
    let s = sink(&s3, "cov");
    let up = Uploader::new(
        s.clone(),
        Spool::open(&tmp.path().join("spool"), 1 << 20).unwrap(),
    );
    rt.block_on(async {
        up.store(snap(pod(1), 1, "a", true)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        up.store(snap(pod(1), 1, "b", false)).await.unwrap();
        let mut with_md = snap(pod(2), 2, "c", true);
        with_md.metadata = Some(Bytes::from_static(
            br#"{"process": {"pod_uid": "u-1", "restart_count": "0"}, "pod_name": "api-2"}"#,
        ));
        up.store(with_md).await.unwrap();
        s.put("junk/key.txt", Bytes::from_static(b"?"))
            .await
            .unwrap();
    });
    let opts = DownloadOptions::default();
    let r = rt.block_on(download(&s, &coll, &opts)).unwrap();
    assert_eq!(r.entries, 2, "{r:?}");
    assert!(r.failed.is_empty(), "{r:?}");
    assert_eq!(r.superseded, 1);
    assert_eq!(r.ignored_keys, 1);
    let e1 = coll.join("coverage").join(pod(1).entry_name());
    let mut names: Vec<String> = std::fs::read_dir(&e1)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ".download.json".to_string(),
            format!("covcounters.{HASH}.1.2"),
            format!("covmeta.{HASH}"),
            "info.json".into(),
            "metadata.json".into()
        ]
    );
    assert_eq!(
        std::fs::read_to_string(e1.join(format!("covcounters.{HASH}.1.2"))).unwrap(),
        "b"
    );
    let md: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e1.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(md["namespace"], "shop");
    assert_eq!(md["pod_name"], "api-1");
    assert_eq!(md["container"]["name"], "api");
    assert_eq!(md["container"]["image"], "quay.io_shop_api_sha256_0a1b");
    assert_eq!(md["hostname"], "node-1");
    assert_eq!(md["binary_name"], "api");
    assert_eq!(md["host_process"], false);
    // Object times are kept.
    let listed = rt.block_on(s.list("")).unwrap();
    let obj = listed.iter().find(|l| l.key.ends_with(".1.2")).unwrap();
    let local = std::fs::metadata(e1.join(format!("covcounters.{HASH}.1.2")))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(local, obj.last_modified);

    // The agent's own metadata.json is kept, completed from the key.
    let e2 = coll.join("coverage").join(pod(2).entry_name());
    let md2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e2.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(md2["process"]["pod_uid"], "u-1");
    assert_eq!(md2["namespace"], "shop");

    // A second run fetches nothing; filters select.
    let r2 = rt.block_on(download(&s, &coll, &opts)).unwrap();
    assert_eq!((r2.objects, r2.entries_unchanged), (0, 2));
    let only = DownloadOptions {
        filters: Filters::new(None, None, Some("api-2")).unwrap(),
        ..DownloadOptions::default()
    };
    let r3 = rt
        .block_on(download(&s, &tmp.path().join("c2"), &only))
        .unwrap();
    assert_eq!(r3.entries, 1);
}

#[test]
fn registry_auth_entry_supplies_credentials_and_endpoint() {
    let Some(s3) = S3Server::start() else { return };
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
        || std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
    {
        eprintln!("AWS credentials in the environment take precedence: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = store::config::S3Config {
        s3_bucket: s3.bucket.clone(),
        s3_region: s3.region.clone(),
        s3_base_path: "openshift-ci/coverage/c1".into(),
        aws_access_key_id: s3.access_key.clone(),
        aws_secret_access_key: s3.secret_key.clone(),
        s3_endpoint: Some(s3.endpoint.clone()),
    };
    let pull_secret = tmp.path().join("config.json");
    let doc = serde_json::json!({"auths": {
        "quay.io": {"auth": "eDp5"},
        store::registry_auth::ENTRY: store::registry_auth::entry_value(&cfg),
    }});
    std::fs::write(&pull_secret, doc.to_string()).unwrap();
    let opts = SinkOptions {
        registry_auth_paths: vec![tmp.path().join("missing.json"), pull_secret],
        ..SinkOptions::default()
    };
    let s = Sink::open(&cfg.url(), &opts).unwrap();
    rt().block_on(s.put("x", Bytes::from_static(b"via pull secret")))
        .unwrap();
    assert_eq!(
        std::fs::read(s3.bucket_dir().join("openshift-ci/coverage/c1/x")).unwrap(),
        b"via pull secret"
    );
    assert!(!format!("{s:?}").contains(&s3.secret_key));
}
