//! Decode throughput: decodes every covmeta/covcounters file under the given
//! directories (recursively) several times and prints MB/s.
//!
//!     cargo run --release -p covdata --example throughput -- DIR... [--rounds N]

use std::path::{Path, PathBuf};
use std::time::Instant;

use covdata::{CounterFile, MetaFile};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if covdata::pods::is_coverage_file(&p) {
            out.push(p);
        }
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut rounds = 5usize;
    if let Some(i) = args.iter().position(|a| a == "--rounds") {
        rounds = args.get(i + 1).and_then(|r| r.parse().ok()).unwrap_or(5);
        args.drain(i..(i + 2).min(args.len()));
    }
    let mut files = Vec::new();
    for d in &args {
        walk(Path::new(d), &mut files);
    }
    let data: Vec<(bool, Vec<u8>)> = files
        .iter()
        .filter_map(|p| {
            let meta = p.file_name()?.to_str()?.starts_with("covmeta.");
            Some((meta, std::fs::read(p).ok()?))
        })
        .collect();
    let bytes: usize = data.iter().map(|(_, d)| d.len()).sum();
    let start = Instant::now();
    let mut errors = 0usize;
    for _ in 0..rounds {
        for (meta, d) in &data {
            let ok = if *meta {
                MetaFile::decode(d).is_ok()
            } else {
                CounterFile::decode(d).is_ok()
            };
            errors += usize::from(!ok);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (bytes * rounds) as f64 / 1e6;
    println!(
        "decoded {} files ({:.2} MB) x{rounds} in {:.3}s: {:.1} MB/s ({} errors)",
        data.len(),
        bytes as f64 / 1e6,
        secs,
        mb / secs,
        errors / rounds.max(1)
    );
}
