//! The site generator against real coverage data, and the rendered site driven
//! in headless Chromium.

mod cdp;
mod diff_page;
mod file_paths;
mod fixture;
mod phases_page;

use std::path::{Path, PathBuf};

use fixture::*;
use serde_json::Value;

fn page_of(out: &Path, index_html: &str, owner: &str) -> (PathBuf, Value) {
    let data = page_data(index_html);
    let row = data["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ow"] == owner)
        .unwrap_or_else(|| panic!("no row for {owner}"))
        .clone();
    let page = out.join(row["page"].as_str().expect("page link"));
    let html = std::fs::read_to_string(&page).unwrap();
    (page, page_data(&html))
}

/// The argument after the first comma of a `fn(x,{json});` script.
fn script_arg(js: &str) -> Value {
    let json = js
        .split_once(',')
        .unwrap()
        .1
        .trim_end()
        .trim_end_matches(");");
    serde_json::from_str(json).unwrap()
}

/// The shared source text a page's file entry points to.
fn source_text(out: &Path, file: &Value) -> Option<String> {
    let h = file["h"].as_str()?;
    let key = file["sb"].as_str().unwrap();
    let js = std::fs::read_to_string(out.join("src").join(format!("{key}.js"))).unwrap();
    Some(script_arg(&js)[h].as_str().unwrap().to_string())
}

/// A file's coverage data, from the page's data bundle.
fn file_data(page: &Path, data: &Value, file: &Value, index: usize) -> Value {
    let dir = page
        .parent()
        .unwrap()
        .join(data["data_dir"].as_str().unwrap());
    let js = std::fs::read_to_string(dir.join(format!("{}.js", file["d"]))).unwrap();
    script_arg(&js)[index.to_string()].clone()
}

#[test]
fn totals_match_go_tool_cover() {
    let demo = demo_coverage();
    let t: u64 = demo.files.iter().map(|f| f.total_stmts).sum();
    let c: u64 = demo.files.iter().map(|f| f.covered_stmts).sum();
    let ours = report::model::pct(c, t);
    assert!(
        (ours - demo.go_total_pct).abs() < 0.051,
        "ours {ours:.2}% vs go tool cover {}%",
        demo.go_total_pct
    );
    assert!(
        c > 0 && c < t,
        "the demo has both run and unrun code: {c}/{t}"
    );
}

