//! Discovery, injection and undo on small trees (no Go toolchain needed).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use gosrc::inject::MARKER;
use gosrc::{
    BuildContext, InstrumentOptions, SERVER_FILE_NAME, SERVER_SOURCE, TESTBINARY_FILE_NAME,
    TESTBINARY_SOURCE, instrument, instrument_with, undo,
};

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        let p = t.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    t
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(
                    e.path().strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    out
}

fn linux() -> BuildContext {
    BuildContext::new("linux", "amd64", false, &[], 26)
}

const MAIN: &str = "package main\n\nfunc main() {}\n";

#[test]
fn nested_modules_vendor_and_hidden_dirs_are_skipped() {
    let t = tree(&[
        ("go.mod", "module m\n"),
        ("main.go", MAIN),
        ("a/main.go", MAIN),
        ("sub/go.mod", "module sub\n"),
        ("sub/cmd/x/main.go", MAIN),
        ("vendor/v/main.go", MAIN),
        ("node_modules/n/main.go", MAIN),
        ("testdata/t/main.go", MAIN),
        ("_u/main.go", MAIN),
        (".d/main.go", MAIN),
        ("a/testdata/main.go", MAIN),
        ("docs/doc.go", "package documentation\n"),
        ("mixed/main.go", MAIN),
        ("mixed/doc.go", "package documentation\n"),
        ("cgo/main.go", "package main\n\nimport \"C\"\n"),
    ]);
    let rep = instrument(t.path(), &linux(), true).unwrap();
    let chosen: Vec<String> = rep.chosen.iter().map(|p| p.display().to_string()).collect();
    // `package documentation` files are ignored, as go/build does; cgo is off here.
    assert_eq!(chosen, vec![".", "a", "mixed"]);
    // DIR itself may be a module.
    let rep = instrument(&t.path().join("sub"), &linux(), true).unwrap();
    assert_eq!(rep.chosen, vec![PathBuf::from("cmd/x")]);
    let cgo = BuildContext::new("linux", "amd64", true, &[], 26);
    assert!(
        instrument(t.path(), &cgo, true)
            .unwrap()
            .chosen
            .contains(&PathBuf::from("cgo"))
    );
}

#[test]
fn broken_build_lines_are_reported_not_instrumented() {
    let t = tree(&[
        (
            "a/main.go",
            "//go:build linux &&\n\npackage main\n\nfunc main() {}\n",
        ),
        (
            "b/main.go",
            "//go:build linux\n//go:build amd64\n\npackage main\n",
        ),
        ("c/main.go", ""),
        ("d/main.go", MAIN),
    ]);
    let rep = instrument(t.path(), &linux(), false).unwrap();
    assert_eq!(rep.chosen, vec![PathBuf::from("d")]);
    assert_eq!(rep.warnings.len(), 3, "{:?}", rep.warnings);
    assert!(rep.warnings.iter().any(|w| w.contains("a/main.go")));
}

#[test]
fn idempotent_updates_old_versions_removes_stale_and_undoes() {
    let t = tree(&[
        ("a/main.go", MAIN),
        ("b/main_linux.go", MAIN),
        ("lib/lib.go", "package lib\n"),
    ]);
    let before = snapshot(t.path());

    let rep = instrument(t.path(), &linux(), false).unwrap();
    assert_eq!(rep.written.len(), 2);
    let once = snapshot(t.path());
    assert_eq!(
        once.get(&PathBuf::from("a").join(SERVER_FILE_NAME))
            .unwrap(),
        SERVER_SOURCE.as_bytes()
    );

    let rep = instrument(t.path(), &linux(), false).unwrap();
    assert!(rep.written.is_empty());
    assert_eq!(rep.unchanged.len(), 2);
    assert_eq!(snapshot(t.path()), once);

    // An older covfleet's file is replaced.
    fs::write(
        t.path().join("a").join(SERVER_FILE_NAME),
        format!("{MARKER}\n\npackage main\n"),
    )
    .unwrap();
    let rep = instrument(t.path(), &linux(), false).unwrap();
    assert_eq!(rep.written, vec![PathBuf::from("a").join(SERVER_FILE_NAME)]);
    assert_eq!(snapshot(t.path()), once);

    // Instrumenting for windows drops the server from the linux-only directory.
    let windows = BuildContext::new("windows", "amd64", false, &[], 26);
    let rep = instrument(t.path(), &windows, false).unwrap();
    assert_eq!(
        rep.removed_stale,
        vec![PathBuf::from("b").join(SERVER_FILE_NAME)]
    );

    let rep = undo(t.path(), false).unwrap();
    assert_eq!(rep.removed, vec![PathBuf::from("a").join(SERVER_FILE_NAME)]);
    assert_eq!(snapshot(t.path()), before);
}

