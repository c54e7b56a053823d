//! Go's coverage report formatter (`internal/coverage/cformat`): merges
//! units across pods and prints `textfmt`, `percent` and `func` output
//! byte-for-byte like the Go tool.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use crate::gostr::to_go_bytes;
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
            to_go_bytes(&a.func.file)
                .cmp(&to_go_bytes(&b.func.file))
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
        for (_, p) in self.sorted_packages() {
            for r in Self::sorted_rows(p) {
                let u = r.unit;
                buf.extend_from_slice(&to_go_bytes(&r.func.file));
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
        self.sorted_packages()
            .into_iter()
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
        let mut out: Vec<u8> = Vec::new();
        for (path, cov, tot) in self.package_stats() {
            out.push(b'\t');
            out.extend_from_slice(&to_go_bytes(path));
            out.extend_from_slice(b"\t\t");
            if tot != 0 {
                let _ = writeln!(
                    out,
                    "coverage: {:.1}% of statements",
                    100.0 * cov as f64 / tot as f64
                );
            }
        }
        w.write_all(&out)
    }

    /// `func`: one line per non-literal function group, then `total`, laid
    /// out by Go's tabwriter.
    pub fn emit_funcs(&self, w: &mut dyn Write) -> io::Result<()> {
        fn perc(c: u64, t: u64) -> f64 {
            100.0 * c as f64 / (if t == 0 { 1 } else { t }) as f64
        }
        let mut text: Vec<u8> = Vec::new();
        let (mut all, mut covered) = (0u64, 0u64);
        for (_, p) in self.sorted_packages() {
            if p.units.is_empty() {
                continue;
            }
            let rows = Self::sorted_rows(p);
            let mut start = rows[0];
            let (mut c, mut t) = (0u64, 0u64);
            let mut flush = |start: &Row<'_>, c: u64, t: u64, text: &mut Vec<u8>| {
                if !start.func.lit {
                    text.extend_from_slice(&to_go_bytes(&start.func.file));
                    let _ = write!(text, ":{}:\t", start.unit.st_line);
                    text.extend_from_slice(&to_go_bytes(&start.func.name));
                    let _ = writeln!(text, "\t{:.1}%", perc(c, t));
                }
                all += t;
                covered += c;
            };
            for r in &rows {
                if r.func.name != start.func.name {
                    flush(&start, c, t, &mut text);
                    start = *r;
                    c = 0;
                    t = 0;
                }
                t += u64::from(r.unit.stmts);
                if r.count != 0 {
                    c += u64::from(r.unit.stmts);
                }
            }
            flush(&start, c, t, &mut text);
        }
        let _ = writeln!(text, "total\t(statements)\t{:.1}%", perc(covered, all));
        w.write_all(&crate::tabwriter::format(&text))
    }

    /// Packages in Go's order (by the bytes of the import path).
    fn sorted_packages(&self) -> Vec<(&String, &PkgState)> {
        let mut v: Vec<(&String, &PkgState)> = self.pkgs.iter().collect();
        if v.iter()
            .any(|(k, _)| matches!(to_go_bytes(k), std::borrow::Cow::Owned(_)))
        {
            v.sort_by(|a, b| to_go_bytes(a.0).cmp(&to_go_bytes(b.0)));
        }
        v
    }
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