#[test]
fn sources_are_found_by_each_strategy_and_paths_rewritten() {
    let fx = fixture();
    let out = fx.dir.path().join("html");
    let s = report::render(&fx.source, &fx.options(&out)).unwrap();
    assert!(s.row_errors.is_empty(), "{:?}", s.row_errors);
    assert_eq!(s.pages_written, 5);
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    for (owner, via) in [
        ("demo-api", Some("module path")),
        ("demo-agent", Some("image labels")),
        ("widget-job", Some("module path")),
        ("bigdb", Some("owner name")),
        (HOSTILE_OWNER, None),
    ] {
        let (page, data) = page_of(&out, &index, owner);
        assert_eq!(data["source_via"].as_str(), via, "{owner}");
        for (i, f) in data["files"].as_array().unwrap().iter().enumerate() {
            let fd = file_data(&page, &data, f, i);
            assert_eq!(f["s"].as_bool(), Some(via.is_some()), "{owner}: {}", f["p"]);
            assert_eq!(source_text(&out, f).is_some(), via.is_some());
            // Files without source still carry their numbers and blocks.
            assert!(f["t"].as_u64().unwrap() > 0);
            assert!(!fd["b"].as_array().unwrap().is_empty());
        }
    }
    // /workspace paths map into the labelled checkout, line states line up.
    let (page, data) = page_of(&out, &index, "demo-agent");
    let (i, f) = data["files"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .find(|(_, f)| f["p"] == "/workspace/handlers.go")
        .unwrap();
    let fd = file_data(&page, &data, f, i);
    let src = source_text(&out, f).unwrap();
    let src = src.as_str();
    let st = fd["st"].as_str().unwrap();
    assert_eq!(st.len(), src.lines().count());
    let line_of = |needle: &str| src.lines().position(|l| l.contains(needle)).unwrap();
    // Exercised by the Go tests: covered; never requested with a bad id: missed.
    assert_eq!(
        &st[line_of("writeJSON(w, http.StatusOK, a.store.List())")..][..1],
        "c"
    );
    assert!(st.contains('m') && st.contains('c'));
    // Both demo rows show the same four texts: stored once.
    let (_, api) = page_of(&out, &index, "demo-api");
    let hashes = |d: &Value| {
        d["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["h"].as_str().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(hashes(&api), hashes(&data));
    let (_, big) = page_of(&out, &index, "bigdb");
    assert_eq!(big["files"][0]["n"].as_u64(), Some(u64::from(BIG_LINES)));
}

#[test]
fn pages_are_rewritten_only_when_inputs_change() {
    let fx = fixture();
    let out = fx.dir.path().join("html");
    let opts = fx.options(&out);
    let first = report::render(&fx.source, &opts).unwrap();
    assert_eq!(first.pages_written, 5);
    let index = out.join("index.html");
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let before = mtime(&index);
    let pages: Vec<PathBuf> = std::fs::read_dir(out.join("b"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    let page_mtimes: Vec<_> = pages.iter().map(|p| mtime(p)).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));

    let second = report::render(&fx.source, &opts).unwrap();
    assert_eq!((second.pages_written, second.pages_unchanged), (0, 5));
    assert_eq!(mtime(&index), before);
    assert_eq!(
        pages.iter().map(|p| mtime(p)).collect::<Vec<_>>(),
        page_mtimes
    );

    // A changed source file rewrites the one page that shows it.
    let w = fx
        .repos()
        .join("github.com/neworg/widget/bbbbbbbb/widget.go");
    let text = std::fs::read_to_string(&w).unwrap();
    std::fs::write(&w, text.replace("return 1", "return 2")).unwrap();
    let third = report::render(&fx.source, &opts).unwrap();
    assert_eq!((third.pages_written, third.pages_unchanged), (1, 4));

    // Changed coverage too; a removed row's page goes away.
    let mut src = fx.source.clone();
    src.rows[0].1[0].blocks[0].count += 1;
    src.rows.remove(4);
    let fourth = report::render(&src, &opts).unwrap();
    assert_eq!((fourth.pages_written, fourth.pages_unchanged), (1, 3));
    assert_eq!(
        fourth.stale_removed, 3,
        "bigdb's page, data dir and shared source"
    );
}

#[test]
fn hostile_names_never_reach_the_markup() {
    let fx = fixture();
    let out = fx.dir.path().join("html");
    report::render(&fx.source, &fx.options(&out)).unwrap();
    let mut all = String::new();
    for e in std::fs::read_dir(out.join("b")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "unsafe page name {name}"
        );
        assert!(!name.starts_with('.'));
        if name.ends_with(".html") {
            all.push_str(&std::fs::read_to_string(e.path()).unwrap());
        }
    }
    all.push_str(&std::fs::read_to_string(out.join("index.html")).unwrap());
    for bad in [
        "<script>window",
        "<img src=x",
        "<svg onload",
        "<b onmouseover",
        "</td></tr><tr>",
    ] {
        assert!(!all.contains(bad), "{bad} leaked into the HTML");
    }
    // … yet the names are all there, as data.
    let (_, data) = page_of(
        &out,
        &std::fs::read_to_string(out.join("index.html")).unwrap(),
        HOSTILE_OWNER,
    );
    assert_eq!(data["row"]["ns"], HOSTILE_NS);
    assert_eq!(data["files"][0]["p"], HOSTILE_FILE);
}

fn artifacts() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("covfleet-artifacts/report");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

#[test]
fn site_works_in_headless_chromium() {
    let fx = fixture();
    let out = fx.dir.path().join("html");
    report::render(&fx.source, &fx.options(&out)).unwrap();
    let shots = artifacts();
    let browser = cdp::Browser::launch();
    let mut page = browser.new_page();

    // Index: loads cleanly, shows every row, totals count the demo binary once.
    page.goto(&file_url(&out.join("index.html")));
    page.wait_for("document.querySelectorAll('#rows tbody tr.row').length === 5");
    page.screenshot(&shots.join("index.png"));
    let errors = page.errors();
    assert!(errors.is_empty(), "console errors on the index: {errors:?}");
    let rows = |p: &mut cdp::Page| p.eval("document.querySelectorAll('#rows tbody tr.row').length");
    let demo = demo_coverage();
    let t: u64 = demo.files.iter().map(|f| f.total_stmts).sum();
    let card = page.eval("document.querySelectorAll('#cards .card .v')[1].textContent");
    let big_t = u64::from(BIG_LINES / 10) * 5;
    let want_t = t + 3 + 3 + big_t; // demo once (two rows), widget, hostile, bigdb
    assert!(
        card.as_str()
            .unwrap()
            .ends_with(&format!("/ {}", fmt_num(want_t))),
        "statements card {card} should count the demo binary once ({want_t})"
    );
    // … and count what its two owners ran together, more than either ran.
    let union: u64 = demo.files.iter().map(|f| f.covered_stmts).sum();
    let rows_c = |pred: &dyn Fn(&report::OwnerRow) -> bool| -> Vec<u64> {
        fx.source
            .rows
            .iter()
            .filter(|(r, _)| pred(r))
            .map(|(r, _)| r.covered_stmts)
            .collect()
    };
    let demo_rows = rows_c(&|r| r.binary_key == "demo@1111");
    assert!(
        demo_rows.iter().all(|&c| c < union),
        "{demo_rows:?} vs {union}"
    );
    let want_c = union + rows_c(&|r| r.binary_key != "demo@1111").iter().sum::<u64>();
    assert_eq!(
        card.as_str().unwrap(),
        format!("{} / {}", fmt_num(want_c), fmt_num(want_t))
    );
    // Filtered to one of them: that row's own numbers.
    page.eval("(() => { const s = document.getElementById('f-ns'); s.value = 'shop'; s.dispatchEvent(new Event('change')); })()");
    let card = page.eval("document.querySelectorAll('#cards .card .v')[1].textContent");
    assert_eq!(
        card.as_str().unwrap(),
        format!("{} / {}", fmt_num(demo_rows[0]), fmt_num(t))
    );
    // A host process: the processes card counts hosts, as the Pods column does (issue 13 #21).
    page.eval("(() => { const s = document.getElementById('f-ns'); s.value = 'perf'; s.dispatchEvent(new Event('change')); })()");
    assert_eq!(
        page.eval("document.querySelectorAll('#cards .card .v')[4].textContent + ' ' + document.querySelectorAll('#cards .card .l')[4].textContent"),
        Value::String("1 hosts".into())
    );
    assert_eq!(
        page.eval("document.querySelector('#rows tbody tr.row td.num').textContent"),
        Value::String("1".into())
    );
    page.eval("(() => { const s = document.getElementById('f-ns'); s.value = ''; s.dispatchEvent(new Event('change')); })()");
    assert_eq!(
        page.eval("document.querySelectorAll('#cards .card .v')[4].textContent"),
        Value::String("5 + 1".into())
    );
    // Hostile names render as text, and run nothing.
    assert_eq!(page.eval("window.__pwned === undefined"), Value::Bool(true));
    assert_eq!(
        page.eval(&format!(
            "Array.from(document.querySelectorAll('#rows a.open')).some(a => a.textContent === {})",
            serde_json::to_string(HOSTILE_OWNER).unwrap()
        )),
        Value::Bool(true)
    );

    // Search.
    page.eval("(() => { const q = document.getElementById('q'); q.value = 'k8p2m'; q.dispatchEvent(new Event('input')); })()");
    assert_eq!(rows(&mut page), 1, "search by pod name");
    assert_eq!(
        page.eval("document.querySelector('#rows tbody tr.row a.open').textContent"),
        "demo-api"
    );
    page.eval("(() => { const q = document.getElementById('q'); q.value = ''; q.dispatchEvent(new Event('input')); })()");
    assert_eq!(rows(&mut page), 5);
    // Filters: namespace, owner type, tier.
    let set = |p: &mut cdp::Page, id: &str, v: &str| {
        p.eval(&format!(
            "(() => {{ const s = document.getElementById('{id}'); s.value = {}; s.dispatchEvent(new Event('change')); }})()",
            serde_json::to_string(v).unwrap()
        ));
    };
    set(&mut page, "f-type", "Deployment");
    assert_eq!(rows(&mut page), 2);
    set(&mut page, "f-ns", "shop");
    assert_eq!(rows(&mut page), 1);
    set(&mut page, "f-ns", "");
    set(&mut page, "f-type", "");
    set(&mut page, "f-tier", "red");
    assert_eq!(rows(&mut page), 1, "only the hostile row has 0%");
    set(&mut page, "f-tier", "");
    // Sort on every column, both directions.
    let cols = page.eval(
        "Array.from(document.querySelectorAll('#rows th[data-key]')).map(th => th.dataset.key)",
    );
    for (k, key) in cols.as_array().unwrap().iter().enumerate() {
        let key = key.as_str().unwrap();
        for _ in 0..2 {
            page.eval(&format!(
                "document.querySelectorAll('#rows th[data-key]')[{k}].click()"
            ));
            let dir = page.eval(&format!(
                "document.querySelectorAll('#rows th[data-key]')[{k}].getAttribute('aria-sort')"
            ));
            let cell = k + 1;
            let vals = page.eval(&format!(
                "Array.from(document.querySelectorAll('#rows tbody tr.row')).map(tr => tr.cells[{cell}].textContent)"
            ));
            let vals: Vec<String> = vals
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            let numeric = ["pods", "pct", "c", "t"].contains(&key);
            let keyed: Vec<f64> = vals
                .iter()
                .map(|v| v.replace([',', '%'], "").parse().unwrap_or(0.0))
                .collect();
            let mut ok = true;
            for w in 0..vals.len().saturating_sub(1) {
                let ord = if numeric {
                    keyed[w].partial_cmp(&keyed[w + 1]).unwrap()
                } else {
                    // localeCompare order, checked in the page itself below.
                    std::cmp::Ordering::Equal
                };
                if (dir == "ascending" && ord.is_gt()) || (dir == "descending" && ord.is_lt()) {
                    ok = false;
                }
            }
            if !numeric {
                let sorted = page.eval(&format!(
                    "(() => {{ const v = {}; const s = v.slice().sort((a, b) => a.localeCompare(b)); if ({}) s.reverse(); return JSON.stringify(s) === JSON.stringify(v); }})()",
                    serde_json::to_string(&vals).unwrap(),
                    dir == "descending"
                ));
                ok = sorted == Value::Bool(true);
            }
            assert!(ok, "column {key} sorted {dir}: {vals:?}");
        }
    }
    // Expandable rows show pods, hosts and images.
    page.eval("(() => { const q = document.getElementById('q'); q.value = 'demo-api'; q.dispatchEvent(new Event('input')); })()");
    page.eval("document.querySelector('#rows button.tog').click()");
    let detail = page.eval("document.querySelector('#rows tr.detail').textContent");
    for want in [
        "demo-api-7d9f8b6c5-x2x9q",
        "node-b",
        "quay.io/acme/demo@sha256:0000",
    ] {
        assert!(detail.as_str().unwrap().contains(want), "{detail}");
    }
    page.screenshot(&shots.join("index-expanded.png"));

    // A click opens the binary page; a file shows covered and missed lines.
    page.navigate_by("document.querySelector('#rows a.open').click()");
    page.wait_for("location.pathname.includes('/b/') && document.readyState === 'complete'");
    page.wait_for("document.querySelectorAll('#files tbody tr').length > 0");
    page.eval(
        "Array.from(document.querySelectorAll('#files tbody tr')).find(tr => tr.cells[0].textContent.endsWith('/handlers.go')).click()",
    );
    page.wait_for("document.querySelectorAll('#vspacer .ln').length > 10");
    assert!(
        page.eval("location.hash")
            .as_str()
            .unwrap()
            .contains("handlers.go"),
        "deep link in the hash"
    );
    let covered = page
        .eval("document.querySelectorAll('#vspacer .ln.c').length")
        .as_u64()
        .unwrap();
    let missed = page
        .eval("document.querySelectorAll('#vspacer .ln.m').length")
        .as_u64()
        .unwrap();
    assert!(
        covered > 0 && missed > 0,
        "covered {covered}, missed {missed}"
    );
    let hits = page.eval("document.querySelector('#vspacer .ln.c .hc').textContent");
    assert!(
        hits.as_str().unwrap().ends_with('×'),
        "hit counts shown: {hits}"
    );
    page.screenshot(&shots.join("binary-split.png"));
    // Views.
    page.eval("document.querySelector('.views button[data-view=list]').click()");
    assert_eq!(
        page.eval("getComputedStyle(document.querySelector('.pane.viewer')).display"),
        "none"
    );
    page.eval("document.querySelector('.views button[data-view=source]').click()");
    assert_eq!(
        page.eval("getComputedStyle(document.querySelector('.pane.files')).display"),
        "none"
    );
    page.screenshot(&shots.join("binary-source.png"));
    // File table filter and search.
    page.eval("document.querySelector('.views button[data-view=split]').click()");
    page.eval("(() => { const q = document.getElementById('q'); q.value = 'pricing'; q.dispatchEvent(new Event('input')); })()");
    assert_eq!(
        page.eval("document.querySelectorAll('#files tbody tr').length"),
        1
    );
    let errors = page.errors();
    assert!(
        errors.is_empty(),
        "console errors on the binary page: {errors:?}"
    );

    // A deep link opens the file at a line.
    let url = page
        .eval("location.href.split('#')[0]")
        .as_str()
        .unwrap()
        .to_string();
    page.goto(&format!(
        "{url}#f={}&l=3",
        DEMO_MODULE.to_string() + "/internal/pricing/pricing.go"
    ));
    page.wait_for("document.querySelector('#vspacer .ln.target') !== null");
    assert_eq!(
        page.eval("document.getElementById('vname').textContent"),
        format!("{DEMO_MODULE}/internal/pricing/pricing.go")
    );

    // A line where one block ran and another did not is split at the column.
    page.goto(&file_url(&out.join("index.html")));
    page.wait_for("document.querySelectorAll('#rows a.open').length === 5");
    let href = page.eval("Array.from(document.querySelectorAll('#rows a.open')).find(a => a.textContent === 'widget-job').href");
    page.goto(&format!(
        "{}#f=github.com/oldorg/widget/widget.go&l=4",
        href.as_str().unwrap()
    ));
    page.wait_for("document.querySelector('#vspacer .ln.p') !== null");
    assert_eq!(
        page.eval("document.querySelector('#vspacer .ln.p .seg-c').textContent"),
        "\tif x > 0 "
    );
    assert_eq!(
        page.eval("document.querySelector('#vspacer .ln.p .seg-m').textContent"),
        "{"
    );
    assert_eq!(
        page.eval("document.querySelector('#vspacer .ln[data-line=\"5\"]').className"),
        "ln m"
    );

    // The 100,000-line file stays virtual: few DOM rows, any line reachable.
    page.goto(&file_url(&out.join("index.html")));
    page.wait_for("document.querySelectorAll('#rows a.open').length === 5");
    let href = page.eval("Array.from(document.querySelectorAll('#rows a.open')).find(a => a.textContent === 'bigdb').href");
    page.goto(&format!(
        "{}#f=/home/ci/bigdb/pkg/huge.go&l=99995",
        href.as_str().unwrap()
    ));
    page.wait_for("document.querySelector('#vspacer .ln.target') !== null");
    let n = page
        .eval("document.querySelectorAll('#vspacer .ln').length")
        .as_u64()
        .unwrap();
    assert!(n < 300, "{n} line elements in the DOM");
    assert_eq!(
        page.eval("document.querySelector('#vspacer .ln.target .code').textContent"),
        "\tx99995 := compute(99995) // line 99995"
    );
    page.eval("document.getElementById('vbody').scrollTop = 18 * 50000");
    page.wait_for("document.querySelector('#vspacer .ln[data-line=\"50010\"]') !== null");
    page.screenshot(&shots.join("binary-100k-lines.png"));
    // Files without source list their blocks.
    page.goto(&file_url(&out.join("index.html")));
    page.wait_for("document.querySelectorAll('#rows a.open').length === 5");
    page.eval("document.querySelector('#f-tier').value = 'red'; document.querySelector('#f-tier').dispatchEvent(new Event('change'))");
    page.navigate_by("document.querySelector('#rows a.open').click()");
    page.wait_for(
        "location.pathname.includes('/b/') && document.querySelector('table.blocks') !== null",
    );
    assert_eq!(
        page.eval("document.querySelector('#files tbody tr td:last-child').textContent"),
        "not found"
    );
    assert_eq!(page.eval("window.__pwned === undefined"), Value::Bool(true));
    page.screenshot(&shots.join("binary-no-source.png"));
    let errors = page.errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    eprintln!("screenshots in {}", shots.display());
}

fn fmt_num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A source whose files cannot be read for one row.
struct Flaky(report::MemorySource);

#[derive(Debug)]
struct Broken;
impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("counters of owner 3 are corrupt")
    }
}
impl std::error::Error for Broken {}

