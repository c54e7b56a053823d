//! `covfleet covdata <sub>` against `go tool covdata <sub>` on real data.
//!
//! Fixtures (see `common/fixtures.rs`) are Go programs from
//! `go/fixtures/covdata` built with `-cover` in set, count and atomic modes,
//! `cmd/gofmt` from GOROOT, and the fixture app built by Go 1.23 (MD5
//! hashes). Every case runs both tools on the same arguments and compares
//! exit code, stdout, stderr and the `-o` output (textfmt: equal up to the
//! order of lines with the same sort key; debugdump: argv header masked;
//! merge family: the output directories read back by Go's textfmt).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::fixtures::{MODES, MODULE, fixtures};
use common::oracle::{
    Cmp, OUT, Report, Tool, first_diff, go_textfmt, i_arg, mask_debugdump, names, out_path,
    run_tool, s, textfmt_diff,
};

/// Named lists of input directories covering single pods, several pods in
/// one dir, several `-i` dirs, orphans, empty dirs, gofmt and Go 1.23 data.
fn input_sets() -> Vec<(String, Vec<PathBuf>)> {
    let f = fixtures();
    let mut v = Vec::new();
    for m in MODES {
        for d in ["app", "appx", "tool", "pods", "orphans", "empty"] {
            v.push((format!("{m}/{d}"), vec![f.data(&format!("{m}/{d}"))]));
        }
        v.push((
            format!("{m}/app+tool"),
            vec![f.data(&format!("{m}/app")), f.data(&format!("{m}/tool"))],
        ));
        v.push((
            format!("{m}/tool+app"),
            vec![f.data(&format!("{m}/tool")), f.data(&format!("{m}/app"))],
        ));
        v.push((
            format!("{m}/app+appx"),
            vec![f.data(&format!("{m}/app")), f.data(&format!("{m}/appx"))],
        ));
        v.push((
            format!("{m}/pods+app+empty"),
            vec![
                f.data(&format!("{m}/pods")),
                f.data(&format!("{m}/app")),
                f.data(&format!("{m}/empty")),
            ],
        ));
        v.push((
            format!("{m}/app+app"),
            vec![f.data(&format!("{m}/app")), f.data(&format!("{m}/app"))],
        ));
    }
    v.push(("count/static".into(), vec![f.data("count/static")]));
    v.push((
        "count/static+app".into(),
        vec![f.data("count/static"), f.data("count/app")],
    ));
    v.push(("atomic/snap".into(), vec![f.data("atomic/snap")]));
    v.push((
        "atomic/snap+app".into(),
        vec![f.data("atomic/snap"), f.data("atomic/app")],
    ));
    v.push(("gofmt".into(), vec![f.data("gofmt")]));
    v.push((
        "gofmt+count/app".into(),
        vec![f.data("gofmt"), f.data("count/app")],
    ));
    // Every named input exists and (but for the empty/orphan dirs) holds a pod,
    // so that no comparison passes on two identical "no such directory" errors.
    for (name, dirs) in &v {
        for d in dirs {
            let n = names(d);
            assert!(d.is_dir(), "{name}: missing fixture dir {}", d.display());
            if !name.contains("empty") && !name.contains("orphans") {
                assert!(
                    n.iter().any(|x| x.starts_with("covmeta.")),
                    "{name}: no meta file in {}",
                    d.display()
                );
            }
        }
    }
    if let Some(old) = &f.old_go_data {
        v.push(("go1.23".into(), vec![old.clone()]));
        v.push((
            "go1.23+count/pods".into(),
            vec![old.clone(), f.data("count/pods")],
        ));
    }
    v
}

#[test]
fn textfmt_matches_go() {
    let mut r = Report::default();
    for (name, dirs) in input_sets() {
        r.compare(
            &name,
            &[s(&["textfmt"]), vec![i_arg(&dirs), format!("-o={OUT}")]].concat(),
            Cmp::Exact,
            true,
        );
    }
    r.finish("textfmt");
}

#[test]
fn percent_matches_go() {
    let mut r = Report::default();
    for (name, dirs) in input_sets() {
        r.compare(
            &name,
            &[s(&["percent"]), vec![i_arg(&dirs)]].concat(),
            Cmp::Exact,
            false,
        );
    }
    // percent -o also writes the text profile.
    let dirs = vec![fixtures().data("count/pods")];
    r.compare(
        "percent -o",
        &[s(&["percent"]), vec![i_arg(&dirs), "-o".into(), OUT.into()]].concat(),
        Cmp::Exact,
        true,
    );
    r.finish("percent");
}

#[test]
fn func_matches_go() {
    let mut r = Report::default();
    for (name, dirs) in input_sets() {
        r.compare(
            &name,
            &[s(&["func"]), vec![i_arg(&dirs)]].concat(),
            Cmp::Exact,
            false,
        );
    }
    r.finish("func");
}

#[test]
fn pkglist_matches_go() {
    let mut r = Report::default();
    for (name, dirs) in input_sets() {
        r.compare(
            &name,
            &[s(&["pkglist"]), vec![i_arg(&dirs)]].concat(),
            Cmp::Exact,
            false,
        );
    }
    r.finish("pkglist");
}

#[test]
fn debugdump_matches_go() {
    let mut r = Report::default();
    for (name, dirs) in input_sets() {
        r.compare(
            &name,
            &[s(&["debugdump"]), vec![i_arg(&dirs)]].concat(),
            Cmp::Debugdump,
            false,
        );
        r.compare(
            &format!("{name} -live"),
            &[s(&["debugdump", "-live"]), vec![i_arg(&dirs)]].concat(),
            Cmp::Debugdump,
            false,
        );
    }
    r.finish("debugdump");
}

#[test]
fn pkg_patterns_match_go() {
    let f = fixtures();
    let pats = [
        format!("{MODULE}/shapes"),
        format!("{MODULE}/..."),
        format!("{MODULE}/cmd/...,{MODULE}/gen"),
        format!("{MODULE}/consts"),
        "example.com/...".to_string(),
        "nomatch".to_string(),
        "go/...".to_string(),
        "cmd/gofmt,go/ast".to_string(),
        "go/*".to_string(),
    ];
    let mut r = Report::default();
    for dirs in [
        vec![f.data("count/pods")],
        vec![f.data("gofmt"), f.data("set/app")],
    ] {
        for p in &pats {
            for sub in ["textfmt", "percent", "func", "pkglist", "debugdump"] {
                let mut args = vec![sub.to_string(), i_arg(&dirs), format!("-pkg={p}")];
                if sub == "textfmt" {
                    args.push(format!("-o={OUT}"));
                }
                let cmp = if sub == "debugdump" {
                    Cmp::Debugdump
                } else {
                    Cmp::Exact
                };
                r.compare(&format!("{sub} -pkg={p} {}", dirs.len()), &args, cmp, true);
            }
        }
    }
    r.finish("-pkg");
}

