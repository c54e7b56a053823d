//! Test collections: real coverage of go/demo (from `go test -coverprofile`)
//! arranged into rows whose sources are found by each lookup strategy, plus
//! hostile names and a 100,000-line file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use report::{Block, FileCoverage, MemorySource, OwnerRow};

pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../go/demo")
        .canonicalize()
        .unwrap()
}

pub const DEMO_MODULE: &str = "example.com/covfleet/demo";

/// Real coverage of the demo service, and Go's own total percentage for it.
pub struct DemoCoverage {
    pub files: Vec<FileCoverage>,
    pub go_total_pct: f64,
}

pub fn demo_coverage() -> &'static DemoCoverage {
    static CELL: OnceLock<DemoCoverage> = OnceLock::new();
    CELL.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let profile = tmp.path().join("c.out");
        let st = Command::new("go")
            .args(["test", "-count=1", "-covermode=count", "-coverpkg=./..."])
            .arg(format!("-coverprofile={}", profile.display()))
            .arg("./...")
            .current_dir(demo_dir())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("running go test (is Go installed?)");
        assert!(st.success(), "go test -coverprofile failed");
        let text = std::fs::read_to_string(&profile).unwrap();
        let files = parse_profile(&text);
        let out = Command::new("go")
            .args(["tool", "cover"])
            .arg(format!("-func={}", profile.display()))
            .current_dir(demo_dir())
            .output()
            .unwrap();
        assert!(out.status.success());
        let func = String::from_utf8(out.stdout).unwrap();
        let total = func
            .lines()
            .find(|l| l.starts_with("total:"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|p| p.trim_end_matches('%').parse().ok())
            .expect("total line of go tool cover -func");
        DemoCoverage {
            files,
            go_total_pct: total,
        }
    })
}

/// A text profile into files, duplicate blocks summed (as `go tool cover` does).
pub fn parse_profile(text: &str) -> Vec<FileCoverage> {
    report::model::files_from_profile(text).expect("go test's profile parses")
}

fn totals(files: &[FileCoverage]) -> (u64, u64) {
    (
        files.iter().map(|f| f.total_stmts).sum(),
        files.iter().map(|f| f.covered_stmts).sum(),
    )
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

pub const HOSTILE_NS: &str = "evil\"><script>window.__pwned=1</script>";
pub const HOSTILE_OWNER: &str = "<img src=x onerror=\"window.__pwned=2\">";
pub const HOSTILE_FILE: &str = "example.com/x/<b onmouseover=alert(1)>bold</b>.go";
pub const BIG_LINES: u32 = 100_000;

/// A collection dir (only `repos/` is used) plus the rows of the site.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub source: MemorySource,
}

impl Fixture {
    pub fn repos(&self) -> PathBuf {
        self.dir.path().join("repos")
    }
    pub fn options(&self, out: &Path) -> report::Options {
        report::Options {
            out_dir: out.to_path_buf(),
            repos_dir: self.repos(),
            extra_source_roots: vec![self.dir.path().join("local/demo")],
            title: "covfleet test".into(),
        }
    }
}

