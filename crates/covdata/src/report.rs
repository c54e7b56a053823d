//! Go's coverage report formatter (`internal/coverage/cformat`): merges
//! units across pods and prints `textfmt`, `percent` and `func` output
//! byte-for-byte like the Go tool.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use crate::merge::saturating_add;
use crate::meta::{CounterMode, Unit};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FnFile {
    file: String,
    name: String,
    lit: bool,
}

#[derive(Debug, Default)]
struct PkgState {
    funcs: Vec<FnFile>,
    func_table: HashMap<FnFile, u32>,
    units: HashMap<(u32, Unit), u32>,
}

/// Accumulates units per package and emits Go's report formats.
#[derive(Debug)]
pub struct Formatter {
    mode: CounterMode,
    pkgs: BTreeMap<String, PkgState>,
    current: Option<String>,
}

/// A unit with its function, as sorted for output.
#[derive(Debug, Clone, Copy)]
struct Row<'a> {
    func: &'a FnFile,
    fid: u32,
    unit: Unit,
    count: u32,
}

impl Formatter {
    /// A formatter merging in `mode` (set: OR; otherwise saturating add).
    pub fn new(mode: CounterMode) -> Self {
        Formatter {
            mode,
            pkgs: BTreeMap::new(),
            current: None,
        }
    }

    pub fn mode(&self) -> CounterMode {
        self.mode
    }

    /// Selects (creating if needed) the package that `add_unit` adds to.
    pub fn set_package(&mut self, import_path: &str) {
        if self.current.as_deref() == Some(import_path) {
            return;
        }
        self.pkgs.entry(import_path.to_string()).or_default();
        self.current = Some(import_path.to_string());
    }

    /// Adds (merges) one unit's count into the current package.
    pub fn add_unit(&mut self, file: &str, func: &str, lit: bool, unit: Unit, count: u32) {
        let Some(cur) = self.current.as_deref() else {
            return;
        };
        let Some(p) = self.pkgs.get_mut(cur) else {
            return;
        };
        let key = FnFile {
            file: file.to_string(),
            name: func.to_string(),
            lit,
        };
        let idx = match p.func_table.get(&key) {
            Some(&i) => i,
            None => {
                let i = p.funcs.len() as u32;
                p.funcs.push(key.clone());
                p.func_table.insert(key, i);
                i
            }
        };
        let slot = p.units.entry((idx, unit)).or_insert(0);
        *slot = if self.mode == CounterMode::SET {
            u32::from(count != 0 || *slot != 0)
        } else {
            saturating_add(*slot, count).0
        };
    }

