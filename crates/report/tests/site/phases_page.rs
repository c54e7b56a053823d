//! The index's phase switch and run history strip in headless Chromium:
//! the strip lists collection times and phases in time order, a phase chip
//! (or the phase select) switches every row and the totals to what ran
//! during that phase, the choice survives a reload through the URL, and
//! nothing is logged as an error. Without history the strip stays hidden.

use std::collections::BTreeMap;

use report::history::{History, PhaseCoverage};
use report::{Block, FileCoverage, MemorySource, OwnerRow, SiteSource};

use super::cdp;

/// A source with a history (the in-memory source has none).
struct Phased {
    inner: MemorySource,
    history: History,
}

impl SiteSource for Phased {
    type Error = std::convert::Infallible;
    fn rows(&self) -> Result<Vec<OwnerRow>, Self::Error> {
        self.inner.rows()
    }
    fn files(&self, row: &OwnerRow) -> Result<Vec<FileCoverage>, Self::Error> {
        self.inner.files(row)
    }
    fn history(&self) -> Result<History, Self::Error> {
        Ok(self.history.clone())
    }
}

fn row(id: &str, owner: &str, total: u64, covered: u64) -> (OwnerRow, Vec<FileCoverage>) {
    let blocks = vec![
        Block {
            st_line: 1,
            st_col: 1,
            en_line: 1,
            en_col: 10,
            stmts: covered as u32,
            count: 1,
        },
        Block {
            st_line: 2,
            st_col: 1,
            en_line: 2,
            en_col: 10,
            stmts: (total - covered) as u32,
            count: 0,
        },
    ];
    let r = OwnerRow {
        id: id.into(),
        namespace: "shop".into(),
        owner_type: "Deployment".into(),
        owner: owner.into(),
        binary: owner.into(),
        pods: vec![format!("{owner}-1")],
        total_stmts: total,
        covered_stmts: covered,
        binary_key: format!("{owner}@abc"),
        ..OwnerRow::default()
    };
    let f = FileCoverage::from_blocks(format!("example.com/{owner}/main.go"), blocks);
    (r, vec![f])
}

fn source(history: History) -> Phased {
    Phased {
        inner: MemorySource {
            rows: vec![row("1", "api", 100, 60), row("2", "worker", 50, 40)],
        },
        history,
    }
}

fn history() -> History {
    let phase =
        |name: &str, from: &str, to: Option<&str>, rows: &[(&str, u64, u64)]| PhaseCoverage {
            name: name.into(),
            started_at: from.into(),
            ended_at: to.map(String::from),
            rows: rows
                .iter()
                .map(|(id, t, c)| (id.to_string(), (*t, *c)))
                .collect::<BTreeMap<_, _>>(),
        };
    History {
        phases: vec![
            phase(
                "baseline",
                "2026-11-30T10:00:05Z",
                Some("2026-11-30T10:05:00Z"),
                &[("1", 100, 20), ("2", 50, 10)],
            ),
            // The worker did not run during e2e.
            phase("e2e", "2026-11-30T10:05:00Z", None, &[("1", 100, 45)]),
        ],
        times: vec![
            ("2026-11-30T10:00".into(), 2),
            ("2026-11-30T10:09".into(), 2),
        ],
    }
}

