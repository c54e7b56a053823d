//! Image source labels read from a real OCI registry (Debian's
//! `docker-registry`, the CNCF distribution server) on loopback.

mod collection_fixture;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use collection_fixture::*;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

struct Registry {
    child: Child,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(dir: &Path) -> Registry {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = dir.join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (Debian package docker-registry) must be installed: scripts/test.sh setup does it");
    let reg = Registry { child, addr };
    let start = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(&reg.addr) {
            let _ =
                s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", reg.addr).as_bytes());
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200") {
                return reg;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "registry did not start on {}",
            reg.addr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn push(image: &str, labels: serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    rt.block_on(async {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..ClientConfig::default()
        });
        let reference: Reference = image.parse().unwrap();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        client
            .push(
                &reference,
                &[ImageLayer::oci_v1(b"layer".to_vec(), None)],
                Config::oci_v1(serde_json::to_vec(&config).unwrap(), None),
                &RegistryAuth::Anonymous,
                None,
            )
            .await
            .unwrap();
    });
}

#[test]
fn image_labels_give_sources_never_fatally() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = start_registry(tmp.path());
    let app = format!("{}/team/app:v1", reg.addr);
    let missing = format!("{}/team/missing:v1", reg.addr);
    push(
        &app,
        serde_json::json!({
            "io.openshift.build.source-location": "https://github.com/team/app",
            "io.openshift.build.commit.id": "0123456789abcdef0123456789abcdef01234567",
        }),
    );
    let col = tmp.path().join("col");
    for (name, image) in [("a", &app), ("m", &missing)] {
        let mut m = Meta::pod("ns", &format!("{name}-0"), name);
        m.image = image.clone();
        entry(&col, name, &m, &[&["-n", "1"]]);
    }
    // Without --inspect-images: no lookups.
    let s = compile(&col, &[]);
    assert_eq!(s["images_inspected"], 0);
    let s = compile(&col, &["--inspect-images"]);
    assert_eq!(
        (s["images_inspected"].as_u64(), s["images_failed"].as_u64()),
        (Some(2), Some(1))
    );
    let db = db::Database::open_collection(&col).unwrap();
    let srcs = db.image_sources().unwrap();
    let a = srcs.iter().find(|s| s.image == app).unwrap();
    assert_eq!(a.source_url.as_deref(), Some("https://github.com/team/app"));
    assert_eq!(
        a.source_commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!((a.origin.as_str(), a.error.as_deref()), ("label", None));
    let m = srcs.iter().find(|s| s.image == missing).unwrap();
    assert!(m.error.is_some() && m.source_url.is_none());
    // The owner picked the source up (owners are recomputed for it).
    let o = db
        .owners()
        .unwrap()
        .into_iter()
        .find(|o| o.owner_name == "a")
        .unwrap();
    assert_eq!(o.source_url.as_deref(), Some("https://github.com/team/app"));
    drop(db);
    // Cached: with the registry gone, nothing is looked up again (the failure
    // is retried only after an hour) and the source stays.
    drop(reg);
    let s = compile(&col, &["--inspect-images", "--update", "*"]);
    assert_eq!(s["images_inspected"], 0);
    let db = db::Database::open_collection(&col).unwrap();
    let a = db
        .image_sources()
        .unwrap()
        .into_iter()
        .find(|s| s.image == app)
        .unwrap();
    assert_eq!(a.source_url.as_deref(), Some("https://github.com/team/app"));
    // clone-sources now knows the repository.
    let c = col.display().to_string();
    let (code, out, _) = covfleet(&["clone-sources", "--collection", &c, "--dry-run"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("https://github.com/team/app 0123456789abcdef"),
        "{out}"
    );
    assert!(out.contains("repos/github.com/team/app/01234567"), "{out}");
}
