//! Legacy text profiles (`mode: set|count|atomic` then
//! `file:L.C,L.C stmts count` lines, from `go test -coverprofile`), turned
//! into a synthesized meta-data file plus counters so that they flow through
//! the same pipeline as binary data.
//!
//! The synthesized meta-data has one package per directory of the file paths
//! and one function per file (named after the file), with the blocks in
//! source order; its hash is computed the way the Go runtime computes one, so
//! identical profiles of the same program share a meta hash. Blocks listed
//! more than once (merged profiles) are combined: OR in `set` mode, a
//! saturating sum otherwise (what `go tool cover` does).

use std::collections::BTreeMap;

use covdata::{CounterGranularity, CounterMode, FuncDesc, MetaFile, PackageMeta, Unit};

/// A text profile, folded into meta-data and dense counters.
#[derive(Debug, Clone)]
pub struct TextProfile {
    pub meta: MetaFile,
    /// Dense counters in meta order (package, function, unit).
    pub counters: Vec<u32>,
}

type Key = (u32, u32, u32, u32);

/// Parses one or more text profiles (all must share a mode) into one.
pub fn parse(texts: &[(&str, &str)]) -> Result<TextProfile, String> {
    let mut mode: Option<CounterMode> = None;
    // file → block → (stmts, count)
    let mut files: BTreeMap<String, BTreeMap<Key, (u32, u32)>> = BTreeMap::new();
    for (name, text) in texts {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, first) = lines
            .next()
            .ok_or_else(|| format!("{name}: empty profile"))?;
        let m = first
            .strip_prefix("mode: ")
            .and_then(|m| CounterMode::parse(m.trim()))
            .ok_or_else(|| {
                format!("{name}:1: expected `mode: set|count|atomic`, found {first:?}")
            })?;
        if let Some(prev) = mode
            && prev != m
        {
            return Err(format!(
                "{name}: mode {m} differs from {prev} of the other profiles"
            ));
        }
        mode = Some(m);
        for (i, line) in lines {
            let bad = || format!("{name}:{}: malformed profile line {line:?}", i + 1);
            // file:a.b,c.d n c — the file name may itself contain ':'.
            let (file, rest) = line.rsplit_once(':').ok_or_else(bad)?;
            let mut parts = rest.split_whitespace();
            let span = parts.next().ok_or_else(bad)?;
            let stmts: u32 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let count: u64 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            if parts.next().is_some() {
                return Err(bad());
            }
            let (a, b) = span.split_once(',').ok_or_else(bad)?;
            let lc = |s: &str| -> Option<(u32, u32)> {
                let (l, c) = s.split_once('.')?;
                Some((l.parse().ok()?, c.parse().ok()?))
            };
            let (sl, sc) = lc(a).ok_or_else(bad)?;
            let (el, ec) = lc(b).ok_or_else(bad)?;
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            let e = files
                .entry(file.to_string())
                .or_default()
                .entry((sl, sc, el, ec))
                .or_insert((stmts, 0));
            e.1 = if m == CounterMode::SET {
                e.1.max(count.min(1))
            } else {
                e.1.saturating_add(count)
            };
        }
    }
    let mode = mode.ok_or("no profiles")?;
    let mut pkgs: BTreeMap<String, PackageMeta> = BTreeMap::new();
    let mut counters_by_pkg: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (file, blocks) in files {
        let dir = match file.rsplit_once('/') {
            Some((d, _)) => d.to_string(),
            None => String::new(),
        };
        let pkg = pkgs.entry(dir.clone()).or_insert_with(|| PackageMeta {
            path: dir.clone(),
            name: dir.rsplit('/').next().unwrap_or("").to_string(),
            module_path: String::new(),
            hash: [0; 16],
            funcs: Vec::new(),
        });
        let cs = counters_by_pkg.entry(dir).or_default();
        let mut units = Vec::with_capacity(blocks.len());
        for ((sl, sc, el, ec), (stmts, count)) in blocks {
            units.push(Unit {
                st_line: sl,
                st_col: sc,
                en_line: el,
                en_col: ec,
                stmts,
            });
            cs.push(count);
        }
        let base = file.rsplit('/').next().unwrap_or(&file).to_string();
        pkg.funcs.push(FuncDesc {
            name: base,
            file,
            units,
            literal: false,
        });
    }
    let mut meta = MetaFile {
        version: 1,
        hash: [0; 16],
        mode,
        granularity: CounterGranularity::PER_BLOCK,
        packages: Vec::new(),
    };
    let mut counters = Vec::new();
    for (dir, mut p) in pkgs {
        p.hash = p.compute_hash();
        meta.packages.push(p);
        counters.extend(counters_by_pkg.remove(&dir).unwrap_or_default());
    }
    meta.hash = meta.runtime_hash();
    Ok(TextProfile { meta, counters })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_merges_duplicates() {
        let a = "mode: count\nex.com/p/a.go:3.10,5.2 2 1\nex.com/p/a.go:6.1,7.2 1 0\nex.com/q/b.go:1.1,1.9 1 4\n";
        let b = "mode: count\nex.com/p/a.go:3.10,5.2 2 2\n";
        let p = parse(&[("a", a), ("b", b)]).unwrap();
        assert_eq!(p.meta.packages.len(), 2);
        assert_eq!(p.counters, vec![3, 0, 4]);
        // Same input, same hash; different blocks, different hash.
        assert_eq!(parse(&[("a", a), ("b", b)]).unwrap().meta.hash, p.meta.hash);
        assert_ne!(
            parse(&[("a", a)]).unwrap().meta.hash,
            parse(&[("b", b)]).unwrap().meta.hash
        );
    }

    #[test]
    fn bad_profiles_name_the_line() {
        let e = parse(&[("x.out", "mode: set\nfoo.go:1.1,2.2 1\n")]).unwrap_err();
        assert!(e.contains("x.out:2"), "{e}");
        assert!(
            parse(&[("y.out", "hello\n")])
                .unwrap_err()
                .contains("y.out:1")
        );
        assert!(parse(&[("a", "mode: set\n"), ("b", "mode: count\n")]).is_err());
    }
}
