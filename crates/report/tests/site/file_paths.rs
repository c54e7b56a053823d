//! Issue 8's rough edge: long module paths in a binary's file column. The
//! directory every file shares is said once above the table; a path shows
//! as its directory (one line, cut at the start when too long) above its
//! name; search and sort still see the whole path.

use report::{Block, FileCoverage, MemorySource, OwnerRow};

use super::cdp;

const MODULE: &str =
    "github.com/a-rather-long-organisation-name/an-even-longer-repository-name-for-services";

fn file(path: &str, covered: u64) -> FileCoverage {
    let b = |count| Block {
        st_line: 1,
        st_col: 1,
        en_line: 2,
        en_col: 1,
        stmts: 2,
        count,
    };
    FileCoverage::from_blocks(path, vec![b(covered), b(0)])
}

#[test]
fn long_paths_show_in_two_lines_without_the_shared_prefix() {
    let deep = format!(
        "{MODULE}/internal/reconciliation/controllers/clusterscopedresources/statusconditions/conditions_reconciler_helpers.go"
    );
    let files = vec![
        file(&format!("{MODULE}/cmd/server/main.go"), 1),
        file(&deep, 0),
        file(
            &format!("{MODULE}/pkg/api/v1alpha1/zz_generated_deepcopy.go"),
            1,
        ),
    ];
    let row = OwnerRow {
        id: "1".into(),
        namespace: "ns".into(),
        owner_type: "Deployment".into(),
        owner: "svc".into(),
        binary: "svc".into(),
        total_stmts: 12,
        covered_stmts: 6,
        ..OwnerRow::default()
    };
    let src = MemorySource {
        rows: vec![(row, files)],
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("html");
    report::render(
        &src,
        &report::Options {
            out_dir: out.clone(),
            repos_dir: dir.path().join("repos"),
            extra_source_roots: vec![],
            title: "paths".into(),
        },
    )
    .unwrap();
    let page_file = std::fs::read_dir(out.join("b"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "html"))
        .unwrap();

    let browser = cdp::Browser::launch();
    let mut page = browser.new_page();
    page.goto(&format!("file://{}", page_file.display()));
    page.wait_for("document.querySelectorAll('#files tbody tr').length === 3");
    assert_eq!(
        page.eval("document.getElementById('prefix').textContent"),
        format!("Paths under {MODULE}/").as_str()
    );
    // The deep file: shown from below the module, whole path in the title,
    // in two lines at most (1400px window): its directory on one line, cut
    // at the start so the deepest directories show, then its name.
    let cell = "Array.from(document.querySelectorAll('#files td.path')).find(td => td.title.endsWith('helpers.go'))";
    let got = page.eval(&format!(
        "(() => {{ const td = {cell}; const dir = td.querySelector('.dir').getBoundingClientRect();\
         const text = td.querySelector('.dir bdi').getBoundingClientRect(); const base = td.querySelector('.base');\
         return {{ title: td.title, text: td.innerText.replace(/\\s+/g, ''), height: td.querySelector('.pth').getBoundingClientRect().height,\
           base_lines: base.getClientRects().length, base_h: base.getBoundingClientRect().height, cut_start: text.left < dir.left - 1, end_shown: text.right <= dir.right + 1,\
           dir_h: dir.height }}; }})()"
    ));
    page.screenshot(
        &std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("covfleet-artifacts/report/long-paths.png"),
    );
    assert_eq!(got["title"], deep.as_str());
    assert_eq!(
        got["text"],
        deep.strip_prefix(&format!("{MODULE}/")).unwrap()
    );
    assert_eq!(got["cut_start"], true, "{got}");
    assert_eq!(got["end_shown"], true, "{got}");
    let (h, dir_h, base_h) = (
        got["height"].as_f64().unwrap(),
        got["dir_h"].as_f64().unwrap(),
        got["base_h"].as_f64().unwrap(),
    );
    // Two lines of about 18px: the directory's and the name's.
    assert!(dir_h <= 18.0 && base_h <= 18.0 && h <= 36.0, "{got}");
    assert_eq!(got["base_lines"], 1, "{got}");
    // Search and sort still work on the whole path.
    page.eval("(() => { const q = document.getElementById('q'); q.value = 'a-rather-long-organisation reconciliation'; q.dispatchEvent(new Event('input')); })()");
    assert_eq!(
        page.eval("document.querySelectorAll('#files tbody tr').length"),
        1
    );
    page.eval("(() => { const q = document.getElementById('q'); q.value = ''; q.dispatchEvent(new Event('input')); })()");
    page.eval("document.querySelector('#files th[data-key=p]').click()");
    let order = page.eval(
        "Array.from(document.querySelectorAll('#files td.path')).map(td => td.title.split('/')[3])",
    );
    assert_eq!(order, serde_json::json!(["pkg", "internal", "cmd"]));
    let errors = page.errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
