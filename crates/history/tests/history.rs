//! Publish a synthetic fleet (three clusters, many runs, code that stops
//! running partway, a rebuild in the middle) and check `never_ran` and
//! `trend` against answers computed from the model; replacement, invisible
//! half-written runs, schema evolution and the layout version; S3.

mod fleet;

use std::path::Path;

use fleet::{CLUSTERS, Expected, Fleet};
use history::read::{committed_runs, load, load_blocks};
use history::schema::{Table, data_key};
use history::{RunSpec, Window, encode_run, never_ran, publish, trend};
use store::Sink;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn run_id(r: usize) -> String {
    format!("r{r:02}")
}

/// Compiles the collection of (cluster, run with the times of `time_run`)
/// and returns its encoded run.
fn encode(f: &Fleet, c: usize, r: usize, time_run: usize) -> history::RunFiles {
    let tmp = tempfile::tempdir().unwrap();
    f.write_collection(tmp.path(), c, r);
    if time_run != r {
        // Same code and counts, collected on another day.
        for e in std::fs::read_dir(tmp.path().join("coverage")).unwrap() {
            let p = e.unwrap().path().join("metadata.json");
            let s = std::fs::read_to_string(&p)
                .unwrap()
                .replace(&f.time(c, r), &f.time(c, time_run));
            std::fs::write(&p, s).unwrap();
        }
    }
    db::compile(&db::CompileOptions::new(tmp.path())).unwrap();
    let database = db::Database::open_collection(tmp.path()).unwrap();
    encode_run(
        &database,
        &RunSpec {
            cluster: CLUSTERS[c].into(),
            run: Some(run_id(r)),
        },
    )
    .unwrap()
}

fn publish_all(rt: &tokio::runtime::Runtime, f: &Fleet, sink: &Sink) {
    for (c, r) in f.all_runs() {
        let files = encode(f, c, r, r);
        let p = rt.block_on(publish(sink, &files)).unwrap();
        assert_eq!(p.replaced_files, 0);
    }
}

fn actual(rows: &[history::NeverRan]) -> Vec<Expected> {
    let mut v: Vec<Expected> = rows
        .iter()
        .map(|r| Expected {
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            binary: r.binary_name.clone(),
            file: r.file.clone(),
            function: r.function.clone(),
            stmts: r.stmts,
            runs: r.runs,
            clusters: r.clusters,
            first_seen: r.first_seen.clone(),
            last_seen: r.last_seen.clone(),
        })
        .collect();
    v.sort();
    v
}

fn trend_map(
    rows: &[history::TrendPoint],
) -> std::collections::BTreeMap<(String, String, String, String), (i64, i64)> {
    rows.iter()
        .map(|p| {
            (
                (
                    p.namespace.clone(),
                    p.binary_name.clone(),
                    p.cluster.clone(),
                    p.run_time.clone(),
                ),
                (p.total_stmts, p.covered_stmts),
            )
        })
        .collect()
}

