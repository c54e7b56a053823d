//! `covfleet publish` and `covfleet history` end to end on a synthetic fleet
//! (three clusters, several runs, code that stops running partway, a rebuild
//! in the middle): the answers equal the model's, and equal what DuckDB (from
//! PyPI, not covfleet's engine) answers with the SQL of docs/history.md.

#![cfg(feature = "history")]

#[path = "../../history/tests/fleet/mod.rs"]
mod fleet;

use std::process::{Command, Output};

use fleet::{CLUSTERS, Fleet};
use serde_json::Value;

fn covfleet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_covfleet"))
        .args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = covfleet(args);
    assert!(
        out.status.success(),
        "covfleet {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Rows as comparable strings of the given fields (numbers as integers or
/// two-decimal percentages).
fn rows(v: &[Value], fields: &[&str]) -> Vec<String> {
    v.iter()
        .map(|r| {
            fields
                .iter()
                .map(|f| match &r[*f] {
                    Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap()),
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    x => x.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

const NEVER_RAN: &[&str] = &[
    "kind",
    "repository",
    "namespace",
    "owner_type",
    "owner_name",
    "binary_name",
    "module",
    "package",
    "file",
    "function",
    "stmts",
    "runs",
    "clusters",
    "first_seen",
    "last_seen",
];
const TREND: &[&str] = &[
    "namespace",
    "owner_type",
    "owner_name",
    "binary_name",
    "cluster",
    "run",
    "run_time",
    "total_stmts",
    "covered_stmts",
    "coverage_pct",
];

#[test]
fn publish_then_history_equals_the_model_and_duckdb() {
    let f = Fleet::new(4);
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tmp.path().join("dataset");
    let url = format!("file://{}", dataset.display());
    for (c, r) in f.all_runs() {
        let col = tmp.path().join(format!("c{c}r{r}"));
        f.write_collection(&col, c, r);
        let run = format!("r{r}");
        if (c + r) % 2 == 0 {
            ok(&[
                "publish",
                "--collection",
                col.to_str().unwrap(),
                "--dataset",
                &url,
                "--cluster",
                CLUSTERS[c],
                "--run",
                &run,
            ]);
            // The collection itself is left as it was (compiled elsewhere).
            assert!(!col.join("coverage.db").exists());
        } else {
            ok(&["compile", "--collection", col.to_str().unwrap(), "--quiet"]);
            let db = col.join("coverage.db");
            ok(&[
                "publish",
                "--db",
                db.to_str().unwrap(),
                "--dataset",
                &url,
                "--cluster",
                CLUSTERS[c],
                "--run",
                &run,
            ]);
        }
    }
    // Publishing one run again (JSON summary) replaces it.
    let col = tmp.path().join("c0r1");
    let p: Value = serde_json::from_str(&ok(&[
        "publish",
        "--collection",
        col.to_str().unwrap(),
        "--dataset",
        &url,
        "--cluster",
        "east",
        "--run",
        "r1",
        "--json",
    ]))
    .unwrap();
    assert_eq!(p["replaced_files"], 6, "one file per table");
    assert_eq!(p["date"], "2026-10-02");

    let all = f.all_runs();
    let nr: Value = serde_json::from_str(&ok(&[
        "history",
        "--dataset",
        &url,
        "--never-ran",
        "--json",
    ]))
    .unwrap();
    assert_eq!(nr["runs"].as_array().unwrap().len(), all.len());
    let got = nr["rows"].as_array().unwrap();
    let mut mine: Vec<fleet::Expected> = got
        .iter()
        .map(|r| fleet::Expected {
            kind: r["kind"].as_str().unwrap().into(),
            namespace: r["namespace"].as_str().unwrap().into(),
            binary: r["binary_name"].as_str().unwrap().into(),
            file: r["file"].as_str().unwrap().into(),
            function: r["function"].as_str().unwrap().into(),
            stmts: r["stmts"].as_i64().unwrap(),
            runs: r["runs"].as_i64().unwrap(),
            clusters: r["clusters"].as_i64().unwrap(),
            first_seen: r["first_seen"].as_str().unwrap().into(),
            last_seen: r["last_seen"].as_str().unwrap().into(),
        })
        .collect();
    mine.sort();
    assert_eq!(mine, f.expected_never_ran(&all));
    assert!(!mine.is_empty());

    let tr: Value =
        serde_json::from_str(&ok(&["history", "--dataset", &url, "--trend", "--json"])).unwrap();
    let trend: std::collections::BTreeMap<_, _> = tr["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                (
                    p["namespace"].as_str().unwrap().to_string(),
                    p["binary_name"].as_str().unwrap().to_string(),
                    p["cluster"].as_str().unwrap().to_string(),
                    p["run_time"].as_str().unwrap().to_string(),
                ),
                (
                    p["total_stmts"].as_i64().unwrap(),
                    p["covered_stmts"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(trend, f.expected_trend(&all));

    // The table and the HTML page.
    let table = ok(&["history", "--dataset", &url, "--never-ran"]);
    assert!(table.contains("LegacyExport"), "{table}");
    assert!(table.contains("shop/"), "{table}");
    let html = tmp.path().join("trend.html");
    ok(&[
        "history",
        "--dataset",
        &url,
        "--trend",
        "--cluster",
        "w*",
        "--html",
        html.to_str().unwrap(),
        "--quiet",
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<td>west</td>") && !page.contains("<td>east</td>"),
        "{page}"
    );
    // Written into a rendered site as history-NAME.html, the page is
    // linked from the site's index the next time it is rendered.
    let site_col = tmp.path().join("c1r0");
    ok(&[
        "render",
        "--collection",
        site_col.to_str().unwrap(),
        "--quiet",
    ]);
    let site = site_col.join("html");
    let out = covfleet(&[
        "history",
        "--dataset",
        &url,
        "--never-ran",
        "--html",
        site.join("history-never-ran.html").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`covfleet render` links it"), "{err}");
    ok(&[
        "render",
        "--collection",
        site_col.to_str().unwrap(),
        "--quiet",
    ]);
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(
        index.contains(r#"<a href="history-never-ran.html">"#),
        "the index links the history page"
    );
    let nr_page = std::fs::read_to_string(site.join("history-never-ran.html")).unwrap();
    assert!(nr_page.contains("LegacyExport"), "{nr_page}");
    // --since: only the last run day of each cluster.
    let late: Value = serde_json::from_str(&ok(&[
        "history",
        "--dataset",
        &url,
        "--trend",
        "--json",
        "--since",
        "2026-10-04",
    ]))
    .unwrap();
    assert_eq!(late["runs"].as_array().unwrap().len(), 3);

    // The SQL of docs/history.md in DuckDB gives the same answers.
    if let Some(py) = fleet::duckdb_python() {
        let d = fleet::duckdb(&py, &dataset, "never-ran");
        assert_eq!(rows(&d, NEVER_RAN), rows(got, NEVER_RAN));
        let d = fleet::duckdb(&py, &dataset, "trend");
        assert_eq!(rows(&d, TREND), rows(tr["rows"].as_array().unwrap(), TREND));
    }
}

#[test]
fn history_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", tmp.path().join("missing").display());
    let out = covfleet(&["history", "--dataset", &url, "--never-ran"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("existing directory"));
    let out = covfleet(&["history", "--dataset", "http://x", "--trend"]);
    assert_eq!(out.status.code(), Some(2));
    let out = covfleet(&[
        "history",
        "--dataset",
        "file:///tmp",
        "--trend",
        "--since",
        "soon",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = covfleet(&["history", "--dataset", "file:///tmp"]);
    assert_eq!(out.status.code(), Some(2), "a question is required");
    let out = covfleet(&[
        "publish",
        "--db",
        "/nonexistent.db",
        "--dataset",
        "file:///tmp/x",
        "--cluster",
        "a/b",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cluster"));
    // An empty dataset: no runs, a warning, no rows.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = covfleet(&[
        "history",
        "--dataset",
        &format!("file://{}", empty.display()),
        "--never-ran",
        "--json",
    ]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no published runs"));
}

/// `covfleet` hands `publish` and `history` to `covfleet-history` and links
/// none of DataFusion itself (its relocations slowed every command's
/// start-up); `covfleet-history` has it.
#[test]
fn covfleet_links_no_datafusion_and_covfleet_history_does() {
    use object::{Object, ObjectSymbol, SymbolKind};
    let engine_symbols = |path: &str| {
        let data = std::fs::read(path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let (mut all, mut engine) = (0usize, 0usize);
        for s in file.symbols() {
            all += 1;
            // Code and data (the linker keeps the names of the object
            // files it read, FILE symbols, even when it drops all they hold).
            if s.kind() != SymbolKind::File && s.name().is_ok_and(|n| n.contains("datafusion")) {
                engine += 1;
            }
        }
        assert!(
            all > 1000,
            "{path}: no symbol table to look at ({all} symbols)"
        );
        engine
    };
    assert_eq!(engine_symbols(env!("CARGO_BIN_EXE_covfleet")), 0);
    assert!(engine_symbols(env!("CARGO_BIN_EXE_covfleet-history")) > 1000);
}

/// A covfleet installed without its `covfleet-history`: `history` and
/// `publish` say which file is missing and how to get it (exit 2); the rest
/// of covfleet works.
#[test]
fn history_without_covfleet_history_names_the_missing_binary() {
    let d = tempfile::tempdir().unwrap();
    let alone = d.path().join("covfleet");
    std::fs::copy(env!("CARGO_BIN_EXE_covfleet"), &alone).unwrap();
    let dataset = format!("file://{}", d.path().display());
    for args in [
        &["history", "--dataset", &dataset, "--never-ran"][..],
        &[
            "publish",
            "--db",
            "x.db",
            "--dataset",
            &dataset,
            "--cluster",
            "c",
        ][..],
    ] {
        let out = Command::new(&alone).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let missing = d.path().join("covfleet-history");
        assert!(
            err.contains(&format!("`covfleet {}` runs in covfleet-history", args[0]))
                && err.contains(&missing.display().to_string())
                && err.contains("cargo install --path crates/covfleet"),
            "{err}"
        );
    }
    let out = Command::new(&alone).arg("--version").output().unwrap();
    assert!(out.status.success() && out.stdout.starts_with(b"covfleet "));
}