#[test]
fn flag_spellings_are_accepted() {
    // Go's flag package accepts -f=v, -f v, --f=v and --f v: covfleet must too,
    // and give the same output as the canonical spelling.
    let f = fixtures();
    let a = f.data("count/app").to_string_lossy().into_owned();
    let t = f.data("count/tool").to_string_lossy().into_owned();
    let both = format!("{a},{t}");
    let pkg = format!("{MODULE}/gen");
    let mut r = Report::default();
    for args in [
        vec!["percent".to_string(), "-i".into(), both.clone()],
        vec!["percent".into(), format!("-i={both}")],
        vec!["percent".into(), "--i".into(), both.clone()],
        vec!["percent".into(), format!("--i={both}")],
        vec![
            "percent".into(),
            "-i".into(),
            both.clone(),
            "-pkg".into(),
            pkg.clone(),
        ],
        vec![
            "percent".into(),
            "-i".into(),
            both.clone(),
            "--pkg".into(),
            pkg.clone(),
        ],
        vec![
            "percent".into(),
            "-i".into(),
            both.clone(),
            format!("--pkg={pkg}"),
        ],
        vec![
            "textfmt".into(),
            "-i".into(),
            both.clone(),
            "-o".into(),
            OUT.into(),
        ],
        vec![
            "textfmt".into(),
            "-o".into(),
            OUT.into(),
            "-i".into(),
            both.clone(),
        ],
        vec!["textfmt".into(), format!("-o={OUT}"), format!("-i={both}")],
        vec!["debugdump".into(), "-live".into(), "-i".into(), a.clone()],
        vec!["debugdump".into(), "--live".into(), "-i".into(), a.clone()],
        vec![
            "debugdump".into(),
            "-live=true".into(),
            "-i".into(),
            a.clone(),
        ],
    ] {
        let cmp = if args[0] == "debugdump" {
            Cmp::Debugdump
        } else {
            Cmp::Exact
        };
        r.compare(&args.join(" "), &args, cmp, true);
    }
    r.finish("flag spellings");
}

#[test]
fn errors_and_exit_codes_match_go() {
    let f = fixtures();
    let app = f.data("count/app").to_string_lossy().into_owned();
    let missing = f.root.join("does-not-exist").to_string_lossy().into_owned();
    let mut r = Report::default();
    for sub in ["textfmt", "percent", "func", "pkglist", "debugdump"] {
        let o = if sub == "textfmt" {
            vec![format!("-o={OUT}")]
        } else {
            vec![]
        };
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("missing dir", vec![format!("-i={missing}")]),
            (
                "missing dir after good",
                vec![format!("-i={app},{missing}")],
            ),
            ("empty -i element", vec![format!("-i={app},")]),
            ("no -i", vec![]),
            ("-i=", vec!["-i=".into()]),
            ("unknown flag", vec![format!("-i={app}"), "-bogus".into()]),
        ];
        for (what, extra) in cases {
            let args = [vec![sub.to_string()], extra, o.clone()].concat();
            r.compare(&format!("{sub}: {what}"), &args, Cmp::Debugdump, true);
        }
    }
    // textfmt without -o is a usage error too.
    r.compare(
        "textfmt without -o",
        &[s(&["textfmt"]), vec![format!("-i={app}")]].concat(),
        Cmp::Exact,
        true,
    );
    // Unknown subcommand.
    r.compare(
        "unknown subcommand",
        &s(&["frobnicate", "-i=x"]),
        Cmp::Exact,
        true,
    );
    r.finish("errors");
}

#[test]
fn mixed_modes_textfmt_fails_like_go() {
    let f = fixtures();
    let mut r = Report::default();
    for (a, b) in [("set", "count"), ("count", "atomic"), ("atomic", "set")] {
        let dirs = vec![f.data(&format!("{a}/app")), f.data(&format!("{b}/app"))];
        let (g, c) = r.compare(
            &format!("textfmt {a}+{b}"),
            &[s(&["textfmt"]), vec![i_arg(&dirs), format!("-o={OUT}")]].concat(),
            Cmp::Exact,
            true,
        );
        assert_eq!(
            g.code,
            Some(1),
            "go should fail on mixed modes: {}",
            g.stderr
        );
        assert!(g.stderr.contains("counter mode clash"), "{}", g.stderr);
        // Go has already created (and left empty) the -o file.
        assert_eq!(g.file.as_deref(), Some(""));
        assert_eq!(
            c.code,
            Some(1),
            "covfleet must fail on mixed modes: {}",
            c.stderr
        );
        // The relaxed commands work on the same input.
        for sub in ["percent", "func", "pkglist"] {
            r.compare(
                &format!("{sub} {a}+{b}"),
                &[s(&[sub]), vec![i_arg(&dirs)]].concat(),
                Cmp::Exact,
                false,
            );
        }
        r.compare(
            &format!("debugdump {a}+{b}"),
            &[s(&["debugdump"]), vec![i_arg(&dirs)]].concat(),
            Cmp::Debugdump,
            false,
        );
    }
    r.finish("mixed modes");
}

/// Runs a merge-family command with both tools into fresh output dirs and
/// compares: exit code, stdout/stderr, the set of meta-file names, the number
/// of counter files, and Go's `textfmt` of both output dirs.
fn compare_merge(r: &mut Report, case: &str, args: &[String]) {
    r.cases += 1;
    let scratch = tempfile::tempdir().unwrap();
    let g = run_tool(Tool::Go, args, scratch.path(), true);
    let c = run_tool(Tool::Covfleet, args, scratch.path(), true);
    let gd = out_path(Tool::Go, scratch.path());
    let cd = out_path(Tool::Covfleet, scratch.path());
    let norm = |t: &str, p: &Path| t.replace(&*p.to_string_lossy(), "{OUT}");
    if g.code == Some(2) && g.stderr.contains("goroutine ") {
        // A Go crash (subtract/intersect's "decreasing dir index" when a
        // later dir holds a pod an earlier one lacks, §3.8): covfleet need
        // not copy it, but must not crash either.
        if c.stderr.contains("panicked at") || !matches!(c.code, Some(0 | 1)) {
            r.fail(
                case,
                format!(
                    "go panicked ({}), covfleet crashed too: {:?} {}",
                    g.stderr.lines().next().unwrap_or(""),
                    c.code,
                    c.stderr
                ),
            );
        }
        return;
    }
    if g.code != c.code {
        r.fail(
            case,
            format!(
                "exit code: go {:?} covfleet {:?}\n  go: {}\n  covfleet: {}",
                g.code,
                c.code,
                g.stderr.trim(),
                c.stderr.trim()
            ),
        );
        return;
    }
    if norm(&g.stderr, &gd) != norm(&c.stderr, &cd) {
        r.fail(
            case,
            format!("stderr: go {:?} covfleet {:?}", g.stderr, c.stderr),
        );
    }
    if g.stdout != c.stdout {
        r.fail(
            case,
            format!("stdout: go {:?} covfleet {:?}", g.stdout, c.stdout),
        );
    }
    let metas = |d: &Path| {
        names(d)
            .into_iter()
            .filter(|n| n.starts_with("covmeta."))
            .collect::<Vec<_>>()
    };
    let ctrs = |d: &Path| {
        names(d)
            .into_iter()
            .filter(|n| n.starts_with("covcounters."))
            .count()
    };
    if metas(&gd) != metas(&cd) {
        r.fail(
            case,
            format!("meta files: go {:?} covfleet {:?}", metas(&gd), metas(&cd)),
        );
    }
    if ctrs(&gd) != ctrs(&cd) {
        r.fail(
            case,
            format!("counter files: go {} covfleet {}", ctrs(&gd), ctrs(&cd)),
        );
    }
    for n in names(&cd) {
        if !(n.starts_with("covmeta.") || n.starts_with("covcounters.")) {
            r.fail(case, format!("unexpected file in covfleet output: {n}"));
        }
        if let Some(rest) = n.strip_prefix("covcounters.") {
            let parts: Vec<&str> = rest.split('.').collect();
            if parts.len() != 3 || parts[1] != "0" {
                r.fail(
                    case,
                    format!("counter file name should be covcounters.<hash>.0.<nanotime>: {n}"),
                );
            }
        }
    }
    match (
        go_textfmt(std::slice::from_ref(&gd)),
        go_textfmt(std::slice::from_ref(&cd)),
    ) {
        (Ok(a), Ok(b)) => {
            if let Some(d) = textfmt_diff(&a, &b) {
                r.fail(case, format!("output read back by go textfmt: {d}"));
            }
        }
        (Err(a), Err(b)) => {
            // Crashes: compare the first line only (traces hold addresses).
            let first = |t: &str| t.lines().next().unwrap_or("").to_string();
            let (a, b) = if a.contains("goroutine ") {
                (first(&a), first(&b))
            } else {
                (a, b)
            };
            if norm(&a, &gd) != norm(&b, &cd) {
                r.fail(
                    case,
                    format!("reading outputs back failed differently: go {a:?} covfleet {b:?}"),
                );
            }
        }
        (a, b) => r.fail(
            case,
            format!("reading outputs back: go {a:?} covfleet {b:?}"),
        ),
    }
    // covfleet must read its own output like Go reads it.
    let scratch2 = tempfile::tempdir().unwrap();
    for sub in ["percent", "func"] {
        if sub == "func" && r.ties {
            continue;
        }
        let ga = [
            vec![sub.to_string()],
            vec![i_arg(std::slice::from_ref(&cd))],
        ]
        .concat();
        let gs = run_tool(Tool::Go, &ga, scratch2.path(), false);
        let cs = run_tool(Tool::Covfleet, &ga, scratch2.path(), false);
        let go_crashed = gs.code == Some(2) && gs.stderr.contains("goroutine ");
        if go_crashed && cs.code == Some(1) {
            continue;
        }
        if gs.stdout != cs.stdout || gs.code != cs.code {
            r.fail(
                case,
                format!(
                    "{sub} of covfleet's own output differs: go {:?} covfleet {:?}",
                    gs.stdout, cs.stdout
                ),
            );
        }
    }
}