#[test]
fn phase_switch_and_history_strip_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("html");
    let opts = report::Options {
        out_dir: out.clone(),
        repos_dir: dir.path().join("repos"),
        extra_source_roots: Vec::new(),
        title: "phased".into(),
    };
    report::render(&source(history()), &opts).unwrap();
    let browser = cdp::Browser::launch();
    let mut page = browser.new_page();
    let url = format!("file://{}", out.join("index.html").display());
    page.goto(&url);
    page.wait_for("document.querySelectorAll('#rows tbody tr.row').length === 2");
    assert_eq!(
        page.eval("document.getElementById('history').hidden"),
        false
    );
    // Times and phases in time order, then "All time" (selected).
    let chips = page.eval(
        "Array.from(document.querySelectorAll('#history .chip')).map(c => c.className.split(' ')[1] + ':' + (c.dataset.phase || c.textContent))",
    );
    assert_eq!(
        chips,
        serde_json::json!([
            "time:2026-11-30 10:00 · 2 reports",
            "phase:baseline",
            "phase:e2e",
            "time:2026-11-30 10:09 · 2 reports",
            "all:All time"
        ])
    );
    let phase_pct =
        page.eval("document.querySelector('#history [data-phase=e2e] .pct').textContent");
    assert_eq!(phase_pct, "45.0%");
    let covered = |p: &mut cdp::Page| {
        p.eval(
            "Array.from(document.querySelectorAll('#rows tbody tr.row')).map(r => r.children[3].textContent + '=' + r.children[7].textContent).sort().join(' ')",
        )
    };
    assert_eq!(covered(&mut page), "api=60 worker=40");

    // A phase chip switches the rows and the totals.
    page.eval("document.querySelector('#history [data-phase=e2e]').click(), true");
    page.wait_for("location.hash.indexOf('phase=e2e') >= 0");
    assert_eq!(covered(&mut page), "api=45 worker=0");
    // Rows open their page in the phase's own site; the worker did not run.
    let links = page.eval(
        "Array.from(document.querySelectorAll('#rows tbody tr.row a.open')).map(a => a.getAttribute('href')).join(' ')",
    );
    assert!(
        links.as_str().unwrap().starts_with("phase/e2e/b/")
            && !links.as_str().unwrap().contains(' '),
        "{links}"
    );
    let card = page.eval("document.querySelectorAll('#cards .card .l')[0].textContent");
    assert_eq!(card, "coverage in phase e2e");
    assert_eq!(
        page.eval("document.querySelectorAll('#cards .card .v')[1].textContent"),
        "45 / 150"
    );
    assert_eq!(page.eval("document.getElementById('f-phase').value"), "e2e");
    assert_eq!(
        page.eval("document.querySelector('#history .chip.on').dataset.phase"),
        "e2e"
    );
    // The select does the same; the choice survives a reload.
    page.eval("(s => { s.value = 'baseline'; s.dispatchEvent(new Event('change')); })(document.getElementById('f-phase')), true");
    assert_eq!(covered(&mut page), "api=20 worker=10");
    // The marker tells the reloaded page from the old one.
    page.eval("window.beforeReload = true, location.reload(), true");
    page.wait_for("!window.beforeReload && document.readyState === 'complete' && document.querySelectorAll('#rows tbody tr.row').length === 2 && document.getElementById('f-phase').value === 'baseline'");
    assert_eq!(covered(&mut page), "api=20 worker=10");
    // "All time" goes back to the cumulative numbers.
    page.eval("document.querySelector('#history .chip.all').click(), true");
    assert_eq!(covered(&mut page), "api=60 worker=40");
    assert_eq!(page.eval("location.hash.indexOf('phase=')"), -1);
    let errors = page.errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // One collection time and no phase: no strip, no phase select.
    let plain = dir.path().join("plain");
    let one = History {
        phases: Vec::new(),
        times: vec![("2026-11-30T10:00".into(), 2)],
    };
    let opts = report::Options {
        out_dir: plain.clone(),
        repos_dir: dir.path().join("repos"),
        extra_source_roots: Vec::new(),
        title: "plain".into(),
    };
    report::render(&source(one), &opts).unwrap();
    page.goto(&format!("file://{}", plain.join("index.html").display()));
    page.wait_for("document.querySelectorAll('#rows tbody tr.row').length === 2");
    assert_eq!(
        page.eval("getComputedStyle(document.getElementById('history')).display"),
        "none"
    );
    assert_eq!(page.eval("document.getElementById('f-phase').hidden"), true);
    let errors = page.errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