fn dataset_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Thirty runs (ten per cluster), as the test asks.
#[test]
fn never_ran_and_trend_equal_the_model_across_clusters_runs_and_a_rebuild() {
    let rt = rt();
    let f = Fleet::new(10);
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::open_dir(tmp.path()).unwrap();
    publish_all(&rt, &f, &sink);

    let all = f.all_runs();
    let got = rt.block_on(never_ran(&sink, &Window::default())).unwrap();
    assert_eq!(got.runs.len(), all.len());
    let expected = f.expected_never_ran(&all);
    assert_eq!(actual(&got.rows), expected);
    // The model's candidates: never-run functions and the dead file; not
    // what stopped partway, changed in the rebuild, or ran in one cluster.
    let names: Vec<&str> = got.rows.iter().map(|r| r.function.as_str()).collect();
    for want in ["LegacyExport", "Debug", "DeadA", "DeadB", "Panic", "Idle"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for not in ["Migrate", "OldThing", "NewThing", "Drain", "Serve"] {
        assert!(!names.contains(&not), "{not} is no candidate: {names:?}");
    }
    assert!(
        got.rows
            .iter()
            .any(|r| r.kind == "file" && r.file.ends_with("/dead.go") && r.stmts == 7)
    );
    // Sorted by statements, largest first, then by the texts.
    assert!(got.rows.windows(2).all(|w| w[0].stmts >= w[1].stmts));
    let mut by_text = got.rows.clone();
    history::query::sort_never_ran(&mut by_text);
    assert_eq!(by_text, got.rows);
    assert_eq!(got.rows[0].function, "LegacyExport");
    assert_eq!(got.rows[0].clusters, 3);

    let t = rt.block_on(trend(&sink, &Window::default())).unwrap();
    assert_eq!(trend_map(&t.rows), f.expected_trend(&all));
    // One trend row per owner and run: api in three clusters, worker in two.
    assert_eq!(t.rows.len(), f.runs * 3 + f.runs * 2);
    // Migrate stopped: api's coverage in east drops after run `stop`.
    let east_api: Vec<f64> = t
        .rows
        .iter()
        .filter(|p| p.binary_name == "api" && p.cluster == "east")
        .map(|p| p.coverage_pct)
        .collect();
    assert_eq!(east_api.len(), f.runs);

    // A window: one cluster (Drain, which only ran in west, never ran here).
    let w = Window {
        cluster_glob: Some("e*".into()),
        since: None,
    };
    let east: Vec<(usize, usize)> = all.iter().copied().filter(|(c, _)| *c == 0).collect();
    let got = rt.block_on(never_ran(&sink, &w)).unwrap();
    assert_eq!(actual(&got.rows), f.expected_never_ran(&east));
    assert!(got.rows.iter().any(|r| r.function == "Drain"));
    // And since a date: the runs after the rebuild only (NewThing counts).
    let w = Window {
        cluster_glob: None,
        since: Some(humantime::parse_rfc3339(&f.time(0, f.rebuild)).unwrap()),
    };
    let late: Vec<(usize, usize)> = all
        .iter()
        .copied()
        .filter(|(_, r)| *r >= f.rebuild)
        .collect();
    let got = rt.block_on(never_ran(&sink, &w)).unwrap();
    assert_eq!(got.runs.len(), late.len());
    assert_eq!(actual(&got.rows), f.expected_never_ran(&late));
    assert!(got.rows.iter().any(|r| r.function == "NewThing"));
    let t = rt.block_on(trend(&sink, &w)).unwrap();
    assert_eq!(trend_map(&t.rows), f.expected_trend(&late));
}

/// More runs than one 64-run mask lane holds (the engine compares a
/// candidate's runs with its owner's lane by lane).
#[test]
fn never_ran_over_more_than_sixty_four_runs() {
    let rt = rt();
    let f = Fleet::new(23);
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::open_dir(tmp.path()).unwrap();
    publish_all(&rt, &f, &sink);
    let all = f.all_runs();
    assert_eq!(all.len(), 69);
    let got = rt.block_on(never_ran(&sink, &Window::default())).unwrap();
    assert_eq!(got.runs.len(), 69);
    assert_eq!(actual(&got.rows), f.expected_never_ran(&all));
    assert!(
        got.rows
            .iter()
            .any(|r| r.function == "LegacyExport" && r.runs == 69)
    );
}

#[test]
fn publishing_again_replaces_and_half_written_runs_stay_invisible() {
    let rt = rt();
    let f = Fleet::new(3);
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::open_dir(tmp.path()).unwrap();
    publish_all(&rt, &f, &sink);
    let before_files = dataset_files(tmp.path());
    assert_eq!(before_files.len(), 9 * Table::ALL.len());
    let before = rt.block_on(never_ran(&sink, &Window::default())).unwrap();

    // The same run again: replaced, not duplicated.
    let again = encode(&f, 1, 2, 2);
    let p = rt.block_on(publish(&sink, &again)).unwrap();
    assert_eq!(p.replaced_files, Table::ALL.len());
    let after_files = dataset_files(tmp.path());
    assert_eq!(after_files.len(), before_files.len());
    assert!(after_files.iter().any(|k| k.contains(&again.publish_id)));
    let after = rt.block_on(never_ran(&sink, &Window::default())).unwrap();
    assert_eq!(after.rows, before.rows);

    // The same run id, collected on another day: the old date's files go.
    let moved = encode(&f, 1, 2, 9);
    assert_ne!(moved.date, again.date);
    let p = rt.block_on(publish(&sink, &moved)).unwrap();
    assert_eq!(p.replaced_files, Table::ALL.len());
    let files = dataset_files(tmp.path());
    assert_eq!(files.len(), before_files.len());
    assert!(
        !files
            .iter()
            .any(|k| k.contains(&format!("date={}/run=r02", again.date))
                && k.contains("cluster=west"))
    );
    let runs = rt.block_on(committed_runs(&sink)).unwrap();
    assert_eq!(runs.len(), 9);
    assert_eq!(
        runs.iter()
            .filter(|r| r.cluster == "west" && r.run == "r02")
            .count(),
        1
    );

    // A half-written run (data files, no manifest) is invisible.
    let half = encode(&f, 2, 0, 0);
    let half = history::RunFiles {
        run: "r99".into(),
        ..half
    };
    for (t, _, b) in half.tables.iter().filter(|(t, _, _)| *t != Table::Runs) {
        let key = data_key(*t, &half.cluster, &half.date, &half.run, &half.publish_id);
        rt.block_on(sink.put(&key, b.clone())).unwrap();
    }
    let runs = rt.block_on(committed_runs(&sink)).unwrap();
    assert_eq!(runs.len(), 9);
    assert!(!runs.iter().any(|r| r.run == "r99"));
    let t = rt.block_on(trend(&sink, &Window::default())).unwrap();
    assert!(!t.rows.iter().any(|p| p.run == "r99"));
}

#[test]
fn an_older_file_without_a_later_column_is_read_and_a_newer_layout_refused() {
    let rt = rt();
    let f = Fleet::new(2);
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::open_dir(tmp.path()).unwrap();
    publish_all(&rt, &f, &sink);
    let before = rt.block_on(never_ran(&sink, &Window::default())).unwrap();
    let runs = rt.block_on(committed_runs(&sink)).unwrap();

    // Rewrite one run's functions file as an older writer would have: the
    // last column (`max_count`) missing.
    let old = &runs[0];
    let key = data_key(
        Table::Functions,
        &old.cluster,
        &old.date,
        &old.run,
        &old.publish_id,
    );
    let batches = load(&sink, std::slice::from_ref(old), Table::Functions, None);
    let batches = rt.block_on(batches).unwrap();
    assert!(
        batches
            .iter()
            .all(|b| b.column_by_name("max_count").unwrap().null_count() == 0)
    );
    let data = rt.block_on(sink.get(&key)).unwrap().unwrap();
    let full = history::read::decode(&key, data, &Table::Functions.schema(), None).unwrap();
    let fields: Vec<_> = Table::Functions
        .schema()
        .fields()
        .iter()
        .filter(|f| f.name() != "max_count")
        .cloned()
        .collect();
    let older = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
    let mut cols = full[0].columns().to_vec();
    cols.pop();
    let b = arrow::array::RecordBatch::try_new(older, cols).unwrap();
    let bytes = history::publish::encode(Table::Functions, &b).unwrap();
    rt.block_on(sink.put(&key, bytes)).unwrap();

    let batches = rt
        .block_on(load(&sink, &runs, Table::Functions, None))
        .unwrap();
    let nulls: usize = batches
        .iter()
        .map(|b| b.column_by_name("max_count").unwrap().null_count())
        .sum();
    assert_eq!(nulls, full[0].num_rows());
    let after = rt.block_on(never_ran(&sink, &Window::default())).unwrap();
    assert_eq!(after.rows, before.rows);

    // A manifest of a newer layout: refused, naming it.
    let newer = encode(&f, 0, 1, 1);
    let (_, _, manifest) = newer
        .tables
        .iter()
        .find(|(t, _, _)| *t == Table::Runs)
        .unwrap();
    let m = history::read::decode("m", manifest.clone(), &Table::Runs.schema(), None).unwrap();
    let mut cols = m[0].columns().to_vec();
    cols[1] = std::sync::Arc::new(arrow::array::Int32Array::from(vec![
        history::LAYOUT_VERSION + 1,
    ]));
    let b = arrow::array::RecordBatch::try_new(Table::Runs.schema(), cols).unwrap();
    let key = data_key(Table::Runs, "east", &newer.date, "r77", &newer.publish_id);
    rt.block_on(sink.put(&key, history::publish::encode(Table::Runs, &b).unwrap()))
        .unwrap();
    let err = rt
        .block_on(never_ran(&sink, &Window::default()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            history::Error::LayoutTooNew {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("run=r77"), "{err}");
}

#[test]
fn bad_names_are_refused() {
    let f = Fleet::new(1);
    let tmp = tempfile::tempdir().unwrap();
    f.write_collection(tmp.path(), 0, 0);
    db::compile(&db::CompileOptions::new(tmp.path())).unwrap();
    let database = db::Database::open_collection(tmp.path()).unwrap();
    for (cluster, run) in [("a/b", None), ("ok", Some("../x")), ("", None)] {
        let e = encode_run(
            &database,
            &RunSpec {
                cluster: cluster.into(),
                run: run.map(Into::into),
            },
        )
        .unwrap_err();
        assert!(matches!(e, history::Error::BadName { .. }), "{e}");
    }
    // The default run id is the run time.
    let files = encode_run(
        &database,
        &RunSpec {
            cluster: "east".into(),
            run: None,
        },
    )
    .unwrap();
    assert_eq!(files.run, "20261001T060000Z");
    assert_eq!(files.date, "2026-10-01");
}

#[test]
fn an_s3_dataset_answers_like_a_local_one() {
    let Some(s3) = testkit::S3Server::start() else {
        return;
    };
    let rt = rt();
    let f = Fleet::new(2);
    let opts = store::SinkOptions {
        endpoint: Some(s3.endpoint.clone()),
        region: Some(s3.region.clone()),
        credentials: store::Credentials::Static {
            access_key_id: s3.access_key.clone(),
            secret_access_key: s3.secret_key.clone(),
        },
        ..store::SinkOptions::default()
    };
    let sink = Sink::open(&format!("s3://{}/history/v1", s3.bucket), &opts).unwrap();
    publish_all(&rt, &f, &sink);
    // Republish one run over S3: still one.
    let p = rt.block_on(publish(&sink, &encode(&f, 2, 1, 1))).unwrap();
    assert_eq!(p.replaced_files, Table::ALL.len());
    let got = rt.block_on(never_ran(&sink, &Window::default())).unwrap();
    assert_eq!(actual(&got.rows), f.expected_never_ran(&f.all_runs()));
    let t = rt.block_on(trend(&sink, &Window::default())).unwrap();
    assert_eq!(trend_map(&t.rows), f.expected_trend(&f.all_runs()));
    // The objects are where the layout says.
    assert!(
        s3.bucket_dir()
            .join("history/v1/functions/cluster=north/date=2026-10-02/run=r01")
            .is_dir()
    );
}

/// Every row of `batches` as one string (columns `|`-separated, nulls `∅`),
/// leaving out the columns named in `skip`; sorted.
fn row_strings(batches: &[arrow::array::RecordBatch], skip: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<arrow::array::ArrayRef> = b
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !skip.contains(&f.name().as_str()))
            .map(|(i, _)| {
                arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8).unwrap()
            })
            .collect();
        for i in 0..b.num_rows() {
            let row: Vec<String> = cols
                .iter()
                .map(|c| {
                    use arrow::array::{Array, AsArray};
                    let s = c.as_string::<i32>();
                    if s.is_null(i) {
                        "∅".to_string()
                    } else {
                        s.value(i).to_string()
                    }
                })
                .collect();
            out.push(row.join("|"));
        }
    }
    out.sort();
    out
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A run written by layout version 1 (covfleet at commit c91c2ed, positions
/// inside `blocks`, no `block_positions`): `Fleet::new(3)`, east, r00.
fn layout1_run() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/layout1")
}

#[test]
fn a_layout_1_run_and_layout_2_runs_are_read_together() {
    let rt = rt();
    let f = Fleet::new(3);
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&layout1_run(), tmp.path());
    let sink = Sink::open_dir(tmp.path()).unwrap();
    let all = f.all_runs();
    for &(c, r) in &all {
        if (c, r) != (0, 0) {
            rt.block_on(publish(&sink, &encode(&f, c, r, r))).unwrap();
        }
    }
    let runs = rt.block_on(committed_runs(&sink)).unwrap();
    assert_eq!(runs.len(), all.len());
    let (v1, v2): (Vec<_>, Vec<_>) = runs.iter().cloned().partition(|r| r.layout_version == 1);
    assert_eq!(v1.len(), 1, "{runs:?}");
    assert_eq!(
        (v1[0].cluster.as_str(), v1[0].run.as_str()),
        ("east", "r00")
    );
    assert!(
        v2.iter()
            .all(|r| r.layout_version == history::LAYOUT_VERSION)
    );
    assert!(
        !dataset_files(tmp.path())
            .iter()
            .any(|k| k.starts_with("block_positions/cluster=east/date=2026-10-01/"))
    );

    // The questions over both layouts equal the model.
    let got = rt.block_on(never_ran(&sink, &Window::default())).unwrap();
    assert_eq!(got.runs.len(), all.len());
    assert_eq!(actual(&got.rows), f.expected_never_ran(&all));
    let t = rt.block_on(trend(&sink, &Window::default())).unwrap();
    assert_eq!(trend_map(&t.rows), f.expected_trend(&all));

    // Blocks with positions: the layout 1 run's, as written, equal those of
    // the same collection published with layout 2 (blocks joined with
    // block_positions).
    let other = tempfile::tempdir().unwrap();
    let other_sink = Sink::open_dir(other.path()).unwrap();
    rt.block_on(publish(&other_sink, &encode(&f, 0, 0, 0)))
        .unwrap();
    let other_runs = rt.block_on(committed_runs(&other_sink)).unwrap();
    let from_v1 = rt.block_on(load_blocks(&sink, &v1)).unwrap();
    let from_v2 = rt.block_on(load_blocks(&other_sink, &other_runs)).unwrap();
    let a = row_strings(&from_v1, &["publish_id"]);
    assert!(!a.is_empty());
    assert!(a.iter().all(|r| !r.contains('∅')), "{a:?}");
    assert_eq!(a, row_strings(&from_v2, &["publish_id"]));
    // All runs at once, and `blocks` as the current schema (the layout 1
    // file without its positions) alike.
    let every = rt.block_on(load_blocks(&sink, &runs)).unwrap();
    let n: usize = every.iter().map(|b| b.num_rows()).sum();
    let plain = rt
        .block_on(load(&sink, &runs, Table::Blocks, None))
        .unwrap();
    assert_eq!(plain.iter().map(|b| b.num_rows()).sum::<usize>(), n);
    assert!(row_strings(&every, &[]).iter().all(|r| !r.contains('∅')));
    let positions = rt
        .block_on(load(&sink, &runs, Table::BlockPositions, None))
        .unwrap();
    let keys = row_strings(&positions, &[]);
    assert!(!keys.is_empty());
    assert!(!keys.iter().any(|k| k.starts_with("east|2026-10-01|r00|")));

    // DuckDB, with the SQL of docs/history.md, reads both layouts alike.
    if let Some(py) = fleet::duckdb_python() {
        let d = fleet::duckdb(&py, tmp.path(), "blocks");
        let mut d: Vec<String> = d
            .iter()
            .map(|r| {
                BLOCK_COLUMNS
                    .iter()
                    .map(|c| match &r[*c] {
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        d.sort();
        let mine = row_strings(&every, &["date", "run_key", "publish_id"]);
        assert_eq!(d, mine);
    }
}

/// The columns of the docs' DuckDB `blocks` query, in `load_blocks` order
/// (without `date`, `run_key` and `publish_id`).
const BLOCK_COLUMNS: &[&str] = &[
    "cluster",
    "run",
    "namespace",
    "owner_type",
    "owner_name",
    "binary_name",
    "meta_hash",
    "module",
    "package",
    "file",
    "function",
    "block",
    "start_line",
    "start_col",
    "end_line",
    "end_col",
    "stmts",
    "count",
];

#[test]
fn block_positions_hold_each_builds_positions_once() {
    let rt = rt();
    let f = Fleet::new(4);
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::open_dir(tmp.path()).unwrap();
    for (c, r) in f.all_runs() {
        // The fleet, and a second owner of api's build: a canary namespace.
        let col = tempfile::tempdir().unwrap();
        f.write_collection(col.path(), c, r);
        let cov = col.path().join("coverage");
        let api: Vec<_> = std::fs::read_dir(&cov)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("shop-")
            })
            .collect();
        for p in api {
            let name = p
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .replacen("shop-", "canary-", 1);
            let dst = cov.join(name);
            std::fs::create_dir(&dst).unwrap();
            copy_tree(&p, &dst);
            let md = dst.join("metadata.json");
            let s = std::fs::read_to_string(&md)
                .unwrap()
                .replace("\"namespace\":\"shop\"", "\"namespace\":\"canary\"");
            assert!(s.contains("canary"), "{s}");
            std::fs::write(&md, s).unwrap();
        }
        db::compile(&db::CompileOptions::new(col.path())).unwrap();
        let database = db::Database::open_collection(col.path()).unwrap();
        let spec = RunSpec {
            cluster: CLUSTERS[c].into(),
            run: Some(run_id(r)),
        };
        let files = encode_run(&database, &spec).unwrap();
        rt.block_on(publish(&sink, &files)).unwrap();
    }
    let runs = rt.block_on(committed_runs(&sink)).unwrap();
    let mut shared_builds = 0;
    for run in &runs {
        let one = std::slice::from_ref(run);
        let owners = rt
            .block_on(load(
                &sink,
                one,
                Table::Owners,
                Some(&["namespace", "meta_hash"]),
            ))
            .unwrap();
        let owners = row_strings(&owners, &["cluster", "date", "run", "run_key"]);
        let positions = rt
            .block_on(load(&sink, one, Table::BlockPositions, None))
            .unwrap();
        let positions = row_strings(
            &positions,
            &["cluster", "date", "run", "run_key", "publish_id"],
        );
        // One row per block of each build: no (meta hash, block key) twice.
        let keys: std::collections::BTreeSet<String> = positions
            .iter()
            .map(|p| p.split('|').take(6).collect::<Vec<_>>().join("|"))
            .collect();
        assert_eq!(keys.len(), positions.len(), "{positions:#?}");
        // Every owner's build is there, and nothing else.
        let builds: std::collections::BTreeSet<&str> = owners
            .iter()
            .map(|o| o.split('|').nth(1).unwrap())
            .collect();
        let with_positions: std::collections::BTreeSet<&str> = positions
            .iter()
            .map(|p| p.split('|').next().unwrap())
            .collect();
        assert_eq!(builds, with_positions);
        shared_builds += owners.len() - builds.len();
        // The positions are the build's meta-data, once.
        let (c, r) = (
            CLUSTERS.iter().position(|c| *c == run.cluster).unwrap(),
            run.run[1..].parse::<usize>().unwrap(),
        );
        let mut want = Vec::new();
        for app in [fleet::API, fleet::WORKER] {
            if !app.clusters.contains(&c) {
                continue;
            }
            let meta = f.meta(&app, r);
            let hex = covdata::hex(&meta.hash);
            for p in &meta.packages {
                for func in &p.funcs {
                    for (i, u) in func.units.iter().enumerate() {
                        want.push(format!(
                            "{hex}|{}|{}|{}|{}|{i}|{}|{}|{}|{}|{}",
                            p.module_path,
                            p.path,
                            func.file,
                            func.name,
                            u.st_line,
                            u.st_col,
                            u.en_line,
                            u.en_col,
                            u.stmts
                        ));
                    }
                }
            }
        }
        want.sort();
        assert_eq!(positions, want);
        // Each owner's blocks carry a count, and join to their positions.
        let blocks = rt.block_on(load_blocks(&sink, one)).unwrap();
        let blocks = row_strings(&blocks, &[]);
        assert_eq!(blocks.len(), want.len() + extra_api_blocks(&want, &owners));
        assert!(blocks.iter().all(|b| !b.contains('∅')), "{blocks:#?}");
    }
    assert_eq!(
        shared_builds,
        runs.len(),
        "one shared build (api, twice) per run"
    );
}

/// Blocks of the second owner of a build: the api build's blocks again.
fn extra_api_blocks(positions: &[String], owners: &[String]) -> usize {
    let api_hash = owners
        .iter()
        .find(|o| o.starts_with("canary|"))
        .map(|o| o.split('|').nth(1).unwrap().to_string())
        .unwrap();
    positions
        .iter()
        .filter(|p| p.starts_with(&format!("{api_hash}|")))
        .count()
}

/// Writes the collection of `tests/data/layout1` (`Fleet::new(3)`, east,
/// r00) into `$FLEET_COLLECTION`; the fixture is that collection published
/// by covfleet at commit c91c2ed (layout 1): `covfleet publish --collection
/// $FLEET_COLLECTION --dataset file://…/tests/data/layout1 --cluster east
/// --run r00`.
#[test]
#[ignore = "writes the collection the layout 1 fixture was published from"]
fn write_the_layout_1_fixtures_collection() {
    let dir = std::env::var("FLEET_COLLECTION").expect("FLEET_COLLECTION");
    Fleet::new(3).write_collection(Path::new(&dir), 0, 0);
}