pub fn fixture() -> Fixture {
    let demo = demo_coverage();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The demo module as an extra root (module path lookup), and as a
    // labelled checkout built under /workspace (image labels lookup).
    copy_tree(&demo_dir(), &root.join("local/demo"));
    copy_tree(
        &demo_dir(),
        &root.join("repos/github.com/acme/demo/01234567"),
    );
    // A module renamed from oldorg to neworg.
    let widget = root.join("repos/github.com/neworg/widget/bbbbbbbb");
    std::fs::create_dir_all(&widget).unwrap();
    std::fs::write(
        widget.join("go.mod"),
        "module github.com/neworg/widget\n\ngo 1.22\n",
    )
    .unwrap();
    std::fs::write(
        widget.join("widget.go"),
        "package widget\n\nfunc A(x int) int {\n\tif x > 0 {\n\t\treturn 1\n\t}\n\treturn 0\n}\n",
    )
    .unwrap();
    // A 100,000-line file, found by owner name.
    let big = root.join("repos/github.com/acme/bigdb/aaaaaaaa/pkg");
    std::fs::create_dir_all(&big).unwrap();
    let mut text = String::from("package pkg\n");
    for i in 2..=BIG_LINES {
        text.push_str(&format!("\tx{i} := compute({i}) // line {i}\n"));
    }
    std::fs::write(big.join("huge.go"), &text).unwrap();
    let big_blocks: Vec<Block> = (0..BIG_LINES / 10)
        .map(|k| Block {
            st_line: k * 10 + 2,
            st_col: 2,
            en_line: k * 10 + 6,
            en_col: 20,
            stmts: 5,
            count: if k % 3 == 0 { 0 } else { u64::from(k) },
        })
        .collect();

    // The demo binary runs under two owners; each ran a part of what the
    // tests ran (one never priced, the other never stored), so together
    // they ran more than either.
    let without = |files: &[FileCoverage], pkg: &str| -> Vec<FileCoverage> {
        files
            .iter()
            .map(|f| {
                let mut blocks = f.blocks.clone();
                if f.path.contains(pkg) {
                    blocks.iter_mut().for_each(|b| b.count = 0);
                }
                FileCoverage::from_blocks(f.path.clone(), blocks)
            })
            .collect()
    };
    let api_files = without(&demo.files, "/internal/pricing/");
    let workspace_files: Vec<FileCoverage> = without(&demo.files, "/internal/inventory/")
        .into_iter()
        .map(|f| FileCoverage {
            path: f.path.replacen(DEMO_MODULE, "/workspace", 1),
            ..f
        })
        .collect();
    let (t, _) = totals(&demo.files);
    let base = OwnerRow {
        total_stmts: t,
        binary_key: "demo@1111".into(),
        ..OwnerRow::default()
    };
    let (_, api_c) = totals(&api_files);
    let (_, agent_c) = totals(&workspace_files);
    let widget_file = FileCoverage::from_blocks(
        "github.com/oldorg/widget/widget.go",
        vec![
            Block {
                st_line: 3,
                st_col: 20,
                en_line: 4,
                en_col: 11,
                stmts: 1,
                count: 4,
            },
            Block {
                st_line: 4,
                st_col: 11,
                en_line: 6,
                en_col: 3,
                stmts: 1,
                count: 0,
            },
            Block {
                st_line: 7,
                st_col: 2,
                en_line: 7,
                en_col: 10,
                stmts: 1,
                count: 4,
            },
        ],
    );
    let hostile_file = FileCoverage::from_blocks(
        HOSTILE_FILE,
        vec![Block {
            st_line: 1,
            st_col: 1,
            en_line: 2,
            en_col: 2,
            stmts: 3,
            count: 0,
        }],
    );
    let big_file = FileCoverage::from_blocks("/home/ci/bigdb/pkg/huge.go", big_blocks);

    let rows = vec![
        (
            OwnerRow {
                id: "1".into(),
                namespace: "shop".into(),
                owner_type: "Deployment".into(),
                owner: "demo-api".into(),
                binary: "demo".into(),
                pods: vec![
                    "demo-api-7d9f8b6c5-x2x9q".into(),
                    "demo-api-7d9f8b6c5-k8p2m".into(),
                ],
                hosts: vec!["node-a".into(), "node-b".into()],
                images: vec!["quay.io/acme/demo@sha256:0000".into()],
                containers: vec!["api".into()],
                covered_stmts: api_c,
                ..base.clone()
            },
            api_files,
        ),
        (
            OwnerRow {
                id: "2".into(),
                namespace: "shop-labels".into(),
                owner_type: "DaemonSet".into(),
                owner: "demo-agent".into(),
                binary: "demo".into(),
                pods: vec!["demo-agent-q7x2k".into()],
                hosts: vec!["node-c".into()],
                images: vec!["quay.io/acme/demo:v1".into()],
                source_url: Some("https://github.com/acme/demo.git".into()),
                source_commit: Some("0123456789abcdef0123".into()),
                covered_stmts: agent_c,
                ..base.clone()
            },
            workspace_files,
        ),
        (
            OwnerRow {
                id: "3".into(),
                namespace: "tools".into(),
                owner_type: "Job".into(),
                owner: "widget-job".into(),
                binary: "widget".into(),
                pods: vec!["widget-job-abcde".into()],
                total_stmts: widget_file.total_stmts,
                covered_stmts: widget_file.covered_stmts,
                binary_key: "widget@2222".into(),
                ..OwnerRow::default()
            },
            vec![widget_file],
        ),
        (
            OwnerRow {
                id: "4".into(),
                namespace: HOSTILE_NS.into(),
                owner_type: "Deployment".into(),
                owner: HOSTILE_OWNER.into(),
                binary: "../../etc/passwd".into(),
                pods: vec!["<svg onload=\"window.__pwned=3\">".into()],
                hosts: vec!["</td></tr><tr><td>".into()],
                total_stmts: 3,
                covered_stmts: 0,
                binary_key: "evil".into(),
                ..OwnerRow::default()
            },
            vec![hostile_file],
        ),
        (
            OwnerRow {
                id: "5".into(),
                namespace: "perf".into(),
                owner_type: "StatefulSet".into(),
                owner: "bigdb".into(),
                binary: "bigdb".into(),
                // A host process (collected with --url/--local): hosts, no pods.
                hosts: vec!["db-host".into()],
                total_stmts: big_file.total_stmts,
                covered_stmts: big_file.covered_stmts,
                binary_key: "bigdb@3333".into(),
                ..OwnerRow::default()
            },
            vec![big_file],
        ),
    ];
    Fixture {
        dir,
        source: MemorySource { rows },
    }
}

/// The JSON data embedded in a rendered page.
pub fn page_data(html: &str) -> serde_json::Value {
    let start = html.find("id=\"covfleet-data\">").expect("data element") + 19;
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).expect("page json")
}
