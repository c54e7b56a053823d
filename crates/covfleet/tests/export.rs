//! `covfleet export` and `covfleet report --func` on real coverage, each
//! read back by an established tool run on covfleet's Go profile:
//! `go tool covdata textfmt` (Go profile, byte-for-byte), `go tool cover
//! -func` (report --func, byte-for-byte), gcov2lcov (lcov, byte-for-byte
//! once its map-ordered records are sorted), gocover-cobertura (Cobertura,
//! byte-for-byte except the timestamp and the absolute source root).

mod analysis_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use analysis_support::*;

struct Setup {
    fx: Fixture,
    dir: PathBuf,
    /// The host entry (two processes: they add up).
    host: PathBuf,
}

fn setup() -> Setup {
    let fx = Fixture::new();
    let dir = fx.collection("c");
    let host = entry(&dir, "h1", None);
    exercise(&fx.bin, &host, &["-mode", "cart", "-n", "3"]);
    exercise(&fx.bin, &host, &["-mode", "price"]);
    let p1 = entry(&dir, "p1", Some(("shop", "api-7d9f8b6c54-x2kqz")));
    exercise(&fx.bin, &p1, &["-mode", "stack"]);
    exercise(&fx.bin, &p1, &["-mode", "all"]);
    compile(&dir);
    Setup { fx, dir, host }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `go tool covdata textfmt` over a directory, without the injected server.
fn textfmt(dir: &Path) -> String {
    let out = dir.parent().unwrap().join(format!(
        "{}.textfmt",
        dir.file_name().unwrap().to_string_lossy()
    ));
    run(Command::new("go").args(["tool", "covdata", "textfmt", "-i", s(dir), "-o", s(&out)]));
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("zz_covfleet"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn lcov_records(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .split_inclusive("end_of_record\n")
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn exports_match_their_oracles() {
    let st = setup();
    let dir = s(&st.dir);
    let out = st.fx.tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();

    // Go profile: byte-for-byte what `go tool covdata textfmt` writes.
    let prof = out.join("host.out");
    covfleet_ok(&[
        "export",
        dir,
        "--format",
        "go",
        "--owner",
        "_host_/*",
        "-o",
        s(&prof),
    ]);
    let ours = std::fs::read_to_string(&prof).unwrap();
    assert_eq!(ours, textfmt(&st.host));
    assert!(ours.contains("shop/cart.go:") && !ours.contains("zz_covfleet"));

    // report --func: byte-for-byte what `go tool cover -func` prints on it.
    let func = covfleet_ok(&[
        "report",
        "--func",
        "--collection",
        dir,
        "--owner",
        "_host_/*",
        "--source",
        s(&st.fx.src),
    ]);
    let go_func = run(go(&st.fx.src).args(["tool", "cover", "-func", s(&prof)]));
    assert_eq!(func, go_func);
    assert!(func.contains("price.go:5:\tDiscount"), "{func}");

    // lcov: gcov2lcov's records, in path order.
    let lcov = out.join("host.info");
    covfleet_ok(&[
        "export",
        "--collection",
        dir,
        "--format",
        "lcov",
        "--owner",
        "_host_/*",
        "--source",
        s(&st.fx.src),
        "-o",
        s(&lcov),
    ]);
    let gcov2lcov = go_oracle("github.com/jandelgado/gcov2lcov", "v1.1.1");
    let theirs = run(Command::new(&gcov2lcov)
        .args(["-infile", s(&prof)])
        .current_dir(&st.fx.src)
        .env("GOFLAGS", ""));
    let ours = std::fs::read_to_string(&lcov).unwrap();
    assert_eq!(lcov_records(&ours), lcov_records(&theirs));
    assert_eq!(ours.concat_records_sorted(), ours, "records sorted by path");
    assert!(ours.contains("SF:shop/cart.go\n"));

    // Cobertura: gocover-cobertura's XML but for the timestamp and source root.
    let cob = out.join("host.xml");
    covfleet_ok(&[
        "export",
        dir,
        "--format",
        "cobertura",
        "--owner",
        "_host_/*",
        "--source",
        s(&st.fx.src),
        "-o",
        s(&cob),
    ]);
    let cobertura = go_oracle("github.com/boumenot/gocover-cobertura", "v1.5.0");
    let theirs = run(Command::new(&cobertura)
        .stdin(std::fs::File::open(&prof).unwrap())
        .current_dir(&st.fx.src)
        .env("GOFLAGS", ""));
    let norm = |x: &str| {
        let mut o = String::new();
        for l in x.lines() {
            let l = match l.find(" timestamp=\"") {
                Some(i) => {
                    let end = l[i + 12..].find('"').unwrap() + i + 12;
                    format!("{} timestamp=\"T\"{}", &l[..i], &l[end + 1..])
                }
                None => l.to_string(),
            };
            let l = if l.trim_start().starts_with("<source>") {
                "<source>ROOT</source>".to_string()
            } else {
                l
            };
            o.push_str(&l);
            o.push('\n');
        }
        o
    };
    let ours = std::fs::read_to_string(&cob).unwrap();
    assert_eq!(norm(&ours), norm(&theirs));
    assert!(
        ours.contains("<class name=\"Stack[T]\" filename=\"shop/stack.go\""),
        "{ours}"
    );
    assert!(ours.contains("<method name=\"Round\""));
}

trait SortedRecords {
    fn concat_records_sorted(&self) -> String;
}

impl SortedRecords for String {
    fn concat_records_sorted(&self) -> String {
        let mut recs: Vec<(&str, &str)> = self
            .split_inclusive("end_of_record\n")
            .map(|r| (r.lines().nth(1).unwrap_or(""), r))
            .collect();
        recs.sort();
        recs.into_iter().map(|(_, r)| r).collect()
    }
}

#[test]
fn codecov_reports_one_flag_per_owner() {
    let st = setup();
    let out = st.fx.tmp.path().join("codecov");
    covfleet_ok(&[
        "export",
        s(&st.dir),
        "--format",
        "codecov",
        "--source",
        s(&st.fx.src),
        "-o",
        s(&out),
    ]);
    let script = std::fs::read_to_string(out.join("codecov-upload.sh")).unwrap();
    let flag_re = |f: &str| {
        !f.is_empty()
            && f.len() <= 45
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let mut flags = Vec::new();
    for line in script.lines().filter(|l| l.starts_with("codecovcli")) {
        let flag = line.split('\'').nth(1).unwrap();
        let file = line.split('\'').nth(3).unwrap();
        assert!(flag_re(flag), "{flag}");
        flags.push(flag.to_string());
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(file)).unwrap()).unwrap();
        let cov = v["coverage"].as_object().expect("coverage object");
        assert!(!cov.is_empty());
        for (path, lines) in cov {
            assert!(
                st.fx.src.join(path).is_file(),
                "{path} is repository-relative"
            );
            for (line, val) in lines.as_object().unwrap() {
                assert!(line.parse::<u32>().unwrap() > 0);
                assert!(
                    val.is_u64()
                        || val.as_str().is_some_and(|x| {
                            let (a, b) = x.split_once('/').unwrap();
                            a.parse::<u32>().unwrap() < b.parse::<u32>().unwrap()
                        }),
                    "{path}:{line} {val}"
                );
            }
        }
    }
    flags.sort();
    assert_eq!(flags, ["_host_-analysis", "shop-api"]);

    // Codecov and lcov agree on which lines ran.
    let lcov = st.fx.tmp.path().join("api.info");
    covfleet_ok(&[
        "export",
        s(&st.dir),
        "--format",
        "lcov",
        "--owner",
        "shop/api",
        "--source",
        s(&st.fx.src),
        "-o",
        s(&lcov),
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("shop-api.json")).unwrap()).unwrap();
    let mut sf = String::new();
    let mut checked = 0;
    for l in std::fs::read_to_string(&lcov).unwrap().lines() {
        if let Some(p) = l.strip_prefix("SF:") {
            sf = p.to_string();
        } else if let Some(da) = l.strip_prefix("DA:") {
            let (line, n) = da.split_once(',').unwrap();
            let val = &v["coverage"][&sf][line];
            let ran = val.as_u64().is_some_and(|x| x > 0) || val.is_string();
            assert_eq!(ran, n != "0", "{sf}:{line}");
            checked += 1;
        }
    }
    assert!(checked > 20);
}

#[test]
fn merged_owners_add_up_like_textfmt_over_all_inputs() {
    let st = setup();
    let out = st.fx.tmp.path().join("all.out");
    covfleet_ok(&[
        "export",
        s(&st.dir),
        "--format",
        "go",
        "--merge-owners",
        "-o",
        s(&out),
    ]);
    // One pod of one process per owner here, so adding owners is adding inputs.
    let both = st.dir.join("coverage");
    let mut inputs = String::new();
    for e in ["h1", "p1"] {
        inputs.push_str(s(&both.join(e)));
        inputs.push(',');
    }
    let go_out = st.fx.tmp.path().join("go-all.out");
    run(Command::new("go").args([
        "tool",
        "covdata",
        "textfmt",
        "-i",
        inputs.trim_end_matches(','),
        "-o",
        s(&go_out),
    ]));
    let want: String = std::fs::read_to_string(go_out)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("zz_covfleet"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), want);

    // Without --merge-owners, two owners need a directory.
    let (code, _, err) = covfleet(&["export", s(&st.dir), "--format", "go", "-o", s(&out)]);
    assert_eq!(code, 2, "{err}");
    let d = st.fx.tmp.path().join("per-owner");
    covfleet_ok(&["export", s(&st.dir), "--format", "go", "-o", s(&d)]);
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
    // Unknown formats and owners are usage errors.
    assert_eq!(
        covfleet(&["export", s(&st.dir), "--format", "x", "-o", s(&d)]).0,
        2
    );
    assert_eq!(
        covfleet(&[
            "export",
            s(&st.dir),
            "--format",
            "go",
            "--owner",
            "nope",
            "-o",
            s(&d)
        ])
        .0,
        2
    );
}
