//! `textfmt` for a single pod, straight from its [`MetaView`] and merged
//! counters: the common case (one `GOCOVERDIR` per call, as the production
//! system ran it) without the cross-pod [`Formatter`](crate::report::Formatter).
//!
//! The output is the Formatter's, byte for byte: packages in import-path
//! byte order; in each, units ordered by (file, start line, end line, start
//! column, end column, statements, function), where a function is Go's key
//! (file, name, literal flag) numbered by first appearance; rows of the same
//! function and unit merged. Here a function is first its index in the
//! package, which is that numbering whenever no two functions share a key;
//! a package where two different functions list the same unit falls back to
//! the exact numbering (see [`Package::canonical`]).
//!
//! Each package's rows are 16-byte items (a packed sort key, the unit's
//! index, its count) in one reused vector: no hashing, no per-function
//! allocation, and memory bounded by the largest package.

use std::io::{self, Write};

use rustc_hash::FxHashMap;

use crate::meta::{CounterMode, MetaView, PackageView, Unit};
use crate::report::{LineWriter, merge_count};

/// One unit of a package: its sort key, index in [`MetaView::units`] and
/// count. `K` packs (file rank, start line, end line, start column).
#[derive(Clone, Copy)]
struct Item<K> {
    key: K,
    unit: u32,
    count: u32,
}

/// Bit widths of a package's sort-key fields.
#[derive(Clone, Copy)]
struct Widths {
    line: u32,
    col: u32,
}

fn bits(v: u32) -> u32 {
    u32::BITS - v.leading_zeros()
}

/// A sort key: (rank, start line, end line, start column) packed so that
/// integer order is tuple order.
trait Key: Ord + Copy {
    fn pack(rank: u32, u: &Unit, w: Widths) -> Self;
    fn rank(self, w: Widths) -> u32;
}

impl Key for u64 {
    #[inline]
    fn pack(rank: u32, u: &Unit, w: Widths) -> Self {
        (((u64::from(rank) << w.line | u64::from(u.st_line)) << w.line | u64::from(u.en_line))
            << w.col)
            | u64::from(u.st_col)
    }
    #[inline]
    fn rank(self, w: Widths) -> u32 {
        self.checked_shr(2 * w.line + w.col).unwrap_or(0) as u32
    }
}

impl Key for u128 {
    #[inline]
    fn pack(rank: u32, u: &Unit, _: Widths) -> Self {
        (u128::from(rank) << 96)
            | (u128::from(u.st_line) << 64)
            | (u128::from(u.en_line) << 32)
            | u128::from(u.st_col)
    }
    #[inline]
    fn rank(self, _: Widths) -> u32 {
        (self >> 96) as u32
    }
}

/// The package being formatted.
struct Package<'v, 'a> {
    view: &'v MetaView<'a>,
    pkg: &'v PackageView<'a>,
    /// Distinct source-file names in byte order.
    files: Vec<&'a [u8]>,
    /// (string index, rank in `files`) for each file string index, sorted.
    rank_of: Vec<(u32, u32)>,
    /// For each function of the package (by index from `pkg.funcs.start`),
    /// the number Go's formatter gives it; `None` while it is the index.
    canonical: Option<Vec<u32>>,
}

impl<'v, 'a> Package<'v, 'a> {
    fn new(view: &'v MetaView<'a>, pkg: &'v PackageView<'a>) -> Self {
        let funcs = &view.funcs[pkg.funcs.clone()];
        let mut idx: Vec<u32> = funcs
            .iter()
            .filter(|f| f.num_units > 0)
            .map(|f| f.file)
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let mut by_name = idx.clone();
        by_name.sort_unstable_by(|&a, &b| view.str(a).cmp(view.str(b)));
        let mut files: Vec<&[u8]> = Vec::with_capacity(by_name.len());
        let mut rank_of = Vec::with_capacity(by_name.len());
        for &s in &by_name {
            let name = view.str(s);
            if files.last() != Some(&name) {
                files.push(name);
            }
            rank_of.push((s, files.len() as u32 - 1));
        }
        rank_of.sort_unstable();
        Package {
            view,
            pkg,
            files,
            rank_of,
            canonical: None,
        }
    }

    fn rank(&self, file: u32) -> u32 {
        let i = self
            .rank_of
            .binary_search_by_key(&file, |&(s, _)| s)
            .expect("every file with units is ranked");
        self.rank_of[i].1
    }

    /// The package-relative function holding unit `unit`.
    fn func_of(&self, unit: u32) -> u32 {
        let funcs = &self.view.funcs[self.pkg.funcs.clone()];
        // Units are contiguous in function order: the last function with
        // units that starts at or before `unit`.
        let mut i = funcs.partition_point(|f| f.first_unit <= unit) - 1;
        while funcs[i].num_units == 0 {
            i -= 1;
        }
        i as u32
    }

    /// The number Go's formatter gives the function holding `unit`.
    fn fid(&self, unit: u32) -> u32 {
        let f = self.func_of(unit);
        self.canonical.as_ref().map_or(f, |c| c[f as usize])
    }

