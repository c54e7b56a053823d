//! Times `textfmt` in-process over each given directory (no process start,
//! output discarded) and prints input and output MB/s.
//!
//!     cargo run --release -p covdata --example textfmt -- DIR... [--rounds N]

use std::time::Instant;

use covdata::tool::{DumpKind, TextfmtOut, dump};

/// Counts the bytes written.
#[derive(Debug, Default)]
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn dir_bytes(dir: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| covdata::pods::is_coverage_file(&e.path()))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let mut dirs: Vec<String> = std::env::args().skip(1).collect();
    let mut rounds = 5usize;
    if let Some(i) = dirs.iter().position(|a| a == "--rounds") {
        rounds = dirs.get(i + 1).and_then(|r| r.parse().ok()).unwrap_or(5);
        dirs.drain(i..(i + 2).min(dirs.len()));
    }
    let input: u64 = dirs.iter().map(|d| dir_bytes(d)).sum();
    let (mut output, mut failures) = (0usize, 0usize);
    let start = Instant::now();
    for _ in 0..rounds {
        for d in &dirs {
            let mut out = Count::default();
            let r = dump(
                DumpKind::Textfmt,
                std::slice::from_ref(d),
                None,
                Some(TextfmtOut {
                    writer: &mut out,
                    path: "-",
                }),
                &mut std::io::sink(),
                &mut Vec::new(),
            );
            failures += usize::from(r.is_err());
            output += out.0;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "textfmt in-process: {} dirs x{rounds} in {:.3}s = {:.2} ms/dir: {:.1} MB/s in, {:.1} MB/s out ({failures} failures)",
        dirs.len(),
        secs,
        1e3 * secs / (dirs.len() * rounds) as f64,
        (input as f64 * rounds as f64) / 1e6 / secs,
        output as f64 / 1e6 / secs,
    );
}
