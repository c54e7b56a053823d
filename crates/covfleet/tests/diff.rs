//! `covfleet diff` on two real collections: one binary of the same build on
//! both sides (checked block by block against `go tool covdata textfmt` of
//! each side), and one rebuilt between them with code moved, added and
//! removed (paired by package, file and function; the rest reported).

mod analysis_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use analysis_support::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// textfmt of a directory: block → (stmts, count), injected server left out.
fn blocks(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let out = dir.with_extension("textfmt");
    run(Command::new("go").args(["tool", "covdata", "textfmt", "-i", s(dir), "-o", s(&out)]));
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("mode:") && !l.contains("zz_covfleet"))
        .map(|l| {
            let mut it = l.rsplitn(3, ' ');
            let c: u64 = it.next().unwrap().parse().unwrap();
            let n: u64 = it.next().unwrap().parse().unwrap();
            (it.next().unwrap().to_string(), (n, c))
        })
        .collect()
}

#[test]
fn diff_of_two_real_collections() {
    let fx = Fixture::new();
    // BASE: the host runs the cart; the Deployment's pod only the stack.
    let base = fx.collection("base");
    let bh = entry(&base, "h1", None);
    exercise(&fx.bin, &bh, &["-mode", "cart"]);
    let bp = entry(&base, "p1", Some(("shop", "api-7d9f8b6c54-x2kqz")));
    exercise(&fx.bin, &bp, &["-mode", "stack"]);
    compile(&base);

    // HEAD: the host also ran the price requests; the Deployment runs a new
    // build (cart.go moved down three lines, Clear removed, Count added).
    let head = fx.collection("head");
    let hh = entry(&head, "h1", None);
    exercise(&fx.bin, &hh, &["-mode", "cart"]);
    exercise(&fx.bin, &hh, &["-mode", "price"]);
    let cart = fx.src.join("shop/cart.go");
    let text = std::fs::read_to_string(&cart).unwrap();
    let text = text
        .replacen(
            "import \"sort\"\n",
            "import \"sort\"\n\n// moved\n// down\n",
            1,
        )
        .replace(
            "// Clear is never called.\nfunc (c *Cart) Clear() {\n\tc.items = nil\n}\n",
            "// Count is new.\nfunc (c *Cart) Count() int { return len(c.items) }\n",
        );
    std::fs::write(&cart, text).unwrap();
    let bin2 = fx.tmp.path().join("bin/analysis2");
    Fixture::build(&fx.src, &bin2);
    let hp = entry(&head, "p1", Some(("shop", "api-7d9f8b6c54-x2kqz")));
    exercise(&bin2, &hp, &["-mode", "stack"]);
    exercise(&bin2, &hp, &["-mode", "all"]);
    compile(&head);

    let json = covfleet_ok(&["diff", s(&base), s(&head.join("coverage.db")), "--json"]);
    let d: serde_json::Value = serde_json::from_str(&json).unwrap();
    let owners = d["owners"].as_array().unwrap();
    assert_eq!(owners.len(), 2, "{json}");
    // Sorted by gain.
    let gains: Vec<i64> = owners
        .iter()
        .map(|o| o["counts"]["new"].as_i64().unwrap() - o["counts"]["lost"].as_i64().unwrap())
        .collect();
    assert!(gains.windows(2).all(|w| w[0] >= w[1]), "{gains:?}");

    // Same build: every block compared as the Go tool reports it.
    let host = owners.iter().find(|o| o["namespace"] == "_host_").unwrap();
    let (b, h) = (blocks(&bh), blocks(&hh));
    let (mut new, mut lost, mut missed, mut kept) = (0, 0, 0, 0);
    let mut new_lines: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (k, (n, hc)) in &h {
        let bc = b[k].1;
        match (bc > 0, *hc > 0) {
            (false, true) => {
                new += n;
                if *n > 0 {
                    let (file, range) = k.rsplit_once(':').unwrap();
                    let sl: u64 = range.split('.').next().unwrap().parse().unwrap();
                    new_lines.entry(file.to_string()).or_default().push(sl);
                }
            }
            (true, false) => lost += n,
            (false, false) => missed += n,
            (true, true) => kept += n,
        }
    }
    assert!(new > 0);
    assert_eq!(
        (
            &host["counts"]["new"],
            &host["counts"]["lost"],
            &host["counts"]["missed"],
            &host["counts"]["kept"]
        ),
        (&new.into(), &lost.into(), &missed.into(), &kept.into())
    );
    assert_eq!(host["unmatched_functions"].as_array().unwrap().len(), 0);
    let price = host["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("shop/price.go"))
        .unwrap();
    for sl in &new_lines[&format!("{MODULE}/shop/price.go")] {
        assert!(
            price["new_lines"]
                .as_array()
                .unwrap()
                .contains(&(*sl).into())
        );
    }

    // Rebuilt: moved functions still pair, block for block; Count and Clear
    // are reported as unmatched.
    let api = owners.iter().find(|o| o["owner"] == "api").unwrap();
    assert_ne!(api["base_meta_hash"], api["head_meta_hash"]);
    let funcs: Vec<&serde_json::Value> = api["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["functions"].as_array().unwrap())
        .collect();
    let add = funcs.iter().find(|f| f["name"] == "*Cart.Add").unwrap();
    assert_eq!(add["status"], "paired");
    // Add in HEAD's textfmt: the blocks of lines 15-22 (12-19 moved by 3).
    let hb = blocks(&hp);
    let add_run: u64 = hb
        .iter()
        .filter(|(k, (_, c))| {
            let (file, range) = k.rsplit_once(':').unwrap();
            let sl: u32 = range.split('.').next().unwrap().parse().unwrap();
            file.ends_with("shop/cart.go") && (15..=22).contains(&sl) && *c > 0
        })
        .map(|(_, (n, _))| n)
        .sum();
    assert!(add_run > 0);
    assert_eq!(add["counts"]["new"], add_run);
    assert_eq!(add["counts"]["only_head"], 0);
    let unmatched: Vec<&str> = api["unmatched_functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        unmatched
            .iter()
            .any(|u| u.contains("*Cart.Count (only in HEAD)")),
        "{unmatched:?}"
    );
    assert!(
        unmatched
            .iter()
            .any(|u| u.contains("*Cart.Clear (only in BASE)")),
        "{unmatched:?}"
    );
    assert_eq!(unmatched.len(), 2, "{unmatched:?}");

    // Text: a table sorted by gain, functions that changed, what did not match.
    let text = covfleet_ok(&["diff", s(&base), s(&head)]);
    assert!(text.starts_with("OWNER"), "{text}");
    assert!(text.contains("NOT MATCHED") && text.contains("*Cart.Clear (only in BASE)"));
    assert!(
        text.contains("shop/price.go") && text.contains("Discount"),
        "{text}"
    );

    // HTML: newly run lines highlighted in the source.
    let html = head.join("html/diff.html");
    covfleet_ok(&[
        "diff",
        s(&base),
        s(&head),
        "--html",
        s(&html),
        "--source",
        s(&fx.src),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<span class=\"new\"><i>7</i>\tif !member {</span>"),
        "{page}"
    );
    assert_eq!(
        covfleet(&["diff", s(&base), &format!("{}@e2e", s(&head))]).0,
        2
    );
    assert_eq!(covfleet(&["diff", s(&base), "/nonexistent"]).0, 2);
}