    /// Order of two items with equal keys: end column, statements, function.
    fn tie<K>(&self, a: &Item<K>, b: &Item<K>) -> std::cmp::Ordering {
        let (ua, ub) = (
            &self.view.units[a.unit as usize],
            &self.view.units[b.unit as usize],
        );
        (ua.en_col, ua.stmts)
            .cmp(&(ub.en_col, ub.stmts))
            .then_with(|| self.fid(a.unit).cmp(&self.fid(b.unit)))
    }

    /// Numbers functions as Go's formatter does: by first appearance of
    /// their (file, literal flag, name).
    fn number_by_key(&mut self) {
        let funcs = &self.view.funcs[self.pkg.funcs.clone()];
        let mut first: FxHashMap<(u32, bool, &[u8]), u32> = FxHashMap::default();
        let mut canonical = vec![0u32; funcs.len()];
        for (i, f) in funcs.iter().enumerate() {
            if f.num_units == 0 {
                continue;
            }
            let key = (self.rank(f.file), f.literal, self.view.str(f.name));
            canonical[i] = *first.entry(key).or_insert(i as u32);
        }
        self.canonical = Some(canonical);
    }
}

/// Writes the `textfmt` profile of one pod: `packages` are indices into
/// `view.packages`, in output order, with distinct import paths; `counts`
/// gives a function's merged counters (by index in `view.funcs`; `None` or
/// empty: all zero), at least as many as it has units.
pub fn emit_textual<'c>(
    mode: CounterMode,
    view: &MetaView<'_>,
    packages: &[usize],
    counts: impl Fn(usize) -> Option<&'c [u32]>,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut out = LineWriter::new(w, mode);
    let set = mode == CounterMode::SET;
    let (mut narrow, mut wide) = (Vec::new(), Vec::new());
    for &pi in packages {
        let pkg = &view.packages[pi];
        let mut p = Package::new(view, pkg);
        let (mut max_line, mut max_col) = (0u32, 0u32);
        for u in &view.units[view.package_units(pkg)] {
            max_line = max_line.max(u.st_line).max(u.en_line);
            max_col = max_col.max(u.st_col);
        }
        let widths = Widths {
            line: bits(max_line),
            col: bits(max_col),
        };
        let max_rank = (p.files.len() as u32).saturating_sub(1);
        if bits(max_rank) + 2 * widths.line + widths.col <= 64 {
            package_rows::<u64>(&mut p, widths, set, &counts, &mut narrow);
            emit_rows(&p, widths, &narrow, &mut out)?;
        } else {
            package_rows::<u128>(&mut p, widths, set, &counts, &mut wide);
            emit_rows(&p, widths, &wide, &mut out)?;
        }
    }
    out.finish()
}

/// Fills `items` with the package's rows in output order, merged.
fn package_rows<'c, K: Key>(
    p: &mut Package<'_, '_>,
    widths: Widths,
    set: bool,
    counts: &impl Fn(usize) -> Option<&'c [u32]>,
    items: &mut Vec<Item<K>>,
) {
    let view = p.view;
    let order =
        |p: &Package<'_, '_>, a: &Item<K>, b: &Item<K>| a.key.cmp(&b.key).then_with(|| p.tie(a, b));
    items.clear();
    for (i, f) in view.funcs[p.pkg.funcs.clone()].iter().enumerate() {
        if f.num_units == 0 {
            continue;
        }
        let rank = p.rank(f.file);
        let c = counts(p.pkg.funcs.start + i).filter(|c| !c.is_empty());
        let range = f.units();
        let start = items.len();
        items.extend(view.units[range.clone()].iter().zip(range).enumerate().map(
            |(j, (u, unit))| {
                let count = c.map_or(0, |c| c[j]);
                Item {
                    key: K::pack(rank, u, widths),
                    unit: unit as u32,
                    count: if set { u32::from(count != 0) } else { count },
                }
            },
        ));
        items[start..].sort_unstable_by(|a, b| order(p, a, b));
    }
    // Blocks within a function come in cmd/cover's order, functions in
    // source order: sorting each function leaves runs that the (run-adaptive)
    // sort of the package mostly merges, when it has anything to do.
    if !items.is_sorted_by(|a, b| order(p, a, b).is_le()) {
        items.sort_by(|a, b| order(p, a, b));
    }
    // Two functions listing the same unit: their order and merging go by
    // Go's function numbering, which may differ from the index.
    let shared = items.windows(2).any(|w| {
        w[0].key == w[1].key
            && view.units[w[0].unit as usize] == view.units[w[1].unit as usize]
            && p.func_of(w[0].unit) != p.func_of(w[1].unit)
    });
    if shared {
        p.number_by_key();
        items.sort_unstable_by(|a, b| order(p, a, b));
    }
    items.dedup_by(|next, kept| {
        let same = next.key == kept.key
            && view.units[next.unit as usize] == view.units[kept.unit as usize]
            && p.fid(next.unit) == p.fid(kept.unit);
        if same {
            kept.count = merge_count(set, kept.count, next.count);
        }
        same
    });
}

