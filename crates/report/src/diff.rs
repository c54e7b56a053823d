//! Coverage differences between two states of a fleet (two collections, two
//! databases, or two phases): per owner, file and function, the statements
//! newly covered, no longer covered, and still missed.
//!
//! Owners are paired by (namespace, owner type, owner, binary); two builds of
//! a binary (different meta hashes) still pair. Functions are paired by
//! (package, file, function name), and their blocks by their position
//! relative to the function's first block (so code that moved down the file
//! still matches). Whatever cannot be paired is reported: owners, functions
//! and statements present on one side only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::cov::{FuncCov, OwnerCov};

/// Statement counts of a comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Not run in BASE, run in HEAD.
    pub new: u64,
    /// Run in BASE, not in HEAD.
    pub lost: u64,
    /// Run in neither.
    pub missed: u64,
    /// Run in both.
    pub kept: u64,
    /// Statements of blocks only BASE has (code removed or changed).
    pub only_base: u64,
    /// Statements of blocks only HEAD has (code added or changed); `head_only_run` of them ran.
    pub only_head: u64,
    pub head_only_run: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.new += o.new;
        self.lost += o.lost;
        self.missed += o.missed;
        self.kept += o.kept;
        self.only_base += o.only_base;
        self.only_head += o.only_head;
        self.head_only_run += o.head_only_run;
    }

    /// Net gain in covered statements among paired blocks.
    pub fn gain(&self) -> i64 {
        self.new as i64 - self.lost as i64
    }
}

/// One function's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct FuncDiff {
    pub name: String,
    /// `paired`, `only_base` or `only_head`.
    pub status: &'static str,
    pub counts: Counts,
}

/// One file's comparison (line numbers are HEAD's).
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    /// The path as the coverage data names it.
    pub path: String,
    pub counts: Counts,
    pub functions: Vec<FuncDiff>,
    /// Lines of blocks newly run.
    pub new_lines: Vec<u32>,
    /// Lines of blocks no longer run.
    pub lost_lines: Vec<u32>,
    /// Lines of blocks run in neither.
    pub missed_lines: Vec<u32>,
}

/// One owner's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct OwnerDiff {
    pub namespace: String,
    pub owner_type: String,
    pub owner: String,
    pub binary: String,
    pub base_meta_hash: String,
    pub head_meta_hash: String,
    pub base_pct: f64,
    pub head_pct: f64,
    pub counts: Counts,
    pub files: Vec<FileDiff>,
    /// `file: function` of functions found on one side only.
    pub unmatched_functions: Vec<String>,
    /// HEAD's owner id (for links into HEAD's site).
    #[serde(skip)]
    pub head_id: i64,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// Sorted by gain (newly covered minus no longer covered), largest first.
    pub owners: Vec<OwnerDiff>,
    /// `namespace/type/owner/binary` of owners in BASE only.
    pub owners_only_base: Vec<String>,
    /// … and in HEAD only.
    pub owners_only_head: Vec<String>,
    pub total: Counts,
}

type OwnerKey = (String, String, String, String);

fn owner_key(o: &db::Owner) -> OwnerKey {
    (
        o.namespace.clone(),
        o.owner_type.clone(),
        o.owner_name.clone(),
        o.binary_name.clone(),
    )
}

fn key_str(k: &OwnerKey) -> String {
    format!("{}/{}/{}/{}", k.0, k.1, k.2, k.3)
}

/// Pairs owners (same meta hash first) and compares each pair.
pub fn diff(base: &[OwnerCov], head: &[OwnerCov]) -> Diff {
    let mut by_key: BTreeMap<OwnerKey, (Vec<&OwnerCov>, Vec<&OwnerCov>)> = BTreeMap::new();
    for b in base {
        by_key.entry(owner_key(&b.owner)).or_default().0.push(b);
    }
    for h in head {
        by_key.entry(owner_key(&h.owner)).or_default().1.push(h);
    }
    let mut owners = Vec::new();
    let mut only_base = Vec::new();
    let mut only_head = Vec::new();
    for (k, (mut bs, mut hs)) in by_key {
        let mut pairs = Vec::new();
        // Same build first, then the rest in order.
        bs.retain(|b| {
            if let Some(i) = hs
                .iter()
                .position(|h| h.owner.meta_hash == b.owner.meta_hash)
            {
                pairs.push((*b, hs.remove(i)));
                false
            } else {
                true
            }
        });
        while !bs.is_empty() && !hs.is_empty() {
            pairs.push((bs.remove(0), hs.remove(0)));
        }
        for b in bs {
            only_base.push(format!("{} ({})", key_str(&k), short(&b.owner.meta_hash)));
        }
        for h in hs {
            only_head.push(format!("{} ({})", key_str(&k), short(&h.owner.meta_hash)));
        }
        for (b, h) in pairs {
            owners.push(owner_diff(b, h));
        }
    }
    owners.sort_by(|a, b| {
        b.counts
            .gain()
            .cmp(&a.counts.gain())
            .then(b.counts.new.cmp(&a.counts.new))
            .then((&a.namespace, &a.owner).cmp(&(&b.namespace, &b.owner)))
    });
    let mut total = Counts::default();
    for o in &owners {
        total.add(&o.counts);
    }
    Diff {
        owners,
        owners_only_base: only_base,
        owners_only_head: only_head,
        total,
    }
}

