//! `covfleet patch` on a real git repository: a change that edits a file,
//! renames another while changing it, deletes a third and edits a file
//! without coverage; the collection comes from the HEAD build. Which changed
//! lines ran is checked against `go tool covdata textfmt` of the same runs.

mod analysis_support;

use std::path::Path;
use std::process::Command;

use analysis_support::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// textfmt blocks of a directory: (file, start line, end line, count).
fn blocks(dir: &Path) -> Vec<(String, u32, u32, u64)> {
    let out = dir.with_extension("textfmt");
    run(Command::new("go").args(["tool", "covdata", "textfmt", "-i", s(dir), "-o", s(&out)]));
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (file, rest) = l.rsplit_once(':').unwrap();
            let mut it = rest.split([',', ' ']);
            let sl = it
                .next()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let el = it
                .next()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let c = it.nth(1).unwrap().parse().unwrap();
            (file.to_string(), sl, el, c)
        })
        .collect()
}

/// (coverable, run) of some lines of a file, per the Go tool's blocks.
fn oracle(bl: &[(String, u32, u32, u64)], file: &str, lines: &[u32]) -> (u64, u64, Vec<u32>) {
    let (mut cov, mut ran, mut missed) = (0, 0, Vec::new());
    for l in lines {
        let spans: Vec<u64> = bl
            .iter()
            .filter(|(f, sl, el, _)| f == file && sl <= l && l <= el)
            .map(|b| b.3)
            .collect();
        if spans.is_empty() {
            continue;
        }
        cov += 1;
        if spans.iter().any(|c| *c > 0) {
            ran += 1;
        } else {
            missed.push(*l);
        }
    }
    (cov, ran, missed)
}

#[test]
fn patch_coverage_on_a_real_git_repository() {
    let fx = Fixture::new();
    let src = &fx.src;
    // BASE: one more commit with a file to delete and a doc.
    std::fs::write(
        src.join("shop/old.go"),
        "package shop\n\n// Old goes away.\nfunc Old() int { return 1 }\n",
    )
    .unwrap();
    std::fs::write(src.join("NOTES.md"), "# notes\n").unwrap();
    git(src, &["add", "-A"]);
    git(src, &["commit", "-qm", "base"]);
    let base = git(src, &["rev-parse", "HEAD"]).trim().to_string();

    // HEAD: edit price.go, rename stack.go (and add to it), delete old.go, edit the doc.
    let price = src.join("shop/price.go");
    let t = std::fs::read_to_string(&price).unwrap().replace(
        "\tif pct > 50 {\n\t\tpct = 50\n\t}\n",
        "\tif pct > 50 {\n\t\tpct = 50\n\t}\n\tif pct < 0 {\n\t\tpct = 0\n\t}\n\tif amount > 1000 {\n\t\treturn amount - amount*pct/100 - 1\n\t}\n",
    );
    std::fs::write(&price, t).unwrap();
    git(src, &["mv", "shop/stack.go", "shop/stack2.go"]);
    let mut st = std::fs::read_to_string(src.join("shop/stack2.go")).unwrap();
    st.push_str("\n// Peek is new and never called.\nfunc (s *Stack[T]) Peek() T {\n\treturn s.items[len(s.items)-1]\n}\n");
    std::fs::write(src.join("shop/stack2.go"), st).unwrap();
    git(src, &["rm", "-q", "shop/old.go"]);
    std::fs::write(src.join("NOTES.md"), "# notes\n\nmore\n").unwrap();
    git(src, &["add", "-A"]);
    git(src, &["commit", "-qm", "head"]);

    // The HEAD build, run with the price requests.
    let bin = fx.tmp.path().join("bin/head");
    Fixture::build(src, &bin);
    let dir = fx.collection("c");
    let e = entry(&dir, "h1", None);
    exercise(&bin, &e, &["-mode", "price"]);
    exercise(&bin, &e, &["-mode", "stack"]);
    compile(&dir);

    let json = covfleet_ok(&[
        "patch",
        s(&dir),
        "--repo",
        s(src),
        "--base",
        &base,
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    let changes = r["changes"].as_array().unwrap();
    let find = |p: &str| {
        changes
            .iter()
            .find(|c| c["new_path"] == p || c["old_path"] == p)
            .unwrap_or_else(|| panic!("{p} not in {json}"))
    };
    assert_eq!(
        find("shop/price.go")["lines"],
        serde_json::json!([13, 14, 15, 16, 17, 18])
    );
    let ren = find("shop/stack2.go");
    assert_eq!(
        (&ren["status"], &ren["old_path"]),
        (&"renamed".into(), &"shop/stack.go".into())
    );
    let peek: Vec<u32> = (34..=38).collect();
    assert_eq!(ren["lines"], serde_json::json!(peek));
    assert_eq!(find("shop/old.go")["status"], "deleted");
    assert_eq!(r["files_without_coverage"], serde_json::json!(["NOTES.md"]));

    // Against the Go tool's blocks of the same runs.
    let bl = blocks(&e);
    let (pc, pr, pm) = oracle(
        &bl,
        &format!("{MODULE}/shop/price.go"),
        &[13, 14, 15, 16, 17, 18],
    );
    let (sc, sr, sm) = oracle(&bl, &format!("{MODULE}/shop/stack2.go"), &peek);
    assert!(
        pc > 0 && pr > 0 && pr < pc && sc > 0 && sr == 0,
        "{pc} {pr} {sc} {sr}"
    );
    let files = r["files"].as_array().unwrap();
    let f = |p: &str| files.iter().find(|f| f["path"] == p).unwrap();
    assert_eq!(
        (&f("shop/price.go")["coverable"], &f("shop/price.go")["run"]),
        (&pc.into(), &pr.into())
    );
    assert_eq!(f("shop/price.go")["missed_lines"], serde_json::json!(pm));
    assert_eq!(
        (
            &f("shop/stack2.go")["coverable"],
            &f("shop/stack2.go")["run"]
        ),
        (&sc.into(), &0.into())
    );
    assert_eq!(f("shop/stack2.go")["missed_lines"], serde_json::json!(sm));
    assert_eq!(
        (&r["coverable"], &r["run"]),
        (&(pc + sc).into(), &pr.into())
    );
    let owners = r["owners"].as_array().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["run"], pr);

    // Text, and the CI gate.
    let pct = 100.0 * pr as f64 / (pc + sc) as f64;
    let (code, out, _) = covfleet(&[
        "patch",
        "--collection",
        s(&dir),
        "--repo",
        s(src),
        "--base",
        &base,
        "--fail-under",
        &format!("{}", pct + 1.0),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("renamed shop/stack.go → shop/stack2.go"),
        "{out}"
    );
    assert!(out.contains("deleted shop/old.go"), "{out}");
    assert!(out.contains(&format!("patch coverage: {pct:.1}%")), "{out}");
    let (code, _, err) = covfleet(&[
        "patch",
        s(&dir),
        "--repo",
        s(src),
        "--base",
        &base,
        "--head",
        "HEAD",
        "--fail-under",
        &format!("{}", pct - 1.0),
    ]);
    assert_eq!(code, 0, "{err}");
    // A revision git does not know is a usage error.
    assert_eq!(
        covfleet(&["patch", s(&dir), "--repo", s(src), "--base", "nope"]).0,
        2
    );
}