/// `--test-binary` adds the companion (narrowed like the server), a run
/// without it takes the companion out again, a foreign file with the
/// companion's name refuses the directory, and undo removes both.
#[test]
fn test_binary_companion_is_written_removed_and_undone() {
    // An exclude block from a covfleet that knew only the server file.
    let old_block = "# covfleet instrument: injected coverage servers (removed by `covfleet instrument --undo`)\nzz_covfleet_coverage_server.go\n# end covfleet instrument\n";
    let t = tree(&[
        ("a/main.go", MAIN),
        ("b/main_linux.go", MAIN),
        (".git/info/exclude", &format!("# mine\n{old_block}")),
    ]);
    let exclude = t.path().join(".git/info/exclude");
    let outside_git = |t: &Path| {
        let mut s = snapshot(t);
        s.retain(|k, _| !k.starts_with(".git"));
        s
    };
    let before = outside_git(t.path());
    let with = InstrumentOptions {
        test_binary: true,
        ..InstrumentOptions::default()
    };
    let rep = instrument_with(t.path(), &linux(), with).unwrap();
    assert_eq!(rep.written.len(), 4, "{:?}", rep.written);
    let a = t.path().join("a");
    assert_eq!(
        fs::read_to_string(a.join(TESTBINARY_FILE_NAME)).unwrap(),
        TESTBINARY_SOURCE
    );
    let b = fs::read_to_string(t.path().join("b").join(TESTBINARY_FILE_NAME)).unwrap();
    assert!(
        b.contains("\n//go:build go1.23 && covfleet_testbinary && (linux)\n"),
        "{b}"
    );
    let text = fs::read_to_string(&exclude).unwrap();
    assert!(text.starts_with("# mine\n"), "{text}");
    assert_eq!(text.matches("# covfleet instrument:").count(), 1, "{text}");
    assert!(
        text.contains(SERVER_FILE_NAME) && text.contains(TESTBINARY_FILE_NAME),
        "{text}"
    );
    let rep = instrument_with(t.path(), &linux(), with).unwrap();
    assert_eq!((rep.written.len(), rep.unchanged.len()), (0, 4));

    let rep = instrument(t.path(), &linux(), false).unwrap();
    assert_eq!(
        rep.removed_stale,
        vec![
            PathBuf::from("a").join(TESTBINARY_FILE_NAME),
            PathBuf::from("b").join(TESTBINARY_FILE_NAME)
        ]
    );
    assert!(a.join(SERVER_FILE_NAME).is_file());

    // Someone else's file with the companion's name: refused, left alone.
    fs::write(a.join(TESTBINARY_FILE_NAME), "package main\n").unwrap();
    let rep = instrument_with(t.path(), &linux(), with).unwrap();
    assert_eq!(rep.refused.len(), 1, "{:?}", rep.refused);
    assert!(rep.refused[0].to_string().contains(TESTBINARY_FILE_NAME));
    assert_eq!(
        fs::read_to_string(a.join(TESTBINARY_FILE_NAME)).unwrap(),
        "package main\n"
    );
    fs::remove_file(a.join(TESTBINARY_FILE_NAME)).unwrap();
    instrument_with(t.path(), &linux(), with).unwrap();
    let rep = undo(t.path(), false).unwrap();
    assert_eq!(rep.removed.len(), 4, "{:?}", rep.removed);
    assert_eq!(outside_git(t.path()), before);
    assert_eq!(fs::read_to_string(&exclude).unwrap(), "# mine\n");
}