fn short(h: &str) -> &str {
    &h[..h.len().min(8)]
}

type FuncKey = (String, String, String);

fn func_key(f: &FuncCov) -> FuncKey {
    (f.package.clone(), f.file.clone(), f.name.clone())
}

/// A block's position relative to its function's first block.
type RelUnit = (u32, u32, u32, u32, u32);

fn rel_units(f: &FuncCov) -> HashMap<RelUnit, Vec<(covdata::Unit, u32)>> {
    let first = f.first_line();
    let mut m: HashMap<RelUnit, Vec<(covdata::Unit, u32)>> = HashMap::new();
    for (u, c) in &f.units {
        m.entry((
            u.st_line - first.min(u.st_line),
            u.st_col,
            u.en_line - first.min(u.en_line),
            u.en_col,
            u.stmts,
        ))
        .or_default()
        .push((*u, *c));
    }
    m
}

#[derive(Default)]
struct FileAcc {
    counts: Counts,
    functions: Vec<FuncDiff>,
    new_lines: BTreeSet<u32>,
    lost_lines: BTreeSet<u32>,
    missed_lines: BTreeSet<u32>,
}

fn lines(u: &covdata::Unit) -> std::ops::RangeInclusive<u32> {
    u.st_line..=u.en_line.max(u.st_line)
}

fn owner_diff(b: &OwnerCov, h: &OwnerCov) -> OwnerDiff {
    let bfuncs: HashMap<FuncKey, FuncCov> =
        b.funcs().into_iter().map(|f| (func_key(&f), f)).collect();
    let hfuncs = h.funcs();
    let mut files: BTreeMap<String, FileAcc> = BTreeMap::new();
    let mut seen: BTreeSet<FuncKey> = BTreeSet::new();
    let mut unmatched = Vec::new();
    for hf in &hfuncs {
        let key = func_key(hf);
        let acc = files.entry(hf.file.clone()).or_default();
        let mut c = Counts::default();
        let status = match bfuncs.get(&key) {
            Some(bf) => {
                seen.insert(key);
                let mut bu = rel_units(bf);
                let hr = rel_units(hf);
                for (rk, list) in hr.clone() {
                    for (i, (u, hc)) in list.into_iter().enumerate() {
                        let s = u64::from(u.stmts);
                        match bu.get(&rk).and_then(|v| v.get(i)).map(|x| x.1) {
                            Some(bc) => {
                                let set = match (bc > 0, hc > 0) {
                                    (false, true) => {
                                        c.new += s;
                                        Some(&mut acc.new_lines)
                                    }
                                    (true, false) => {
                                        c.lost += s;
                                        Some(&mut acc.lost_lines)
                                    }
                                    (false, false) => {
                                        c.missed += s;
                                        Some(&mut acc.missed_lines)
                                    }
                                    (true, true) => {
                                        c.kept += s;
                                        None
                                    }
                                };
                                if let Some(set) = set
                                    && s > 0
                                {
                                    set.extend(lines(&u));
                                }
                            }
                            None => {
                                c.only_head += s;
                                if hc > 0 {
                                    c.head_only_run += s;
                                }
                            }
                        }
                    }
                    bu.remove(&rk);
                }
                // Base blocks left unpaired.
                for (rk, list) in rel_units(bf) {
                    let paired = hr.get(&rk).map_or(0, Vec::len);
                    for (u, _) in list.into_iter().skip(paired) {
                        c.only_base += u64::from(u.stmts);
                    }
                }
                "paired"
            }
            None => {
                let (run, all) = hf.stmts();
                c.only_head = all;
                c.head_only_run = run;
                unmatched.push(format!("{}: {} (only in HEAD)", hf.file, hf.name));
                "only_head"
            }
        };
        acc.counts.add(&c);
        acc.functions.push(FuncDiff {
            name: hf.name.clone(),
            status,
            counts: c,
        });
    }
    let mut base_only: Vec<&FuncCov> = bfuncs
        .iter()
        .filter(|(k, _)| !seen.contains(*k))
        .map(|(_, f)| f)
        .collect();
    base_only.sort_by(|x, y| (&x.file, x.first_line()).cmp(&(&y.file, y.first_line())));
    for bf in base_only {
        let c = Counts {
            only_base: bf.stmts().1,
            ..Counts::default()
        };
        unmatched.push(format!("{}: {} (only in BASE)", bf.file, bf.name));
        let acc = files.entry(bf.file.clone()).or_default();
        acc.counts.add(&c);
        acc.functions.push(FuncDiff {
            name: bf.name.clone(),
            status: "only_base",
            counts: c,
        });
    }
    let mut counts = Counts::default();
    let mut out_files = Vec::new();
    for (path, mut acc) in files {
        counts.add(&acc.counts);
        acc.functions.sort_by(|x, y| {
            (y.counts.gain(), y.counts.new)
                .cmp(&(x.counts.gain(), x.counts.new))
                .then(x.name.cmp(&y.name))
        });
        out_files.push(FileDiff {
            path,
            counts: acc.counts,
            functions: acc.functions,
            new_lines: acc.new_lines.into_iter().collect(),
            lost_lines: acc.lost_lines.into_iter().collect(),
            missed_lines: acc.missed_lines.into_iter().collect(),
        });
    }
    out_files.sort_by(|x, y| {
        (y.counts.gain(), y.counts.new)
            .cmp(&(x.counts.gain(), x.counts.new))
            .then(x.path.cmp(&y.path))
    });
    OwnerDiff {
        namespace: h.owner.namespace.clone(),
        owner_type: h.owner.owner_type.clone(),
        owner: h.owner.owner_name.clone(),
        binary: h.owner.binary_name.clone(),
        base_meta_hash: b.owner.meta_hash.clone(),
        head_meta_hash: h.owner.meta_hash.clone(),
        base_pct: b.owner.coverage_pct,
        head_pct: h.owner.coverage_pct,
        counts,
        files: out_files,
        unmatched_functions: unmatched,
        head_id: h.owner.id,
    }
}