fn emit_rows<K: Key>(
    p: &Package<'_, '_>,
    widths: Widths,
    items: &[Item<K>],
    out: &mut LineWriter<'_>,
) -> io::Result<()> {
    for it in items {
        let file = p.files[it.key.rank(widths) as usize];
        out.row(file, &p.view.units[it.unit as usize], it.count)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::FuncView;
    use crate::report::Formatter;

    /// A small deterministic generator (xorshift).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u32 {
            (self.next() % n) as u32
        }
    }

    /// A view with few distinct values, so that ties, shared units, repeated
    /// units and functions sharing Go's key (also through duplicate strings
    /// at different indices of the string table) are frequent. `wide`: line
    /// numbers that do not fit the 64-bit key.
    fn random_view(rng: &mut Rng, wide: bool) -> (MetaView<'static>, Vec<Option<Vec<u32>>>) {
        const STRINGS: [&[u8]; 8] = [
            b"p/a.go",
            b"p/b.go",
            b"p/a.go",
            b"F",
            b"G",
            b"F",
            b"T.M",
            b"p/\xffc.go",
        ];
        let mut view = MetaView::default();
        let mut counts = Vec::new();
        let paths: [&[u8]; 4] = [b"example.com/z", b"example.com/a", b"b", b"example.com/a/b"];
        for path in paths {
            let str_base = view.strings.len() as u32;
            view.strings.extend(STRINGS);
            let start = view.funcs.len();
            for _ in 0..rng.below(12) {
                let n = rng.below(5);
                let first = view.units.len() as u32;
                for _ in 0..n {
                    let line = |r: &mut Rng| {
                        if wide && r.below(4) == 0 {
                            u32::MAX - r.below(3)
                        } else {
                            1 + r.below(4)
                        }
                    };
                    view.units.push(Unit {
                        st_line: line(rng),
                        st_col: 1 + rng.below(3),
                        en_line: line(rng),
                        en_col: 1 + rng.below(3),
                        stmts: rng.below(3),
                    });
                }
                let file = [0, 1, 2, 7][rng.below(4) as usize];
                let name = [3, 4, 5, 6][rng.below(4) as usize];
                view.funcs.push(FuncView {
                    name: str_base + name,
                    file: str_base + file,
                    first_unit: first,
                    num_units: n,
                    literal: rng.below(3) == 0,
                });
                counts.push(match rng.below(5) {
                    0 => None,
                    1 => Some(Vec::new()),
                    _ => Some(
                        (0..n + rng.below(2))
                            .map(|_| [0, 1, 7, u32::MAX][rng.below(4) as usize])
                            .collect(),
                    ),
                });
            }
            view.packages.push(PackageView {
                path,
                name: b"p",
                module_path: b"",
                hash: Default::default(),
                funcs: start..view.funcs.len(),
            });
        }
        (view, counts)
    }

    /// The same report through the cross-pod [`Formatter`].
    fn through_formatter(
        mode: CounterMode,
        view: &MetaView<'_>,
        counts: &[Option<Vec<u32>>],
    ) -> Vec<u8> {
        let mut f = Formatter::new(mode);
        for p in &view.packages {
            f.set_package(p.path);
            for idx in p.funcs.clone() {
                let fd = &view.funcs[idx];
                let units = &view.units[fd.units()];
                if units.is_empty() {
                    continue;
                }
                let c = counts[idx].as_deref().filter(|c| !c.is_empty());
                let id = f
                    .add_func(view.str(fd.file), view.str(fd.name), fd.literal)
                    .unwrap();
                f.add_units(id, units, c);
            }
        }
        let mut out = Vec::new();
        f.emit_textual(&mut out).unwrap();
        out
    }

    #[test]
    fn same_bytes_as_the_formatter() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut shared, mut wide_keys) = (0, 0);
        for round in 0..3000 {
            let wide = round % 3 == 0;
            let (view, counts) = random_view(&mut rng, wide);
            let mut order: Vec<usize> = (0..view.packages.len()).collect();
            order.sort_by(|&a, &b| view.packages[a].path.cmp(view.packages[b].path));
            for mode in [CounterMode::SET, CounterMode::COUNT] {
                let want = through_formatter(mode, &view, &counts);
                let mut got = Vec::new();
                emit_textual(mode, &view, &order, |i| counts[i].as_deref(), &mut got).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "round {round}, mode {mode}"
                );
            }
            // What the rounds exercised (checked below, so that the
            // generator cannot drift into easy cases).
            for p in &view.packages {
                let mut pk = Package::new(&view, p);
                pk.number_by_key();
                let c = pk.canonical.as_ref().unwrap();
                shared +=
                    usize::from(c.iter().enumerate().any(|(i, &f)| {
                        f as usize != i && view.funcs[p.funcs.start + i].num_units > 0
                    }));
            }
            wide_keys += usize::from(wide && view.units.iter().any(|u| u.st_line > 1 << 20));
        }
        assert!(
            shared > 1000,
            "functions sharing Go's key in {shared} packages"
        );
        assert!(wide_keys > 500, "128-bit keys in {wide_keys} rounds");
    }
}
