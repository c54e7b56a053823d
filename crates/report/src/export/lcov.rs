//! lcov tracefiles (`TN:`, `SF:`, `DA:`, `LF:`, `LH:`, `end_of_record`).
//!
//! Lines are derived from Go's blocks as `gcov2lcov` derives them: every line
//! a block spans gets the sum of the counts of the blocks spanning it, and is
//! hit when that sum is non-zero. Records are sorted by path.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::ExportData;

/// The lcov tracefile of an export.
pub fn lcov(data: &ExportData) -> String {
    let mut files: Vec<&super::ExportFile> = data.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = String::new();
    for f in files {
        let mut lines: BTreeMap<u32, u64> = BTreeMap::new();
        for (u, n) in f.units() {
            for l in u.st_line..=u.en_line.max(u.st_line) {
                let e = lines.entry(l).or_insert(0);
                *e = e.saturating_add(n);
            }
        }
        let _ = writeln!(out, "TN:\nSF:{}", f.path);
        let mut hit = 0;
        for (l, n) in &lines {
            let _ = writeln!(out, "DA:{l},{n}");
            if *n > 0 {
                hit += 1;
            }
        }
        let _ = writeln!(out, "LF:{}\nLH:{hit}\nend_of_record", lines.len());
    }
    out
}