/// The text report: owners by gain, then the functions that changed.
pub fn format_text(d: &Diff) -> String {
    use std::fmt::Write as _;
    let mut t = String::from("OWNER\tBINARY\tNEW\tLOST\tMISSED\tBASE\tHEAD\tUNMATCHED\n");
    for o in &d.owners {
        let _ = writeln!(
            t,
            "{}/{}\t{}\t+{}\t-{}\t{}\t{:.1}%\t{:.1}%\t{}",
            o.namespace,
            o.owner,
            o.binary,
            o.counts.new,
            o.counts.lost,
            o.counts.missed,
            o.base_pct,
            o.head_pct,
            o.unmatched_functions.len()
        );
    }
    let _ = writeln!(
        t,
        "total\t\t+{}\t-{}\t{}\t\t\t",
        d.total.new, d.total.lost, d.total.missed
    );
    let mut out = String::from_utf8_lossy(&tabwrite(&t)).into_owned();
    // Every function that gained or lost, largest gain first.
    let mut changed: Vec<(&OwnerDiff, &FileDiff, &FuncDiff)> = d
        .owners
        .iter()
        .flat_map(|o| o.files.iter().map(move |f| (o, f)))
        .flat_map(|(o, f)| f.functions.iter().map(move |func| (o, f, func)))
        .filter(|(_, _, func)| func.counts.new > 0 || func.counts.lost > 0)
        .collect();
    changed.sort_by_key(|(_, _, func)| std::cmp::Reverse((func.counts.gain(), func.counts.new)));
    let mut fl = String::new();
    for (o, f, func) in changed {
        let _ = writeln!(
            fl,
            "{}/{}\t{}\t{}\t+{}\t-{}\t{}",
            o.namespace,
            o.owner,
            f.path,
            func.name,
            func.counts.new,
            func.counts.lost,
            func.counts.missed
        );
    }
    if !fl.is_empty() {
        out.push_str("\nFUNCTIONS (newly covered / no longer covered / still missed statements)\n");
        out.push_str(&String::from_utf8_lossy(&tabwrite(&fl)));
    }
    let unmatched: usize = d.owners.iter().map(|o| o.unmatched_functions.len()).sum();
    if unmatched > 0 || !d.owners_only_base.is_empty() || !d.owners_only_head.is_empty() {
        out.push_str("\nNOT MATCHED\n");
        for o in &d.owners {
            for u in &o.unmatched_functions {
                let _ = writeln!(out, "  {}/{}: {u}", o.namespace, o.owner);
            }
        }
        for o in &d.owners_only_base {
            let _ = writeln!(out, "  owner only in BASE: {o}");
        }
        for o in &d.owners_only_head {
            let _ = writeln!(out, "  owner only in HEAD: {o}");
        }
    }
    out
}

fn tabwrite(text: &str) -> Vec<u8> {
    // Go's tabwriter pads with tabs; spaces read better in a terminal table.
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut w = vec![0usize; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(w[i] - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.into_bytes()
}