#[test]
fn undo_leaves_vendor_nested_modules_and_foreign_files_alone() {
    let ours = SERVER_SOURCE;
    let t = tree(&[
        ("a/main.go", MAIN),
        ("vendor/x/zz_covfleet_coverage_server.go", ours),
        ("sub/go.mod", "module sub\n"),
        ("sub/zz_covfleet_coverage_server.go", ours),
        ("c/main.go", MAIN),
        ("c/zz_covfleet_coverage_server.go", "package main\n"),
    ]);
    instrument(t.path(), &linux(), false).unwrap();
    let rep = undo(t.path(), false).unwrap();
    assert_eq!(rep.removed, vec![PathBuf::from("a").join(SERVER_FILE_NAME)]);
    assert_eq!(rep.foreign, vec![PathBuf::from("c").join(SERVER_FILE_NAME)]);
    assert!(t.path().join("vendor/x").join(SERVER_FILE_NAME).is_file());
    assert!(t.path().join("sub").join(SERVER_FILE_NAME).is_file());
}

#[test]
fn errors_name_the_path() {
    let err = instrument(Path::new("/nonexistent/covfleet-test"), &linux(), true).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/covfleet-test"),
        "{err}"
    );
    let t = tree(&[("f", "")]);
    let err = instrument(&t.path().join("f"), &linux(), true).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn shim_install_writes_an_executable_and_refuses_a_real_go() {
    use std::os::unix::fs::PermissionsExt;
    let t = tree(&[("real/go", "\x7fELF binary")]);
    let p = gosrc::shim::install(&t.path().join("shim")).unwrap();
    assert_eq!(fs::read_to_string(&p).unwrap(), gosrc::shim::SHIM_SCRIPT);
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o755
    );
    gosrc::shim::install(&t.path().join("shim")).unwrap(); // reinstall over our own
    let err = gosrc::shim::install(&t.path().join("real")).unwrap_err();
    assert!(err.to_string().contains("real/go"), "{err}");
    assert_eq!(
        fs::read(t.path().join("real/go")).unwrap(),
        b"\x7fELF binary"
    );
}

#[test]
fn server_file_inherits_the_constraint_when_every_host_file_has_one() {
    let t = tree(&[
        ("free/main.go", MAIN),
        ("free/other_linux.go", "package main\n"),
        ("os/main_linux.go", MAIN),
        ("os/main_darwin_arm64.go", MAIN),
        ("os/main_test.go", "package main\n"),
        (
            "tagged/main.go",
            "// +build linux,!cgo darwin\n\npackage main\n\nfunc main() {}\n",
        ),
        (
            "tagged/c.go",
            "//go:build linux\n\npackage main\n\nimport \"C\"\n",
        ),
    ]);
    instrument(t.path(), &linux(), false).unwrap();
    let line = |dir: &str| -> String {
        let src = fs::read_to_string(t.path().join(dir).join(SERVER_FILE_NAME)).unwrap();
        src.lines()
            .find(|l| l.starts_with("//go:build"))
            .unwrap()
            .to_string()
    };
    assert_eq!(line("free"), "//go:build go1.20");
    assert_eq!(
        fs::read_to_string(t.path().join("free").join(SERVER_FILE_NAME)).unwrap(),
        SERVER_SOURCE
    );
    assert_eq!(
        line("os"),
        "//go:build go1.20 && (darwin && arm64 || linux)"
    );
    assert_eq!(
        line("tagged"),
        "//go:build go1.20 && (linux && cgo || linux && !cgo || darwin)"
    );
    // Re-running is still a no-op.
    let rep = instrument(t.path(), &linux(), false).unwrap();
    assert!(rep.written.is_empty(), "{:?}", rep.written);
}
