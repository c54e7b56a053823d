//! The `covfleet diff` HTML page in headless Chromium: owners by gain, a
//! changed file opening to its source with the newly run lines highlighted,
//! no console errors.

use report::diff::{Counts, Diff, FileDiff, FuncDiff, OwnerDiff};

use super::cdp;

fn owner(name: &str, new: u64, lost: u64, new_lines: Vec<u32>) -> OwnerDiff {
    let counts = Counts {
        new,
        lost,
        missed: 3,
        kept: 5,
        ..Counts::default()
    };
    OwnerDiff {
        namespace: "shop".into(),
        owner_type: "Deployment".into(),
        owner: name.into(),
        binary: name.into(),
        base_meta_hash: "aaaaaaaaaaaa".into(),
        head_meta_hash: "bbbbbbbbbbbb".into(),
        base_pct: 10.0,
        head_pct: 20.0,
        counts,
        files: vec![FileDiff {
            path: format!("example.com/{name}/main.go"),
            counts,
            functions: vec![FuncDiff {
                name: "main".into(),
                status: "paired",
                counts,
            }],
            new_lines,
            lost_lines: vec![5],
            missed_lines: vec![6],
        }],
        unmatched_functions: vec![format!("example.com/{name}/main.go: gone (only in BASE)")],
        head_id: 1,
    }
}

#[test]
fn diff_page_in_headless_chromium() {
    let mut d = Diff {
        owners: vec![
            owner("big", 9, 0, vec![2, 3]),
            owner("small", 1, 4, vec![2]),
        ],
        owners_only_base: vec!["shop/Deployment/old/old (cccccccc)".into()],
        owners_only_head: vec![],
        total: Counts::default(),
    };
    d.total.new = 10;
    let src: Vec<String> = (1..=8).map(|i| format!("line <{i}> & more")).collect();
    let page_html = report::diff_html::diff_html(&d, "before → after", &|_, _| Some(src.clone()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("diff.html");
    std::fs::write(&file, page_html).unwrap();

    let browser = cdp::Browser::launch();
    let mut page = browser.new_page();
    page.goto(&format!("file://{}", file.display()));
    page.wait_for("document.querySelectorAll('#owners tbody tr').length === 2");
    let first = page.eval("document.querySelector('#owners tbody tr td a').textContent");
    assert_eq!(first, "shop/big");
    // Open big's file: lines 2 and 3 are green, 5 red, text escaped.
    page.eval("document.querySelector('details.file').open = true, true");
    let bg = |p: &mut cdp::Page, sel: &str| {
        p.eval(&format!(
            "getComputedStyle(document.querySelector('details.file pre span:nth-child({sel})')).backgroundColor"
        ))
    };
    assert_eq!(bg(&mut page, "2"), "rgb(200, 242, 207)");
    assert_eq!(bg(&mut page, "3"), "rgb(200, 242, 207)");
    assert_eq!(bg(&mut page, "5"), "rgb(249, 197, 192)");
    assert_eq!(bg(&mut page, "1"), "rgba(0, 0, 0, 0)");
    let text =
        page.eval("document.querySelector('details.file pre span:nth-child(2)').textContent");
    assert_eq!(text, "2line <2> & more");
    let visible =
        page.eval("document.querySelector('details.file pre').getBoundingClientRect().height > 0");
    assert_eq!(visible, true);
    let errors = page.errors();
    assert!(
        errors.is_empty(),
        "console errors on the diff page: {errors:?}"
    );
}
