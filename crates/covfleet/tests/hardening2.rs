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

/// Runs covfleet with a time limit (60 s) and an address-space limit (4 GiB)
/// so that a regression hangs or eats memory only that much.
fn covfleet_bounded(args: &[&str]) -> (i32, String, String) {
    covfleet_bounded_in(Path::new("."), args)
}

fn covfleet_bounded_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("timeout")
        .current_dir(cwd)
        .args([
            "-s",
            "KILL",
            "60",
            "sh",
            "-c",
            "ulimit -v 4194304; exec \"$0\" \"$@\"",
        ])
        .arg(env!("CARGO_BIN_EXE_covfleet"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success(), "mkfifo {}", path.display());
}

#[test]
fn issue13_13_fifos_and_devices_in_a_collection_neither_hang_nor_exhaust_compile() {
    let tmp = tempfile::tempdir().unwrap();
    let col = tmp.path().join("col");
    // A good entry whose metadata.json is a FIFO and which has a FIFO among
    // its counter files: the rest of its data still compiles.
    let fifo = entry(
        &col,
        "fifo",
        &Meta::host("node-a"),
        &[&["-mode", "calc", "-n", "2"]],
    );
    std::fs::remove_file(fifo.join("metadata.json")).unwrap();
    mkfifo(&fifo.join("metadata.json"));
    mkfifo(&fifo.join("info.json"));
    let meta = std::fs::read_dir(&fifo)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("covmeta."))
        .unwrap();
    let hash = meta.trim_start_matches("covmeta.");
    mkfifo(&fifo.join(format!("covcounters.{hash}.999999.1")));
    // An entry whose JSON files and text profile are symlinks to /dev/zero.
    let zero = col.join("coverage").join("zero");
    std::fs::create_dir_all(&zero).unwrap();
    for n in ["metadata.json", "info.json", "coverage.out"] {
        std::os::unix::fs::symlink("/dev/zero", zero.join(n)).unwrap();
    }
    let c = col.display().to_string();
    let (code, out, err) = covfleet_bounded(&["compile", "--collection", &c, "--json"]);
    assert_eq!(code, 1, "one entry fails, none hangs: {out} {err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["compiled"], 2, "{s}");
    assert_eq!(s["failed"], 1, "{s}");
    assert!(err.contains("not a regular file"), "{err}");
    let db = Database::open_collection(&col).unwrap();
    let owners = db.owners().unwrap();
    assert_eq!(owners.len(), 1);
    assert!(owners[0].covered_stmts > 0);
}

#[test]
fn issue13_13_fifos_and_devices_named_go_neither_hang_nor_exhaust_instrument() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("go.mod"), "module example.com/t\n\ngo 1.22\n").unwrap();
    let main = "package main\n\nfunc main() {}\n";
    for d in ["ok", "fifo", "zero"] {
        std::fs::create_dir_all(root.join("cmd").join(d)).unwrap();
        std::fs::write(root.join("cmd").join(d).join("main.go"), main).unwrap();
    }
    mkfifo(&root.join("cmd/fifo/x.go"));
    std::os::unix::fs::symlink("/dev/zero", root.join("cmd/zero/y.go")).unwrap();
    let (code, out, err) = covfleet_bounded_in(root, &["instrument"]);
    assert!(
        code == 0 || code == 1,
        "instrument must end: {code} {out} {err}"
    );
    let both = format!("{out}{err}");
    assert!(both.contains("not a regular file"), "{both}");
    let injected = |d: &str| {
        std::fs::read_dir(root.join("cmd").join(d))
            .unwrap()
            .any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("zz_covfleet")
            })
    };
    assert!(injected("ok"), "{both}");
    assert!(!injected("fifo") && !injected("zero"), "{both}");
    let (code, out, err) = covfleet_bounded_in(root, &["instrument", "--undo"]);
    assert_eq!(code, 0, "undo must end: {out} {err}");
    assert!(!injected("ok"));
}