#[test]
fn merge_matches_go() {
    let f = fixtures();
    let mut r = Report::default();
    let o = format!("-o={OUT}");
    for m in MODES {
        let app = f.data(&format!("{m}/app"));
        let pods = f.data(&format!("{m}/pods"));
        let tool = f.data(&format!("{m}/tool"));
        compare_merge(
            &mut r,
            &format!("{m}: merge app"),
            &s(&["merge", &i_arg(std::slice::from_ref(&app)), &o]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: merge pods"),
            &s(&["merge", &i_arg(std::slice::from_ref(&pods)), &o]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: merge app,pods,tool"),
            &s(&[
                "merge",
                &i_arg(&[app.clone(), pods.clone(), tool.clone()]),
                &o,
            ]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: merge -pkg"),
            &s(&[
                "merge",
                &i_arg(std::slice::from_ref(&pods)),
                &format!("-pkg={MODULE}/gen,{MODULE}/shapes"),
                &o,
            ]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: merge -pcombine"),
            &s(&[
                "merge",
                "-pcombine",
                &i_arg(std::slice::from_ref(&pods)),
                &o,
            ]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: merge -pcombine -pkg"),
            &s(&[
                "merge",
                "-pcombine",
                &i_arg(&[pods.clone(), tool.clone()]),
                &format!("-pkg={MODULE}/..."),
                &o,
            ]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: merge empty"),
            &s(&["merge", &i_arg(&[f.data(&format!("{m}/empty"))]), &o]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: subtract app-pods"),
            &s(&["subtract", &i_arg(&[app.clone(), pods.clone()]), &o]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: subtract pods-app"),
            &s(&["subtract", &i_arg(&[pods.clone(), app.clone()]), &o]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: intersect app,pods"),
            &s(&["intersect", &i_arg(&[app.clone(), pods.clone()]), &o]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: intersect pods,tool"),
            &s(&["intersect", &i_arg(&[pods.clone(), tool.clone()]), &o]),
        );
        compare_merge(
            &mut r,
            &format!("{m}: intersect -pkg"),
            &s(&[
                "intersect",
                &i_arg(&[app.clone(), pods.clone()]),
                &format!("-pkg={MODULE}/worker"),
                &o,
            ]),
        );
    }
    // Mixed modes: merge is relaxed per pod; -pcombine upgrades; subtract is strict.
    let sa = f.data("set/app");
    let ca = f.data("count/app");
    let at = f.data("atomic/tool");
    compare_merge(
        &mut r,
        "mixed: merge set+count",
        &s(&["merge", &i_arg(&[sa.clone(), ca.clone()]), &o]),
    );
    compare_merge(
        &mut r,
        "mixed: merge -pcombine set+count+atomic",
        &s(&[
            "merge",
            "-pcombine",
            &i_arg(&[sa.clone(), ca.clone(), at.clone()]),
            &o,
        ]),
    );
    compare_merge(
        &mut r,
        "mixed: subtract set-count",
        &s(&["subtract", &i_arg(&[sa.clone(), ca.clone()]), &o]),
    );
    for (label, extra) in [("", None), (" -pcombine", Some("-pcombine"))] {
        let mut a = vec!["merge".to_string()];
        a.extend(extra.map(String::from));
        a.push(i_arg(&[f.data("count/static"), ca.clone()]));
        a.push(o.clone());
        compare_merge(&mut r, &format!("static+app: merge{label}"), &a);
    }
    compare_merge(
        &mut r,
        "gofmt: merge -pkg",
        &s(&["merge", &i_arg(&[f.data("gofmt")]), "-pkg=go/...", &o]),
    );
    compare_merge(
        &mut r,
        "gofmt: merge -pcombine with app",
        &s(&[
            "merge",
            "-pcombine",
            &i_arg(&[f.data("gofmt"), ca.clone()]),
            &o,
        ]),
    );
    if let Some(old) = &f.old_go_data {
        compare_merge(
            &mut r,
            "go1.23: merge",
            &s(&["merge", &i_arg(std::slice::from_ref(old)), &o]),
        );
        compare_merge(
            &mut r,
            "go1.23: merge -pkg",
            &s(&[
                "merge",
                &i_arg(std::slice::from_ref(old)),
                &format!("-pkg={MODULE}/shapes"),
                &o,
            ]),
        );
        compare_merge(
            &mut r,
            "go1.23: merge -pcombine +count/pods",
            &s(&[
                "merge",
                "-pcombine",
                &i_arg(&[old.clone(), f.data("count/pods")]),
                &o,
            ]),
        );
    }
    // merge/subtract/intersect without -o, and subtract with one dir.
    let mut r2 = Report::default();
    for sub in ["merge", "subtract", "intersect"] {
        r2.compare(
            &format!("{sub} without -o"),
            &s(&[sub, &i_arg(std::slice::from_ref(&ca))]),
            Cmp::Exact,
            false,
        );
    }
    r.cases += r2.cases;
    r.failures.extend(r2.failures);
    r.finish("merge family");
}

#[test]
fn old_toolchain_data_reads_like_go() {
    let f = fixtures();
    let Some(old) = &f.old_go_data else {
        eprintln!(
            "skipped: no Go ≤1.23 toolchain (set COVFLEET_REQUIRE_OLD_GO=1 to make this fatal)"
        );
        return;
    };
    let v = f.old_go_version.as_deref().unwrap_or("");
    assert!(v.contains("go1.2"), "{v}");
    // The data really comes from an MD5-era toolchain: its meta file names are
    // 32 hex digits and differ from the current toolchain's for the same program.
    let old_meta: Vec<String> = names(old)
        .into_iter()
        .filter(|n| n.starts_with("covmeta."))
        .collect();
    assert_eq!(old_meta.len(), 2, "{old_meta:?}");
    let new_meta: Vec<String> = names(&f.data("count/pods"))
        .into_iter()
        .filter(|n| n.starts_with("covmeta."))
        .collect();
    for m in &old_meta {
        assert_eq!(m.len(), "covmeta.".len() + 32);
        assert!(
            !new_meta.contains(m),
            "same meta hash {m} from {v} and the current Go"
        );
    }
    let mut r = Report::default();
    let dirs = vec![old.clone()];
    r.compare(
        "textfmt",
        &[s(&["textfmt"]), vec![i_arg(&dirs), format!("-o={OUT}")]].concat(),
        Cmp::Exact,
        true,
    );
    for sub in ["percent", "func", "pkglist"] {
        r.compare(
            sub,
            &[s(&[sub]), vec![i_arg(&dirs)]].concat(),
            Cmp::Exact,
            false,
        );
    }
    r.compare(
        "debugdump",
        &[s(&["debugdump"]), vec![i_arg(&dirs)]].concat(),
        Cmp::Debugdump,
        false,
    );
    r.finish("go1.23 data");
}

#[test]
fn gofmt_from_goroot_matches_go() {
    let f = fixtures();
    let dirs = vec![f.data("gofmt")];
    let metas: Vec<String> = names(&dirs[0])
        .into_iter()
        .filter(|n| n.starts_with("covmeta."))
        .collect();
    assert_eq!(metas.len(), 1);
    let size = fs::metadata(dirs[0].join(&metas[0])).unwrap().len();
    assert!(
        size > 20_000,
        "gofmt meta file is only {size} bytes: not the large program we wanted"
    );
    let mut r = Report::default();
    r.compare(
        "textfmt",
        &[s(&["textfmt"]), vec![i_arg(&dirs), format!("-o={OUT}")]].concat(),
        Cmp::Exact,
        true,
    );
    for sub in ["percent", "func", "pkglist"] {
        r.compare(
            sub,
            &[s(&[sub]), vec![i_arg(&dirs)]].concat(),
            Cmp::Exact,
            false,
        );
    }
    r.compare(
        "debugdump -live",
        &[s(&["debugdump", "-live"]), vec![i_arg(&dirs)]].concat(),
        Cmp::Debugdump,
        false,
    );
    r.finish("gofmt");
}

// ---- malformed and unusual files, against Go ------------------------------

#[path = "../../covdata/tests/common/mod.rs"]
mod synth;

use covdata::{CounterFile, MetaFile};

/// A copy of one real pod (`count/tool`: its meta file and first counter
/// file) in a fresh directory, with the file names and bytes.
struct PodCopy {
    dir: tempfile::TempDir,
    meta_name: String,
    ctr_name: String,
    meta: Vec<u8>,
    ctr: Vec<u8>,
}

fn pod_copy() -> PodCopy {
    pod_copy_of("count/tool")
}

/// [`pod_copy`] of another fixture directory (its first meta and counter file).
fn pod_copy_of(rel: &str) -> PodCopy {
    let src = fixtures().data(rel);
    let ns = names(&src);
    let meta_name = ns
        .iter()
        .find(|n| n.starts_with("covmeta."))
        .unwrap()
        .clone();
    let ctr_name = ns
        .iter()
        .find(|n| n.starts_with("covcounters."))
        .unwrap()
        .clone();
    let meta = fs::read(src.join(&meta_name)).unwrap();
    let ctr = fs::read(src.join(&ctr_name)).unwrap();
    PodCopy {
        dir: tempfile::tempdir().unwrap(),
        meta_name,
        ctr_name,
        meta,
        ctr,
    }
}

/// Re-encodes a counter file with `synth`'s independent writer.
fn reencode(ctr: &[u8], flavor: u8, be: bool, edit: impl FnOnce(&mut Vec<synth::Rec>)) -> Vec<u8> {
    let c = CounterFile::decode(ctr).unwrap();
    let mut recs: Vec<synth::Rec> = c
        .funcs
        .iter()
        .map(|f| (f.pkg, f.func, f.counters.clone()))
        .collect();
    edit(&mut recs);
    let args: Vec<(&str, &str)> = c
        .args
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut out = synth::counters(flavor, be, &args, &recs);
    out[8..24].copy_from_slice(&c.meta_hash);
    out
}

type Files = Vec<(String, Vec<u8>)>;
type MakeFiles = Box<dyn Fn(&PodCopy) -> Files>;
type Mutation = (&'static str, MakeFiles);

fn mutations() -> Vec<Mutation> {
    fn meta_patch(at: usize, bytes: &'static [u8]) -> MakeFiles {
        Box::new(move |p| {
            let mut m = p.meta.clone();
            m[at..at + bytes.len()].copy_from_slice(bytes);
            vec![
                (p.meta_name.clone(), m),
                (p.ctr_name.clone(), p.ctr.clone()),
            ]
        })
    }
    fn ctr_with(f: impl Fn(&PodCopy) -> Vec<u8> + 'static) -> MakeFiles {
        Box::new(move |p| {
            vec![
                (p.meta_name.clone(), p.meta.clone()),
                (p.ctr_name.clone(), f(p)),
            ]
        })
    }
    fn ctr_patch(at_from_end: bool, at: usize, bytes: &'static [u8]) -> MakeFiles {
        ctr_with(move |p| {
            let mut c = p.ctr.clone();
            let at = if at_from_end { c.len() - at } else { at };
            c[at..at + bytes.len()].copy_from_slice(bytes);
            c
        })
    }
    let blob0 = |p: &PodCopy| u64::from_le_bytes(p.meta[56..64].try_into().unwrap()) as usize;
    vec![
        (
            "meta truncated in header",
            Box::new(|p: &PodCopy| {
                vec![
                    (p.meta_name.clone(), p.meta[..30].to_vec()),
                    (p.ctr_name.clone(), p.ctr.clone()),
                ]
            }),
        ),
        (
            "meta truncated in blob",
            Box::new(|p: &PodCopy| {
                vec![
                    (p.meta_name.clone(), p.meta[..p.meta.len() - 10].to_vec()),
                    (p.ctr_name.clone(), p.ctr.clone()),
                ]
            }),
        ),
        ("meta bad magic", meta_patch(0, b"\0cvX")),
        ("meta version 2", meta_patch(4, &[2, 0, 0, 0])),
        ("meta version 0", meta_patch(4, &[0, 0, 0, 0])),
        ("meta entries 0", meta_patch(16, &[0; 8])),
        (
            "meta entries huge",
            meta_patch(16, &[0, 0, 0, 0, 0, 1, 0, 0]),
        ),
        ("meta entries u64 max", meta_patch(16, &[0xff; 8])),
        ("meta CMode 0", meta_patch(48, &[0])),
        ("meta CMode 9", meta_patch(48, &[9])),
        ("meta granularity perfunc", meta_patch(49, &[2])),
        (
            "meta offset beyond TotalLength",
            meta_patch(56, &[0, 0, 0, 0, 1, 0, 0, 0]),
        ),
        (
            "meta pkgname index out of range",
            Box::new(move |p: &PodCopy| {
                let mut m = p.meta.clone();
                let b = blob0(p);
                m[b + 4..b + 8].copy_from_slice(&999u32.to_le_bytes());
                vec![
                    (p.meta_name.clone(), m),
                    (p.ctr_name.clone(), p.ctr.clone()),
                ]
            }),
        ),
        (
            "meta func offset into table",
            Box::new(move |p: &PodCopy| {
                let mut m = p.meta.clone();
                let b = blob0(p);
                m[b + 44..b + 48].copy_from_slice(&8u32.to_le_bytes());
                vec![
                    (p.meta_name.clone(), m),
                    (p.ctr_name.clone(), p.ctr.clone()),
                ]
            }),
        ),
        (
            "meta tag not matching header",
            Box::new(|p: &PodCopy| {
                vec![(
                    "covmeta.00000000000000000000000000000000".into(),
                    p.meta.clone(),
                )]
            }),
        ),
        (
            "ctr truncated to 10 bytes",
            ctr_with(|p| p.ctr[..10].to_vec()),
        ),
        (
            "ctr missing footer",
            ctr_with(|p| p.ctr[..p.ctr.len() - 16].to_vec()),
        ),
        ("ctr bad footer magic", ctr_patch(true, 16, b"\0cwX")),
        ("ctr bad header magic", ctr_patch(false, 0, b"\0cwX")),
        ("ctr no segments", ctr_patch(true, 8, &[0, 0, 0, 0])),
        ("ctr version 2", ctr_patch(false, 4, &[2, 0, 0, 0])),
        ("ctr flavor 3", ctr_patch(false, 24, &[3])),
        ("ctr header hash zero", ctr_patch(false, 8, &[0; 16])),
        (
            "ctr huge StrTabLen",
            ctr_patch(false, 40, &[0xff, 0xff, 0xff, 0x7f]),
        ),
        (
            "ctr huge FcnEntries",
            ctr_patch(false, 32, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
        ),
        (
            "meta file-level string table count 0x7f",
            Box::new(|p: &PodCopy| {
                let mut m = p.meta.clone();
                let n = u64::from_le_bytes(m[16..24].try_into().unwrap()) as usize;
                m[56 + 16 * n] = 0x7f;
                vec![
                    (p.meta_name.clone(), m),
                    (p.ctr_name.clone(), p.ctr.clone()),
                ]
            }),
        ),
        (
            "ctr FcnEntries with high bits set",
            ctr_patch(false, 36, &[0xff, 0, 0, 0x10]),
        ),
        (
            "ctr one record too many (eats footer)",
            ctr_with(|p| {
                let mut c = p.ctr.clone();
                let n = u64::from_le_bytes(c[32..40].try_into().unwrap()) + 1;
                c[32..40].copy_from_slice(&n.to_le_bytes());
                c
            }),
        ),
        (
            "ctr raw flavor little-endian",
            ctr_with(|p| reencode(&p.ctr, synth::RAW, false, |_| {})),
        ),
        (
            "ctr raw flavor big-endian",
            ctr_with(|p| reencode(&p.ctr, synth::RAW, true, |_| {})),
        ),
        (
            "ctr second segment",
            ctr_with(|p| {
                let mut c = p.ctr[..p.ctr.len() - 16].to_vec();
                c.extend_from_slice(&p.ctr[p.ctr.len() - 16..]);
                let other = reencode(&p.ctr, synth::ULEB, false, |r| {
                    r.iter_mut()
                        .for_each(|x| x.2.iter_mut().for_each(|v| *v = 1000))
                });
                c.extend_from_slice(&other[32..other.len() - 16]);
                c.extend_from_slice(&synth::footer(2));
                c
            }),
        ),
        (
            "ctr fewer counters than units",
            ctr_with(|p| {
                reencode(&p.ctr, synth::ULEB, false, |r| {
                    let i = r.iter().position(|x| x.2.len() >= 2).unwrap();
                    r[i].2.pop();
                })
            }),
        ),
        // Go treats a record without counters as absent (count 0).
        (
            "ctr record with zero counters",
            ctr_with(|p| {
                reencode(&p.ctr, synth::ULEB, false, |r| {
                    let i = r.iter().position(|x| x.2.len() == 1).unwrap();
                    r[i].2.clear();
                })
            }),
        ),
        (
            "ctr more counters than units",
            ctr_with(|p| reencode(&p.ctr, synth::ULEB, false, |r| r[0].2.extend([5, 6]))),
        ),
        (
            "ctr unknown pkg index",
            ctr_with(|p| reencode(&p.ctr, synth::ULEB, false, |r| r.push((77, 0, vec![1])))),
        ),
        (
            "ctr func index == nf",
            ctr_with(|p| {
                let m = MetaFile::decode(&p.meta).unwrap();
                let nf = m.packages[0].funcs.len() as u32;
                reencode(&p.ctr, synth::ULEB, false, |r| r.push((0, nf, vec![1])))
            }),
        ),
        (
            "ctr func index > nf",
            ctr_with(|p| {
                let m = MetaFile::decode(&p.meta).unwrap();
                let nf = m.packages[0].funcs.len() as u32;
                reencode(&p.ctr, synth::ULEB, false, |r| r.push((0, nf + 3, vec![1])))
            }),
        ),
        (
            "ctr duplicate record",
            ctr_with(|p| {
                reencode(&p.ctr, synth::ULEB, false, |r| {
                    let x = r[0].clone();
                    r.push(x);
                })
            }),
        ),
        (
            "ctr huge counts",
            ctr_with(|p| {
                reencode(&p.ctr, synth::ULEB, false, |r| {
                    r.iter_mut()
                        .for_each(|x| x.2.iter_mut().for_each(|v| *v = u32::MAX - 1))
                })
            }),
        ),
        (
            "two ctr files summing past 2^32",
            Box::new(|p: &PodCopy| {
                let big = reencode(&p.ctr, synth::ULEB, false, |r| {
                    r.iter_mut()
                        .for_each(|x| x.2.iter_mut().for_each(|v| *v = 0xF000_0000))
                });
                let n2 = p.ctr_name.rsplit_once('.').unwrap().0.to_string() + ".1";
                vec![
                    (p.meta_name.clone(), p.meta.clone()),
                    (p.ctr_name.clone(), big.clone()),
                    (n2, big),
                ]
            }),
        ),
        (
            "duplicate counter file",
            Box::new(|p: &PodCopy| {
                let n2 = p.ctr_name.rsplit_once('.').unwrap().0.to_string() + ".2";
                vec![
                    (p.meta_name.clone(), p.meta.clone()),
                    (p.ctr_name.clone(), p.ctr.clone()),
                    (n2, p.ctr.clone()),
                ]
            }),
        ),
        (
            "longer record then shorter across files",
            Box::new(|p: &PodCopy| {
                let long = reencode(&p.ctr, synth::ULEB, false, |r| r[0].2.push(1));
                let n2 = p.ctr_name.rsplit_once('.').unwrap().0.to_string() + ".9";
                vec![
                    (p.meta_name.clone(), p.meta.clone()),
                    (p.ctr_name.clone(), long),
                    (n2, p.ctr.clone()),
                ]
            }),
        ),
        (
            "orphan name with extra dot",
            Box::new(|p: &PodCopy| {
                vec![
                    (p.meta_name.clone(), p.meta.clone()),
                    (p.ctr_name.clone() + ".5", p.ctr.clone()),
                ]
            }),
        ),
        (
            "ctr dup arg key",
            ctr_with(|p| {
                let c = CounterFile::decode(&p.ctr).unwrap();
                let mut args: Vec<(&str, &str)> = c
                    .args
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                args.push(("argc", "1"));
                let recs: Vec<synth::Rec> = c
                    .funcs
                    .iter()
                    .map(|f| (f.pkg, f.func, f.counters.clone()))
                    .collect();
                synth::counters(synth::ULEB, false, &args, &recs)
            }),
        ),
        (
            "ctr non-integer argc",
            ctr_with(|p| {
                let c = CounterFile::decode(&p.ctr).unwrap();
                let args: Vec<(&str, &str)> = c
                    .args
                    .iter()
                    .map(|(k, v)| (k.as_str(), if k == "argc" { "two" } else { v.as_str() }))
                    .collect();
                let recs: Vec<synth::Rec> = c
                    .funcs
                    .iter()
                    .map(|f| (f.pkg, f.func, f.counters.clone()))
                    .collect();
                synth::counters(synth::ULEB, false, &args, &recs)
            }),
        ),
    ]
}

#[test]
fn malformed_and_unusual_files_like_go() {
    // Go exit 0: covfleet must print the same. Go error (exit 1): covfleet
    // exits 1 naming the file. Go panic (exit 2): covfleet must reject the
    // input cleanly (exit 1, naming a file), never crash.
    let mut r = Report::default();
    let mut notes = Vec::new();
    for (name, make) in mutations() {
        let p = pod_copy();
        let files = make(&p);
        for (n, bytes) in &files {
            fs::write(p.dir.path().join(n), bytes).unwrap();
        }
        let dir = p.dir.path().to_path_buf();
        // Whether Go's own reader (textfmt) crashes on this input.
        let mut go_reader_crashed = false;
        for sub in ["textfmt", "percent", "debugdump", "merge"] {
            let case = format!("{sub}: {name}");
            let mut args = vec![sub.to_string(), i_arg(std::slice::from_ref(&dir))];
            if sub == "textfmt" || sub == "merge" {
                args.push(format!("-o={OUT}"));
            }
            let out_is_dir = sub == "merge";
            r.cases += 1;
            let scratch = tempfile::tempdir().unwrap();
            let g = run_tool(Tool::Go, &args, scratch.path(), out_is_dir);
            let c = run_tool(Tool::Covfleet, &args, scratch.path(), out_is_dir);
            if c.stderr.contains("panicked at") || !matches!(c.code, Some(0 | 1)) {
                r.fail(
                    &case,
                    format!("covfleet crashed: {:?} {}", c.code, c.stderr),
                );
                continue;
            }
            // Go "crashes" with a panic or a fatal runtime error (both print goroutines).
            let go_crashed = g.code == Some(2) && g.stderr.contains("goroutine ");
            if sub == "textfmt" {
                go_reader_crashed = go_crashed;
            }
            if sub == "merge" && g.code == Some(0) && go_reader_crashed && c.code == Some(1) {
                // Go's merge copies a meta file its own reader crashes on;
                // covfleet may reject it instead, naming the file.
                if !files.iter().any(|(n, _)| c.stderr.contains(n.as_str())) {
                    r.fail(
                        &case,
                        format!("covfleet's error names no file: {}", c.stderr.trim()),
                    );
                }
                continue;
            }
            let norm = |t: &str, tool: Tool| {
                t.replace(&*out_path(tool, scratch.path()).to_string_lossy(), "{OUT}")
            };
            match g.code {
                Some(0) => {
                    let mut sub_r = Report::default();
                    if sub == "merge" {
                        compare_merge(&mut sub_r, &case, &args);
                    } else {
                        let cmp = if sub == "debugdump" {
                            Cmp::Debugdump
                        } else {
                            Cmp::Exact
                        };
                        sub_r.compare(&case, &args, cmp, true);
                    }
                    r.failures.extend(sub_r.failures);
                }
                _ if go_crashed || g.code == Some(1) => {
                    let same = norm(&g.stderr, Tool::Go) == norm(&c.stderr, Tool::Covfleet);
                    if c.code != Some(1) {
                        r.fail(
                            &case,
                            format!(
                                "go {} ({}), covfleet exit {:?}: {}",
                                if go_crashed { "crashed" } else { "failed" },
                                g.stderr.lines().next().unwrap_or(""),
                                c.code,
                                c.stderr
                            ),
                        );
                    } else if !same && !files.iter().any(|(n, _)| c.stderr.contains(n.as_str())) {
                        r.fail(
                            &case,
                            format!("covfleet's error names no file: {}", c.stderr.trim()),
                        );
                    } else if !same {
                        notes.push(format!(
                            "[{case}]\n    go:       {:?}\n    covfleet: {:?}",
                            g.stderr.lines().next().unwrap_or(""),
                            c.stderr.trim()
                        ));
                    }
                }
                other => r.fail(&case, format!("unexpected go exit {other:?}: {}", g.stderr)),
            }
        }
    }
    if !notes.is_empty() {
        eprintln!(
            "{} wording differences on rejected input (not failures), e.g.:\n{}",
            notes.len(),
            notes
                .iter()
                .step_by(7)
                .take(6)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    r.finish("malformed files");
}

#[test]
fn relative_and_unclean_paths_match_go() {
    // Go prints paths as filepath.Join(dir, name) (cleaned) and sorts pods by
    // that string: run from data/ with relative, unclean spellings.
    let f = fixtures();
    let mut r = Report {
        cwd: Some(f.data("")),
        ..Report::default()
    };
    for i in [
        "-i=count/app/",
        "-i=./count/pods,count/../count/tool",
        "-i=count//appx/.,count/app",
        "-i=count/empty/,count/orphans",
    ] {
        for sub in ["debugdump", "percent", "pkglist"] {
            let cmp = if sub == "debugdump" {
                Cmp::Debugdump
            } else {
                Cmp::Exact
            };
            r.compare(&format!("{sub} {i}"), &s(&[sub, i]), cmp, false);
        }
        r.compare(
            &format!("textfmt {i}"),
            &s(&["textfmt", i, &format!("-o={OUT}")]),
            Cmp::Exact,
            true,
        );
    }
    // Errors name the path as given.
    r.compare(
        "missing relative dir",
        &s(&["percent", "-i=count/nope/"]),
        Cmp::Exact,
        false,
    );
    r.finish("relative paths");
}

/// xorshift64*: a deterministic generator for the mutation test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Whether Go accepts malformed input only by accident, in which case
/// covfleet rejecting it is right: Go's reader swallows an error from
/// `processPackage` (its `-h` flag turns that into a panic), or Go reads past
/// the end of a package blob into whatever follows it in memory (its output
/// changes when bytes are appended to the meta file, which no blob covers).
fn go_tolerates_by_accident(args: &[String], dir: &Path, meta: Option<(&str, &[u8])>) -> bool {
    let scratch = tempfile::tempdir().unwrap();
    let mut with_h = args.to_vec();
    with_h.insert(1, "-h".into());
    let g = run_tool(Tool::Go, &with_h, scratch.path(), false);
    if g.code != Some(0) {
        return true;
    }
    let Some((name, bytes)) = meta else {
        return false;
    };
    // Go reads each blob into a buffer reused across packages and slices
    // past its length (within capacity), so a blob whose strings or records
    // overrun its end silently reads the previous package's bytes: covfleet's
    // "unexpected EOF" there is the correct answer.
    let c = run_tool(Tool::Covfleet, args, scratch.path(), false);
    if c.stderr.contains("from meta-file") && c.stderr.contains("unexpected EOF") {
        return true;
    }
    let copy = tempfile::tempdir().unwrap();
    for n in names(dir) {
        fs::copy(dir.join(&n), copy.path().join(&n)).unwrap();
    }
    let mut padded = bytes.to_vec();
    padded.extend(std::iter::repeat_n(0xa5, 4096));
    fs::write(copy.path().join(name), padded).unwrap();
    let mut args2 = args.to_vec();
    args2[1] = i_arg(&[copy.path().to_path_buf()]);
    let a = run_tool(Tool::Go, args, scratch.path(), false);
    let b = run_tool(Tool::Go, &args2, scratch.path(), false);
    (a.code, a.file) != (b.code, b.file)
}

#[test]
fn random_mutations_agree_with_go() {
    // Differential fuzzing against Go (format notes §5): random byte edits of
    // a real pod's files. Where Go's textfmt succeeds, covfleet must print the
    // same; where Go rejects the input (error or crash), covfleet must reject
    // it too (exit 1) without crashing. COVDATA_MUTATIONS sets the count,
    // COVDATA_MUTATION_SEED the seed.
    let n: usize = std::env::var("COVDATA_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("COVDATA_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed | 1);
    // COVDATA_MUTATION_POD picks another fixture dir (default count/tool).
    let pod = std::env::var("COVDATA_MUTATION_POD").unwrap_or_else(|_| "count/tool".into());
    // COVDATA_MUTATION_SUB picks the subcommand (default textfmt).
    let sub = std::env::var("COVDATA_MUTATION_SUB").unwrap_or_else(|_| "textfmt".into());
    let mut r = Report::default();
    for k in 0..n {
        let p = pod_copy_of(&pod);
        let on_meta = rng.below(3) == 0;
        let mut data = if on_meta {
            p.meta.clone()
        } else {
            p.ctr.clone()
        };
        let mut what = Vec::new();
        for _ in 0..1 + rng.below(3) {
            match rng.below(6) {
                0 if data.len() > 1 => {
                    let at = rng.below(data.len());
                    data.truncate(at.max(1));
                    what.push(format!("truncate {at}"));
                }
                1 => {
                    let at = rng.below(data.len() + 1);
                    let b = rng.next() as u8;
                    data.insert(at, b);
                    what.push(format!("insert {b:#x}@{at}"));
                }
                _ if !data.is_empty() => {
                    // Bias towards the headers, where the structure is.
                    let lim = if rng.below(2) == 0 {
                        data.len().min(128)
                    } else {
                        data.len()
                    };
                    let at = rng.below(lim);
                    let b = match rng.below(4) {
                        0 => 0,
                        1 => 0xff,
                        2 => data[at] ^ (1 << rng.below(8)),
                        _ => rng.next() as u8,
                    };
                    data[at] = b;
                    what.push(format!("set {b:#x}@{at}"));
                }
                _ => {}
            }
        }
        let (mn, cn) = (&p.meta_name, &p.ctr_name);
        fs::write(p.dir.path().join(mn), if on_meta { &data } else { &p.meta }).unwrap();
        fs::write(p.dir.path().join(cn), if on_meta { &p.ctr } else { &data }).unwrap();
        let case = format!(
            "#{k} {} {}",
            if on_meta { "meta" } else { "counters" },
            what.join(", ")
        );
        if sub == "merge" {
            // Exploration only: stderr wording of rejected input is compared
            // exactly here.
            let a = vec![
                sub.clone(),
                i_arg(&[p.dir.path().to_path_buf()]),
                format!("-o={OUT}"),
            ];
            compare_merge(&mut r, &case, &a);
            continue;
        }
        let args = if sub == "textfmt" {
            vec![
                sub.clone(),
                i_arg(&[p.dir.path().to_path_buf()]),
                format!("-o={OUT}"),
            ]
        } else {
            vec![sub.clone(), i_arg(&[p.dir.path().to_path_buf()])]
        };
        r.cases += 1;
        let scratch = tempfile::tempdir().unwrap();
        let g = run_tool(Tool::Go, &args, scratch.path(), false);
        let c = run_tool(Tool::Covfleet, &args, scratch.path(), false);
        if c.stderr.contains("panicked at") || !matches!(c.code, Some(0 | 1)) {
            r.fail(
                &case,
                format!("covfleet crashed: {:?} {}", c.code, c.stderr),
            );
            continue;
        }
        if c.code.is_none() {
            r.fail(&case, "covfleet timed out".into());
            continue;
        }
        // A Go hang (None) counts as a rejection, like a crash.
        match (g.code, c.code) {
            (Some(0), Some(0)) => {
                if g.stderr != c.stderr {
                    r.fail(
                        &case,
                        format!("stderr: go {:?} covfleet {:?}", g.stderr, c.stderr),
                    );
                }
                if let (Some(gf), Some(cf)) = (&g.file, &c.file)
                    && let Some(d) = textfmt_diff(gf, cf)
                {
                    r.fail(&case, format!("textfmt: {d}"));
                }
                let (gs, cs) = if sub == "debugdump" {
                    (mask_debugdump(&g.stdout), mask_debugdump(&c.stdout))
                } else {
                    (g.stdout.clone(), c.stdout.clone())
                };
                if gs != cs {
                    r.fail(&case, format!("stdout: {}", first_diff(&gs, &cs)));
                }
            }
            (Some(0), _)
                if !go_tolerates_by_accident(
                    &args,
                    p.dir.path(),
                    on_meta.then_some((mn.as_str(), &data[..])),
                ) =>
            {
                r.fail(
                    &case,
                    format!("go accepts, covfleet rejects: {}", c.stderr.trim()),
                );
            }
            (Some(0), _) => {}
            (_, Some(0)) => r.fail(
                &case,
                format!(
                    "go rejects ({}), covfleet accepts",
                    g.stderr.lines().next().unwrap_or("")
                ),
            ),
            _ => {}
        }
    }
    r.finish("random mutations");
}

/// Writes a synthetic pod (meta file + one counter file per record list)
/// with header hash `tag` into `dir`.
fn write_synthetic_pod(
    dir: &Path,
    tag: u8,
    pkgs: &[synth::TPkg],
    mode: u8,
    files: &[Vec<synth::Rec>],
) {
    let hash = [tag; 16];
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let mut m = synth::meta(pkgs, mode, 1);
    m[24..40].copy_from_slice(&hash);
    fs::write(dir.join(format!("covmeta.{hex}")), m).unwrap();
    for (i, recs) in files.iter().enumerate() {
        let args = [
            ("GOARCH", "amd64"),
            ("GOOS", "linux"),
            ("argc", "1"),
            ("argv0", "./x"),
        ];
        let mut c = synth::counters(synth::ULEB, false, &args, recs);
        c[8..24].copy_from_slice(&hash);
        fs::write(
            dir.join(format!("covcounters.{hex}.{}.{}", 100 + i, 1000 + i)),
            c,
        )
        .unwrap();
    }
}

fn tfunc(name: &str, file: &str, units: &[[u32; 5]], lit: bool) -> synth::TFunc {
    synth::TFunc {
        name: name.into(),
        file: file.into(),
        units: units.to_vec(),
        lit,
    }
}

fn tpkg(path: &str, funcs: Vec<synth::TFunc>) -> synth::TPkg {
    let name = path.rsplit('/').next().unwrap().to_string();
    synth::TPkg {
        path: path.into(),
        name,
        module: "example.com/syn".into(),
        funcs,
    }
}

/// Runs every read-only subcommand and the merge family on `dir`.
fn compare_all(r: &mut Report, label: &str, dir: &Path, with_func: bool) {
    let dirs = vec![dir.to_path_buf()];
    r.compare(
        &format!("{label} textfmt"),
        &s(&["textfmt", &i_arg(&dirs), &format!("-o={OUT}")]),
        Cmp::Exact,
        true,
    );
    let mut subs = vec!["percent", "pkglist"];
    if with_func {
        subs.push("func");
    }
    for sub in subs {
        r.compare(
            &format!("{label} {sub}"),
            &s(&[sub, &i_arg(&dirs)]),
            Cmp::Exact,
            false,
        );
    }
    r.compare(
        &format!("{label} debugdump"),
        &s(&["debugdump", &i_arg(&dirs)]),
        Cmp::Debugdump,
        false,
    );
    compare_merge(
        r,
        &format!("{label} merge"),
        &s(&["merge", &i_arg(&dirs), &format!("-o={OUT}")]),
    );
    compare_merge(
        r,
        &format!("{label} merge -pcombine"),
        &s(&["merge", "-pcombine", &i_arg(&dirs), &format!("-o={OUT}")]),
    );
}

#[test]
fn synthetic_textfmt_ties_across_pods_match_go() {
    // Two builds whose package has the same unit ranges in differently named
    // functions ("A" in one, "B" in the other): textfmt prints tied lines
    // whose order Go leaves unspecified (compared as a set). `func` is left
    // out: its grouping follows that unspecified order.
    let a = [
        tpkg(
            "example.com/syn/p",
            vec![
                tfunc(
                    "A",
                    "example.com/syn/p/a.go",
                    &[[3, 10, 5, 2, 2], [4, 1, 4, 9, 1], [7, 1, 7, 1, 0]],
                    false,
                ),
                tfunc(
                    "init",
                    "example.com/syn/p/a.go",
                    &[[10, 1, 11, 2, 1]],
                    false,
                ),
                tfunc(
                    "func.L12.C5",
                    "example.com/syn/p/a.go",
                    &[[12, 5, 12, 20, 1]],
                    true,
                ),
                tfunc("init", "example.com/syn/p/b.go", &[[1, 1, 2, 2, 3]], false),
            ],
        ),
        tpkg("example.com/syn/q", vec![]),
    ];
    let mut b = a.clone();
    b[0].funcs[0].name = "B".into();
    let tmp = tempfile::tempdir().unwrap();
    let mut r = Report {
        ties: true,
        ..Report::default()
    };
    for (mode, mname) in [(1u8, "set"), (2, "count"), (3, "atomic")] {
        let d = tmp.path().join(mname);
        fs::create_dir_all(&d).unwrap();
        write_synthetic_pod(
            &d,
            0x11,
            &a,
            mode,
            &[
                vec![(0, 0, vec![3, 0, 1]), (0, 1, vec![1])],
                vec![(0, 0, vec![1, 1, 0]), (0, 2, vec![4])],
            ],
        );
        write_synthetic_pod(
            &d,
            0x22,
            &b,
            mode,
            &[vec![(0, 0, vec![5, 0, 2]), (0, 3, vec![1])]],
        );
        compare_all(&mut r, mname, &d, false);
    }
    r.finish("synthetic ties");
}

#[test]
fn synthetic_odd_names_match_go() {
    // Names only a hand-made file has: tabs and vertical tabs (tabwriter cell
    // ends), a raw 0xFF byte (tabwriter's escape, and not UTF-8), spaces and
    // colons in file names; plus same-named functions around a literal,
    // zero-statement units and a function with a repeated unit.
    let ff = synth::RAW_FF;
    let pkgs = [
        tpkg(
            "example.com/syn/p",
            vec![
                tfunc(
                    "A",
                    "example.com/syn/p/a.go",
                    &[[3, 10, 5, 2, 2], [7, 1, 7, 1, 0]],
                    false,
                ),
                tfunc(
                    "init",
                    "example.com/syn/p/a.go",
                    &[[10, 1, 11, 2, 1]],
                    false,
                ),
                tfunc(
                    "func.L12.C5",
                    "example.com/syn/p/a.go",
                    &[[12, 5, 12, 20, 1]],
                    true,
                ),
                tfunc("init", "example.com/syn/p/b.go", &[[1, 1, 2, 2, 3]], false),
                tfunc(
                    "T.M",
                    "example.com/syn/p/a.go",
                    &[[20, 1, 21, 1, 1], [20, 1, 21, 1, 1]],
                    false,
                ),
            ],
        ),
        tpkg(
            "example.com/syn/tab",
            vec![tfunc(
                "we\tird\u{b}name",
                "example.com/syn/tab/c d:e.go",
                &[[1, 1, 1, 50, 1]],
                false,
            )],
        ),
        tpkg(
            "example.com/syn/ff",
            vec![tfunc(
                &format!("bad{ff}utf8"),
                &format!("example.com/syn/ff/{ff}.go"),
                &[[2, 2, 3, 3, 4]],
                false,
            )],
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut r = Report::default();
    for (mode, mname) in [(1u8, "set"), (2, "count")] {
        let d = tmp.path().join(mname);
        fs::create_dir_all(&d).unwrap();
        write_synthetic_pod(
            &d,
            0x33,
            &pkgs,
            mode,
            &[vec![
                (0, 0, vec![3, 1]),
                (0, 1, vec![1]),
                (0, 4, vec![1, 0]),
                (1, 0, vec![9]),
                (2, 0, vec![2]),
            ]],
        );
        // Each odd package on its own too, so one problem does not hide another.
        for (k, pkg) in [
            "example.com/syn/p",
            "example.com/syn/tab",
            "example.com/syn/ff",
        ]
        .iter()
        .enumerate()
        {
            let dirs = vec![d.clone()];
            for sub in ["func", "percent"] {
                r.compare(
                    &format!("{mname} {sub} -pkg={k}"),
                    &s(&[sub, &i_arg(&dirs), &format!("-pkg={pkg}")]),
                    Cmp::Exact,
                    false,
                );
            }
            r.compare(
                &format!("{mname} textfmt -pkg={k}"),
                &s(&[
                    "textfmt",
                    &i_arg(&dirs),
                    &format!("-pkg={pkg}"),
                    &format!("-o={OUT}"),
                ]),
                Cmp::Exact,
                true,
            );
        }
        compare_all(&mut r, mname, &d, true);
    }
    r.finish("synthetic odd names");
}
