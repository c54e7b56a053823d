//! The mirror behind `collect -o s3://…`, into a `file://` sink (the same
//! code path as S3 below the object_store layer).

use store::Sink;
use store::mirror::Mirror;
use store::upload::{Spool, Uploader};

const HASH: &str = "00112233445566778899aabbccddeeff";

fn write_entry(root: &std::path::Path, name: &str, md: serde_json::Value, counters: &str) {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let latest = md["latest_counters"].as_str().unwrap().to_string();
    std::fs::write(d.join(format!("covmeta.{HASH}")), b"META").unwrap();
    std::fs::write(d.join(latest), counters).unwrap();
    std::fs::write(d.join("info.json"), b"{}").unwrap();
    std::fs::write(d.join("metadata.json"), md.to_string()).unwrap();
}

fn md(source: &str, snapshots: u64, slot: u32) -> serde_json::Value {
    serde_json::json!({
        "pod_name": if source == "kube" { "api-0" } else { "" },
        "namespace": if source == "kube" { "shop" } else { "" },
        "container": {"name": "api", "image": "quay.io/shop/api:v1"},
        "binary_name": "api", "hostname": "node-1", "source": source,
        "pid": 42, "meta_hash": HASH, "latest_counters": format!("covcounters.{HASH}.42.{slot}"),
        "snapshots": snapshots,
    })
}

#[test]
fn mirror_uploads_new_snapshots_in_the_seed_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("coverage");
    let out = tmp.path().join("bucket");
    write_entry(&root, "k", md("kube", 1, 1), "k1");
    write_entry(&root, "h", md("local", 1, 1), "h1");
    let sink = Sink::open(&format!("file://{}", out.display()), &Default::default()).unwrap();
    let mut m = Mirror::new(Uploader::new(
        sink,
        Spool::open(&tmp.path().join("spool"), 1 << 20).unwrap(),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(m.sync(&root)).unwrap();
    assert_eq!(r.stored, 2, "{r:?}");
    assert_eq!(rt.block_on(m.sync(&root)).unwrap().stored, 0);
    write_entry(&root, "k", md("kube", 2, 2), "k2");
    assert_eq!(rt.block_on(m.sync(&root)).unwrap().stored, 1);

    let mut keys: Vec<String> = rt
        .block_on(m.uploader().sink().list(""))
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    keys.sort();
    let time = keys[0].split('/').nth(2).unwrap().to_string();
    let pod = format!(
        "node-1/shop/api-0/api/{}/quay.io_shop_api_v1/api",
        keys[5].split('/').nth(4).unwrap()
    );
    assert_eq!(
        keys,
        vec![
            format!("node-1/_host_/{time}/api/covcounters.{HASH}.42.1"),
            format!("node-1/_host_/{time}/api/covmeta.{HASH}"),
            format!("node-1/_host_/{time}/api/info.json"),
            format!("node-1/_host_/{time}/api/metadata.json"),
            format!("{pod}/covcounters.{HASH}.42.1"),
            format!("{pod}/covcounters.{HASH}.42.2"),
            format!("{pod}/covmeta.{HASH}"),
            format!("{pod}/info.json"),
            format!("{pod}/metadata.json"),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(out.join(format!("{pod}/covcounters.{HASH}.42.2"))).unwrap(),
        "k2"
    );
}
