//! Issue 13 #13 and #19: hostile or unusual collections built by the tests
//! themselves (real Go programs, real FIFOs), bounded in time.

mod collection_fixture;

use std::path::{Path, PathBuf};
use std::process::Command;

use collection_fixture::*;
use db::Database;

/// Builds three small, different Go programs (`op`, `op.test`, `helper`)
/// with `-cover` into `out`.
fn three_programs(out: &Path) -> Vec<PathBuf> {
    let src = out.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("go.mod"), "module example.com/three\n\ngo 1.22\n").unwrap();
    let bodies = [
        (
            "op",
            "if len(os.Args) > 5 {\n\t\tfmt.Println(\"many\")\n\t}\n\tfmt.Println(\"op\")",
        ),
        (
            "optest",
            "for i := 0; i < 3; i++ {\n\t\tif i == 7 {\n\t\t\tfmt.Println(\"never\")\n\t\t}\n\t}\n\tfmt.Println(\"tests\", len(os.Args))",
        ),
        ("helper", "fmt.Println(\"helper\", len(os.Args))"),
    ];
    let mut bins = Vec::new();
    for (name, body) in bodies {
        let d = src.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("main.go"),
            format!(
                "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {{\n\t{body}\n}}\n"
            ),
        )
        .unwrap();
        let bin = out.join(if name == "optest" { "op.test" } else { name });
        let st = Command::new("go")
            .args(["build", "-cover", "-covermode=atomic", "-o"])
            .arg(&bin)
            .arg(format!("./{name}"))
            .current_dir(&src)
            .status()
            .expect("go must be installed");
        assert!(st.success(), "go build {name}");
        bins.push(bin);
    }
    bins
}

fn run_into(bin: &Path, dir: &Path) {
    let out = Command::new(bin).env("GOCOVERDIR", dir).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn issue13_19_several_programs_in_one_gocoverdir_are_named_per_meta_and_counted_once() {
    let tmp = tempfile::tempdir().unwrap();
    let bins = three_programs(&tmp.path().join("build"));
    let col = tmp.path().join("col");
    // One host entry holding the exit data of all three programs; its
    // metadata names only one of them (as a GOCOVERDIR upload would).
    let mut m = Meta::host("node-a");
    m.binary = "helper".into();
    let multi = col.join("coverage").join("multi");
    write_meta(&multi, &m, None);
    for b in &bins {
        run_into(b, &multi);
    }
    // The operator is also collected on its own on the same host.
    let mut m = Meta::host("node-a");
    m.binary = "op".into();
    let single = col.join("coverage").join("single");
    write_meta(&single, &m, None);
    run_into(&bins[0], &single);

    compile(&col, &[]);
    let db = Database::open_collection(&col).unwrap();
    let owners = db.owners().unwrap();
    let mut by_name: Vec<(String, String, String)> = owners
        .iter()
        .map(|o| {
            (
                o.owner_name.clone(),
                o.binary_name.clone(),
                o.meta_hash.clone(),
            )
        })
        .collect();
    by_name.sort();
    let names: Vec<&str> = by_name.iter().map(|(_, b, _)| b.as_str()).collect();
    assert_eq!(names, ["helper", "op", "op.test"], "{by_name:?}");
    for (owner, bin, _) in &by_name {
        assert_eq!(owner, bin, "a host owner is named after its program");
    }
    // Each meta hash appears once: the operator's two entries merge.
    let mut hashes: Vec<&str> = by_name.iter().map(|(_, _, h)| h.as_str()).collect();
    hashes.dedup();
    assert_eq!(hashes.len(), 3);
    let op = owners.iter().find(|o| o.binary_name == "op").unwrap();
    assert_eq!(op.report_count, 2);
    for o in &owners {
        assert!(o.covered_stmts > 0, "{} at 0%", o.binary_name);
    }

    // The operator never exits normally in the shared directory: its meta is
    // there, its counters are not. It must not reappear at 0% under
    // another program's name.
    for e in std::fs::read_dir(&multi).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("covcounters.{}.", op.meta_hash)) {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let s = compile(&col, &[]);
    // Only the two programs with counters are reported from that entry.
    assert_eq!(s["reports_written"], 2, "{s}");
    let db = Database::open_collection(&col).unwrap();
    let owners = db.owners().unwrap();
    let op_rows: Vec<_> = owners
        .iter()
        .filter(|o| o.meta_hash == op.meta_hash)
        .collect();
    assert_eq!(op_rows.len(), 1, "{owners:?}");
    assert_eq!(op_rows[0].binary_name, "op");
    assert_eq!(op_rows[0].report_count, 1);
    let total: i64 = owners.iter().map(|o| o.total_stmts).sum();
    let want: i64 = ["helper", "op", "op.test"]
        .iter()
        .map(|n| {
            owners
                .iter()
                .find(|o| &o.binary_name == n)
                .unwrap()
                .total_stmts
        })
        .sum();
    assert_eq!(owners.len(), 3);
    assert_eq!(total, want);
}
