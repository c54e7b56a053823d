//! Times `report::render` on a synthetic collection shaped like a cluster:
//! `render_bench [ROWS] [FILES_PER_ROW] [LINES_PER_FILE]` (default 890 × 60 × 300),
//! every file with source. Prints the first (cold) and second (unchanged) render.

use std::time::Instant;

use report::{Block, FileCoverage, MemorySource, OwnerRow};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u32>().expect("numbers"));
    let rows = args.next().unwrap_or(890);
    let files = args.next().unwrap_or(60);
    let lines = args.next().unwrap_or(300);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("src");
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(root.join("go.mod"), "module example.com/big\n").unwrap();
    let mut text = String::new();
    for l in 1..=lines {
        text.push_str(&format!(
            "\tv{l} := f(v{}) // some code on line {l}\n",
            l - 1
        ));
    }
    for f in 0..files {
        std::fs::write(root.join(format!("pkg/f{f}.go")), &text).unwrap();
    }
    let mut src = MemorySource::default();
    for r in 0..rows {
        let fs: Vec<FileCoverage> = (0..files)
            .map(|f| {
                let blocks = (0..lines / 6)
                    .map(|k| Block {
                        st_line: k * 6 + 1,
                        st_col: 2,
                        en_line: k * 6 + 4,
                        en_col: 10,
                        stmts: 3,
                        count: u64::from((k + r + f) % 4),
                    })
                    .collect();
                FileCoverage::from_blocks(format!("example.com/big/pkg/f{f}.go"), blocks)
            })
            .collect();
        let row = OwnerRow {
            id: r.to_string(),
            namespace: format!("ns-{}", r % 40),
            owner_type: "Deployment".into(),
            owner: format!("owner-{r}"),
            binary: format!("bin-{}", r % 300),
            pods: vec![format!("owner-{r}-5d8f7c9b4-abcde")],
            total_stmts: fs.iter().map(|f| f.total_stmts).sum(),
            covered_stmts: fs.iter().map(|f| f.covered_stmts).sum(),
            ..OwnerRow::default()
        };
        src.rows.push((row, fs));
    }
    let opts = report::Options {
        out_dir: tmp.path().join("html"),
        repos_dir: tmp.path().join("repos"),
        extra_source_roots: vec![root],
        title: "bench".into(),
    };
    for pass in ["cold", "unchanged"] {
        let t = Instant::now();
        let s = report::render(&src, &opts).unwrap();
        println!(
            "{pass}: {} rows × {files} files × {lines} lines: {:.2}s ({} written, {} unchanged, {} files with source)",
            rows,
            t.elapsed().as_secs_f64(),
            s.pages_written,
            s.pages_unchanged,
            s.files_with_source
        );
    }
}