impl report::SiteSource for Flaky {
    type Error = Broken;
    fn rows(&self) -> Result<Vec<report::OwnerRow>, Broken> {
        Ok(self.0.rows.iter().map(|(r, _)| r.clone()).collect())
    }
    fn files(&self, row: &report::OwnerRow) -> Result<Vec<report::FileCoverage>, Broken> {
        if row.id == "3" {
            return Err(Broken);
        }
        Ok(self
            .0
            .rows
            .iter()
            .find(|(r, _)| r.id == row.id)
            .unwrap()
            .1
            .clone())
    }
}

#[test]
fn a_failing_row_is_reported_and_the_rest_is_rendered() {
    let fx = fixture();
    let out = fx.dir.path().join("html");
    let s = report::render(&Flaky(fx.source.clone()), &fx.options(&out)).unwrap();
    assert_eq!(s.pages_written, 4);
    assert_eq!(s.row_errors.len(), 1);
    assert!(
        s.row_errors[0].contains("widget-job") && s.row_errors[0].contains("corrupt"),
        "{:?}",
        s.row_errors
    );
    let data = page_data(&std::fs::read_to_string(out.join("index.html")).unwrap());
    let rows = data["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "the failed row is still listed");
    let widget = rows.iter().find(|r| r["ow"] == "widget-job").unwrap();
    assert!(widget["page"].is_null(), "…without a link");
}