    fn sorted_rows(p: &PkgState) -> Vec<Row<'_>> {
        let mut rows: Vec<Row<'_>> = p
            .units
            .iter()
            .map(|(&(fid, unit), &count)| Row {
                func: &p.funcs[fid as usize],
                fid,
                unit,
                count,
            })
            .collect();
        rows.sort_unstable_by(|a, b| {
            a.func
                .file
                .cmp(&b.func.file)
                .then(a.unit.st_line.cmp(&b.unit.st_line))
                .then(a.unit.en_line.cmp(&b.unit.en_line))
                .then(a.unit.st_col.cmp(&b.unit.st_col))
                .then(a.unit.en_col.cmp(&b.unit.en_col))
                .then(a.unit.stmts.cmp(&b.unit.stmts))
                // Go leaves ties in map order; covfleet is deterministic.
                .then(a.fid.cmp(&b.fid))
        });
        rows
    }

    /// The import paths seen, sorted.
    pub fn packages(&self) -> impl Iterator<Item = &str> {
        self.pkgs.keys().map(String::as_str)
    }

    /// `textfmt`: `mode: M` then `file:SL.SC,EL.EC N C` per unit.
    pub fn emit_textual(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut buf = Vec::with_capacity(64 * 1024);
        writeln!(buf, "mode: {}", self.mode)?;
        for p in self.pkgs.values() {
            for r in Self::sorted_rows(p) {
                let u = r.unit;
                buf.extend_from_slice(r.func.file.as_bytes());
                let mut ib = itoa_buf();
                buf.push(b':');
                push_num(&mut buf, &mut ib, u.st_line);
                buf.push(b'.');
                push_num(&mut buf, &mut ib, u.st_col);
                buf.push(b',');
                push_num(&mut buf, &mut ib, u.en_line);
                buf.push(b'.');
                push_num(&mut buf, &mut ib, u.en_col);
                buf.push(b' ');
                push_num(&mut buf, &mut ib, u.stmts);
                buf.push(b' ');
                push_num(&mut buf, &mut ib, r.count);
                buf.push(b'\n');
                if buf.len() > 60 * 1024 {
                    w.write_all(&buf)?;
                    buf.clear();
                }
            }
        }
        w.write_all(&buf)
    }

    /// Per-package (covered, total) statement counts, sorted by import path.
    pub fn package_stats(&self) -> Vec<(&str, u64, u64)> {
        self.pkgs
            .iter()
            .map(|(path, p)| {
                let (mut cov, mut tot) = (0u64, 0u64);
                for (&(_, u), &c) in &p.units {
                    tot += u64::from(u.stmts);
                    if c != 0 {
                        cov += u64::from(u.stmts);
                    }
                }
                (path.as_str(), cov, tot)
            })
            .collect()
    }

    /// `percent`: `\t<pkg>\t\tcoverage: X% of statements\n` per package
    /// (with Go's quirk: no newline at all for a package without statements).
    pub fn emit_percent(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut out = String::new();
        for (path, cov, tot) in self.package_stats() {
            out.push('\t');
            out.push_str(path);
            out.push_str("\t\t");
            if tot != 0 {
                out.push_str(&format!(
                    "coverage: {:.1}% of statements\n",
                    100.0 * cov as f64 / tot as f64
                ));
            }
        }
        w.write_all(out.as_bytes())
    }

    /// `func`: one line per non-literal function group, then `total`.
    pub fn emit_funcs(&self, w: &mut dyn Write) -> io::Result<()> {
        fn perc(c: u64, t: u64) -> f64 {
            100.0 * c as f64 / (if t == 0 { 1 } else { t }) as f64
        }
        let mut table: Vec<[String; 3]> = Vec::new();
        let (mut all, mut covered) = (0u64, 0u64);
        for p in self.pkgs.values() {
            if p.units.is_empty() {
                continue;
            }
            let rows = Self::sorted_rows(p);
            let mut start = rows[0];
            let (mut c, mut t) = (0u64, 0u64);
            let mut flush = |start: &Row<'_>, c: u64, t: u64, table: &mut Vec<[String; 3]>| {
                if !start.func.lit {
                    table.push([
                        format!("{}:{}:", start.func.file, start.unit.st_line),
                        start.func.name.clone(),
                        format!("{:.1}%", perc(c, t)),
                    ]);
                }
                all += t;
                covered += c;
            };
            for r in &rows {
                if r.func.name != start.func.name {
                    flush(&start, c, t, &mut table);
                    start = *r;
                    c = 0;
                    t = 0;
                }
                t += u64::from(r.unit.stmts);
                if r.count != 0 {
                    c += u64::from(r.unit.stmts);
                }
            }
            flush(&start, c, t, &mut table);
        }
        table.push([
            "total".into(),
            "(statements)".into(),
            format!("{:.1}%", perc(covered, all)),
        ]);
        w.write_all(tabwrite(&table).as_bytes())
    }
}

/// Go's `text/tabwriter` with (minwidth 1, tabwidth 8, padding 1, padchar
/// '\t', flags 0) for rows of two tab-terminated cells and a trailing cell.
pub fn tabwrite(rows: &[[String; 3]]) -> String {
    let width = |col: usize| -> usize {
        let w = rows
            .iter()
            .map(|r| r[col].chars().count() + 1)
            .max()
            .unwrap_or(0)
            .max(1);
        w.div_ceil(8) * 8
    };
    let (w0, w1) = (width(0), width(1));
    let mut out = String::new();
    for r in rows {
        for (cell, w) in [(&r[0], w0), (&r[1], w1)] {
            out.push_str(cell);
            let n = w - cell.chars().count();
            for _ in 0..n.div_ceil(8) {
                out.push('\t');
            }
        }
        out.push_str(&r[2]);
        out.push('\n');
    }
    out
}

fn itoa_buf() -> [u8; 10] {
    [0; 10]
}

#[inline]
fn push_num(out: &mut Vec<u8>, buf: &mut [u8; 10], mut v: u32) {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_matches_go_layout() {
        let rows = vec![
            [
                "example.com/app/main.go:12:".to_string(),
                "*T.Inc".into(),
                "100.0%".into(),
            ],
            [
                "example.com/app/util/util.go:12:".to_string(),
                "Unused".into(),
                "0.0%".into(),
            ],
            ["total".to_string(), "(statements)".into(), "75.0%".into()],
        ];
        let s = tabwrite(&rows);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "example.com/app/main.go:12:\t\t*T.Inc\t\t100.0%");
        assert_eq!(lines[1], "example.com/app/util/util.go:12:\tUnused\t\t0.0%");
        assert_eq!(lines[2], "total\t\t\t\t\t(statements)\t75.0%");
    }
}
