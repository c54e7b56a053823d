//! A meta-data file flattened for counting: every coverable unit gets an
//! index in one dense counter vector (package order, function order, unit
//! order), and knows its file and statement count.

use std::collections::HashMap;

use covdata::{CounterMode, MetaFile};

/// True for the file the coverage server is injected as. Its lines never
/// appear in statistics or reports. The instrumenter names the file; any
/// basename starting with `zz_covfleet` (covfleet's injector) or equal to
/// `coverage_server.go` (the seed system's name) counts.
pub fn is_injected_file(path: &str) -> bool {
    let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
    base.starts_with(INJECTED_PREFIX) || base == SEED_INJECTED_NAME
}

/// Basename prefix of covfleet's injected coverage server.
pub const INJECTED_PREFIX: &str = "zz_covfleet";
/// The seed system's injected file name.
pub const SEED_INJECTED_NAME: &str = "coverage_server.go";

/// One source file of a meta-data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: String,
    pub package_path: String,
    pub injected: bool,
}

/// One coverable unit with its position in the dense vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitInfo {
    pub file: u32,
    pub st_line: u32,
    pub st_col: u32,
    pub en_line: u32,
    pub en_col: u32,
    pub stmts: u32,
}

/// The flattened meta-data file.
#[derive(Debug, Clone)]
pub struct Layout {
    pub mode: CounterMode,
    /// Per package, per function: index of the function's first unit.
    pub func_start: Vec<Vec<u32>>,
    /// Per package, per function: number of units.
    pub func_len: Vec<Vec<u32>>,
    pub units: Vec<UnitInfo>,
    pub files: Vec<FileInfo>,
    pub module_path: String,
}

impl Layout {
    pub fn new(meta: &MetaFile) -> Layout {
        let mut files: Vec<FileInfo> = Vec::new();
        let mut file_index: HashMap<&str, u32> = HashMap::new();
        let mut units = Vec::new();
        let mut func_start = Vec::with_capacity(meta.packages.len());
        let mut func_len = Vec::with_capacity(meta.packages.len());
        for p in &meta.packages {
            let mut starts = Vec::with_capacity(p.funcs.len());
            let mut lens = Vec::with_capacity(p.funcs.len());
            for f in &p.funcs {
                let fi = *file_index.entry(f.file.as_str()).or_insert_with(|| {
                    files.push(FileInfo {
                        path: f.file.clone(),
                        package_path: p.path.clone(),
                        injected: is_injected_file(&f.file),
                    });
                    (files.len() - 1) as u32
                });
                starts.push(units.len() as u32);
                lens.push(f.units.len() as u32);
                for u in &f.units {
                    units.push(UnitInfo {
                        file: fi,
                        st_line: u.st_line,
                        st_col: u.st_col,
                        en_line: u.en_line,
                        en_col: u.en_col,
                        stmts: u.stmts,
                    });
                }
            }
            func_start.push(starts);
            func_len.push(lens);
        }
        let module_path = meta
            .packages
            .iter()
            .map(|p| p.module_path.as_str())
            .find(|m| !m.is_empty())
            .unwrap_or("")
            .to_string();
        Layout {
            mode: meta.mode,
            func_start,
            func_len,
            units,
            files,
            module_path,
        }
    }

    /// Number of units (the length of a dense counter vector).
    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Adds one counter file's records into a dense vector (Go's semantics
    /// for one file: each record's counters land on its function's units).
    /// Records naming a package or function the meta-data does not have are
    /// counted in the returned number and skipped.
    pub fn scatter(&self, funcs: &[covdata::FuncCounters], dense: &mut [u32]) -> usize {
        let mut skipped = 0;
        for f in funcs {
            let (Some(start), Some(len)) = (
                self.func_start
                    .get(f.pkg as usize)
                    .and_then(|v| v.get(f.func as usize)),
                self.func_len
                    .get(f.pkg as usize)
                    .and_then(|v| v.get(f.func as usize)),
            ) else {
                skipped += 1;
                continue;
            };
            let n = (*len as usize).min(f.counters.len());
            let s = *start as usize;
            for (d, &c) in dense[s..s + n].iter_mut().zip(&f.counters[..n]) {
                *d = (*d).max(c);
            }
        }
        skipped
    }

    /// Statement totals over non-injected files: (total, covered).
    pub fn stmt_totals(&self, dense: &[u32]) -> (u64, u64) {
        let mut total = 0u64;
        let mut covered = 0u64;
        for (u, &c) in self.units.iter().zip(dense) {
            if self.files[u.file as usize].injected {
                continue;
            }
            total += u64::from(u.stmts);
            if c > 0 {
                covered += u64::from(u.stmts);
            }
        }
        (total, covered)
    }

    /// Total statements over non-injected files.
    pub fn total_stmts(&self) -> u64 {
        self.units
            .iter()
            .filter(|u| !self.files[u.file as usize].injected)
            .map(|u| u64::from(u.stmts))
            .sum()
    }

    /// Per-file (total, covered) statements, indexed like `files`.
    pub fn file_totals(&self, dense: &[u32]) -> Vec<(u64, u64)> {
        let mut out = vec![(0u64, 0u64); self.files.len()];
        for (u, &c) in self.units.iter().zip(dense) {
            let e = &mut out[u.file as usize];
            e.0 += u64::from(u.stmts);
            if c > 0 {
                e.1 += u64::from(u.stmts);
            }
        }
        out
    }
}

/// Percentage with Go's convention (0 statements → 0%).
pub fn pct(covered: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * covered as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_names() {
        assert!(is_injected_file(
            "example.com/app/cmd/zz_covfleet_server.go"
        ));
        assert!(is_injected_file("zz_covfleet.go"));
        assert!(is_injected_file("/workspace/cmd/x/coverage_server.go"));
        assert!(!is_injected_file("example.com/app/coverage_server_test.go"));
        assert!(!is_injected_file("example.com/zz_covfleet/main.go"));
    }
}
