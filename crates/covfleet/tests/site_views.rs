//! The site's package tree, function list and diff link on a real
//! collection (`go/fixtures/analysis` built with `-cover`, run, compiled):
//! the numbers checked against Go's own tools on covfleet's exported Go
//! profile (`go tool cover -func` for the functions; the profile's blocks
//! summed per directory for the packages), then driven in headless
//! Chromium.

mod analysis_support;
#[path = "../../report/tests/site/cdp.rs"]
mod cdp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use analysis_support::*;
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn page_data(html: &str) -> Value {
    let start = html.find("id=\"covfleet-data\">").expect("data element") + 19;
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

/// The argument of a `covfleetFuncs([...]);` script.
fn funcs_script(js: &str) -> Value {
    let json = js
        .trim_end()
        .strip_prefix("covfleetFuncs(")
        .unwrap()
        .strip_suffix(");")
        .unwrap();
    serde_json::from_str(json).unwrap()
}

/// (covered, total) statements per directory and everything below it,
/// straight from a Go text profile's blocks (repeated blocks counted once,
/// as covered when any repeat ran).
fn profile_dirs(profile: &str) -> BTreeMap<String, (u64, u64)> {
    let mut blocks: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    for l in profile.lines().skip(1) {
        let mut f = l.rsplitn(3, ' ');
        let count: u64 = f.next().unwrap().parse().unwrap();
        let stmts: u64 = f.next().unwrap().parse().unwrap();
        let e = blocks.entry(f.next().unwrap().to_string()).or_default();
        e.0 = stmts;
        e.1 |= count > 0;
    }
    let mut dirs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (block, (stmts, hit)) in blocks {
        let file = block.rsplit_once(':').unwrap().0;
        let mut dir = file;
        while let Some((d, _)) = dir.rsplit_once('/') {
            let e = dirs.entry(d.to_string()).or_default();
            e.1 += stmts;
            if hit {
                e.0 += stmts;
            }
            dir = d;
        }
    }
    dirs
}

struct Site {
    fx: Fixture,
    head: PathBuf,
    index: PathBuf,
    profile: String,
    go_func: String,
}

fn site() -> Site {
    let fx = Fixture::new();
    let base = fx.collection("base");
    let b = entry(&base, "h1", None);
    exercise(&fx.bin, &b, &["-mode", "cart"]);
    compile(&base);
    let head = fx.collection("head");
    let h = entry(&head, "h1", None);
    exercise(&fx.bin, &h, &["-mode", "cart", "-n", "3"]);
    exercise(&fx.bin, &h, &["-mode", "price"]);
    exercise(&fx.bin, &h, &["-mode", "stack"]);
    compile(&head);
    let render = || covfleet_ok(&["render", "--collection", s(&head), "--source", s(&fx.src)]);
    render();
    let index = head.join("html/index.html");
    assert!(
        !std::fs::read_to_string(&index)
            .unwrap()
            .contains("id=\"diffs\"")
    );

    // The diff page where the docs say to put it; a second render links it
    // and rewrites nothing else.
    let (code, _, err) = covfleet(&[
        "diff",
        s(&base),
        s(&head),
        "--html",
        s(&head.join("html/diff.html")),
        "--source",
        s(&fx.src),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("`covfleet render` links it from"), "{err}");
    let (code, _, err) = covfleet(&["render", "--collection", s(&head), "--source", s(&fx.src)]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 pages written"), "{err}");
    assert!(
        std::fs::read_to_string(&index)
            .unwrap()
            .contains("<a href=\"diff.html\">diff.html</a>")
    );

    let prof = fx.tmp.path().join("head.out");
    covfleet_ok(&["export", s(&head), "--format", "go", "-o", s(&prof)]);
    let go_func = run(go(&fx.src).args(["tool", "cover", "-func", s(&prof)]));
    let profile = std::fs::read_to_string(&prof).unwrap();
    Site {
        fx,
        head,
        index,
        profile,
        go_func,
    }
}

/// The owner's page and its JSON.
fn owner_page(index: &Path) -> (PathBuf, Value) {
    let data = page_data(&std::fs::read_to_string(index).unwrap());
    let rows = data["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let page = index
        .parent()
        .unwrap()
        .join(rows[0]["page"].as_str().unwrap());
    let html = std::fs::read_to_string(&page).unwrap();
    (page, page_data(&html))
}

#[test]
fn package_tree_and_functions_match_go_tools_and_work_in_chromium() {
    let st = site();
    let (page, data) = owner_page(&st.index);
    let files = data["files"].as_array().unwrap();

    // Functions: what `go tool cover -func` prints on the exported profile,
    // line for line (file, line, name, percentage).
    let js = std::fs::read_to_string(
        page.parent()
            .unwrap()
            .join(data["data_dir"].as_str().unwrap())
            .join("funcs.js"),
    )
    .unwrap();
    let funcs = funcs_script(&js);
    let ours: Vec<String> = funcs
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = files[f[0].as_u64().unwrap() as usize]["p"]
                .as_str()
                .unwrap();
            let (c, t) = (f[4].as_u64().unwrap(), f[5].as_u64().unwrap());
            format!(
                "{file}:{}: {} {:.1}%",
                f[1],
                f[2].as_str().unwrap(),
                100.0 * c as f64 / t.max(1) as f64
            )
        })
        .collect();
    let go: Vec<String> = st
        .go_func
        .lines()
        .filter(|l| !l.starts_with("total:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(ours, go);
    assert_eq!(data["fn"].as_u64(), Some(ours.len() as u64));
    // Receivers as the source writes them (the Go tool has no column for it).
    assert!(
        funcs
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f[2] == "Push" && f[3] == "Stack[T]"),
        "{funcs}"
    );
    // Per file: its functions and their statements never run.
    for (i, f) in files.iter().enumerate() {
        let mine: Vec<&Value> = funcs
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x[0].as_u64() == Some(i as u64))
            .collect();
        let missed: u64 = mine
            .iter()
            .map(|x| x[5].as_u64().unwrap() - x[4].as_u64().unwrap())
            .sum();
        if mine.is_empty() {
            assert!(f.get("fn").is_none());
        } else {
            assert_eq!(f["fn"], serde_json::json!([mine.len(), missed]), "{f}");
        }
    }

    // Package tree: each node's statements are the profile's blocks in and
    // below its directory.
    let dirs = profile_dirs(&st.profile);
    let mut stack: Vec<&Value> = data["pk"].as_array().unwrap().iter().collect();
    let mut seen = Vec::new();
    while let Some(n) = stack.pop() {
        let p = n["p"].as_str().unwrap();
        let (c, t) = dirs[p];
        assert_eq!(
            (n["c"].as_u64(), n["t"].as_u64()),
            (Some(c), Some(t)),
            "{p}"
        );
        seen.push(p.to_string());
        stack.extend(n["k"].as_array().unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        [MODULE.to_string(), format!("{MODULE}/shop")],
        "the module root (its parents merged into it) and shop"
    );

    chromium(&st, &data);
}

fn chromium(st: &Site, data: &Value) {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("covfleet-artifacts/site-views");
    let browser = cdp::Browser::launch();
    let mut page = browser.new_page();
    page.goto(&format!("file://{}", st.index.display()));
    page.wait_for("document.querySelectorAll('#rows tbody tr.row').length === 1");
    // The diff link leads to the diff page.
    assert_eq!(
        page.eval("document.querySelector('#diffs a').getAttribute('href')"),
        "diff.html"
    );
    page.navigate_by("document.querySelector('#diffs a').click()");
    page.wait_for(
        "location.pathname.endsWith('/diff.html') && document.querySelector('#owners') !== null",
    );
    let errors = page.errors();
    assert!(errors.is_empty(), "{errors:?}");

    page.goto(&format!("file://{}", st.index.display()));
    page.wait_for("document.querySelectorAll('#rows a.open').length === 1");
    page.navigate_by("document.querySelector('#rows a.open').click()");
    page.wait_for("location.pathname.includes('/b/') && document.querySelectorAll('#files tbody tr').length > 0");

    // Paths: the module prefix is said once; cells wrap at '/' only and
    // keep the full path in their title.
    assert_eq!(
        page.eval("document.getElementById('prefix').textContent"),
        format!("Paths under {MODULE}/").as_str()
    );
    let cell = page.eval(
        "(() => { const td = Array.from(document.querySelectorAll('#files td.path')).find(td => td.title.endsWith('/shop/cart.go'));\
         return [td.title, td.innerText.replace(/\\s+/g, '')]; })()",
    );
    assert_eq!(cell[0], format!("{MODULE}/shop/cart.go").as_str());
    assert_eq!(cell[1], "shop/cart.go");

    // Package tree: open at the top, numbers shown, collapsible.
    page.eval("document.querySelector('.tabs [data-tab=packages]').click()");
    page.wait_for("document.querySelectorAll('#packages .node').length === 2");
    let shop = data["pk"][0]["k"][0].clone();
    let top = data["pk"][0].clone();
    let text = page.eval("Array.from(document.querySelectorAll('#packages .nrow')).map(r => r.innerText.replace(/\\s+/g, ' ').trim())");
    let pct = |n: &Value| 100.0 * n["c"].as_u64().unwrap() as f64 / n["t"].as_u64().unwrap() as f64;
    assert_eq!(
        text,
        serde_json::json!([
            format!(
                "▾ {MODULE} {:.1}% {} / {} {} files",
                pct(&top),
                top["c"],
                top["t"],
                top["f"]
            ),
            format!(
                "shop {:.1}% {} / {} {} files",
                pct(&shop),
                shop["c"],
                shop["t"],
                shop["f"]
            ),
        ])
    );
    let shop_visible =
        "document.querySelector('#packages .node .node').getBoundingClientRect().height > 0";
    assert_eq!(page.eval(shop_visible), true);
    page.eval("document.querySelector('#packages .tog').click()");
    assert_eq!(page.eval(shop_visible), false);
    assert_eq!(
        page.eval("document.querySelector('#packages .node').getAttribute('aria-expanded')"),
        "false"
    );
    page.eval("document.querySelector('#packages .tog').click()");
    assert_eq!(page.eval(shop_visible), true);
    page.screenshot(&shots.join("packages.png"));
    // A package's name shows its files.
    page.eval("document.querySelectorAll('#packages .pname')[1].click()");
    page.wait_for("!document.getElementById('files').hidden");
    let shown = page.eval(
        "Array.from(document.querySelectorAll('#files tbody tr td.path')).map(td => td.title)",
    );
    let want: Vec<&str> = data["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["p"].as_str().unwrap())
        .filter(|p| p.contains("/shop/"))
        .collect();
    let mut shown: Vec<String> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    shown.sort();
    assert_eq!(shown, want);
    assert!(
        page.eval("location.hash")
            .as_str()
            .unwrap()
            .contains("pkg=")
    );
    page.eval("document.getElementById('pkgclear').click()");
    assert_eq!(
        page.eval("document.querySelectorAll('#files tbody tr').length"),
        data["files"].as_array().unwrap().len()
    );

    // Functions: loaded on demand, sorted by statements never run (most
    // first), the other way on a click.
    assert_eq!(
        page.eval("document.querySelector('script[src$=\"funcs.js\"]') === null"),
        true
    );
    page.eval("document.querySelector('.tabs [data-tab=funcs]').click()");
    let n = data["fn"].as_u64().unwrap();
    page.wait_for(&format!(
        "document.querySelectorAll('#funcs tbody tr').length === {n}"
    ));
    let missed = "Array.from(document.querySelectorAll('#funcs tbody tr td.miss')).map(td => Number(td.textContent))";
    let sorted = |v: &Value, desc: bool| {
        let v: Vec<u64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        v.windows(2)
            .all(|w| if desc { w[0] >= w[1] } else { w[0] <= w[1] })
            && v.first() != v.last()
    };
    let v = page.eval(missed);
    assert!(sorted(&v, true), "{v}");
    page.eval("document.querySelector('#funcs th[data-key=miss]').click()");
    let v = page.eval(missed);
    assert!(sorted(&v, false), "{v}");
    page.screenshot(&shots.join("functions.png"));
    // Search by name; a click opens the function's file at its line.
    page.eval("(() => { const q = document.getElementById('q'); q.value = 'discount'; q.dispatchEvent(new Event('input')); })()");
    assert_eq!(
        page.eval("document.querySelectorAll('#funcs tbody tr').length"),
        1
    );
    page.eval("document.querySelector('#funcs tbody tr').click()");
    page.wait_for("document.querySelectorAll('#vspacer .ln.target').length === 1");
    let hash = page.eval("location.hash");
    assert!(
        hash.as_str().unwrap().contains("price.go") && hash.as_str().unwrap().contains("l=5"),
        "{hash}"
    );
    // The open file's own functions, from the viewer's header.
    page.eval("(() => { const q = document.getElementById('q'); q.value = ''; q.dispatchEvent(new Event('input')); })()");
    page.eval("document.getElementById('vfuncs').click()");
    let files = page.eval("Array.from(document.querySelectorAll('#funcs tbody td.loc')).map(td => td.title.split(':')[0])");
    let files = files.as_array().unwrap();
    assert!(!files.is_empty());
    assert!(
        files
            .iter()
            .all(|f| f.as_str().unwrap().ends_with("/shop/price.go")),
        "{files:?}"
    );
    assert_eq!(page.eval("document.getElementById('fn-cur').checked"), true);
    let errors = page.errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(st.head.is_dir() && st.fx.src.is_dir());
}
