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

use covdata::textprofile::Profile;
use covdata::{CounterGranularity, CounterMode, FuncDesc, MetaFile, PackageMeta, Unit};

/// A text profile, folded into meta-data and dense counters.
#[derive(Debug, Clone)]
pub struct TextProfile {
    pub meta: MetaFile,
    /// Dense counters in meta order (package, function, unit).
    pub counters: Vec<u32>,
}

/// Why text profiles could not be read; each names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A line of `file` does not parse (the source names the line).
    #[error("{file}")]
    Parse {
        file: String,
        source: covdata::textprofile::ProfileError,
    },
    /// The `mode:` line names no counter mode Go writes.
    #[error("{file}:1: expected `mode: set|count|atomic`, found mode {mode:?}")]
    Mode { file: String, mode: String },
    /// `file` cannot be merged with the profiles before it (another mode).
    #[error("{file}")]
    Merge {
        file: String,
        source: covdata::textprofile::ProfileError,
    },
    /// No profile was given.
    #[error("no profiles")]
    Empty,
}

/// Parses one or more text profiles (all must share a mode) into one, with
/// `covdata`'s text-profile reader (Go's `x/tools/cover` rules).
pub fn parse(texts: &[(&str, &str)]) -> Result<TextProfile, Error> {
    let mut merged: Option<Profile> = None;
    for (name, text) in texts {
        let p = Profile::parse(text).map_err(|source| Error::Parse {
            file: name.to_string(),
            source,
        })?;
        if p.counter_mode().is_none_or(|m| m.0 > CounterMode::ATOMIC.0) {
            return Err(Error::Mode {
                file: name.to_string(),
                mode: p.mode.clone(),
            });
        }
        match merged.as_mut() {
            None => merged = Some(p),
            Some(m) => m.merge(&p).map_err(|source| Error::Merge {
                file: name.to_string(),
                source,
            })?,
        }
    }
    let profile = merged.ok_or(Error::Empty)?;
    let mode = profile.counter_mode().ok_or(Error::Empty)?;
    let files = profile.files;
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
        for b in blocks {
            units.push(Unit {
                st_line: b.st_line,
                st_col: b.st_col,
                en_line: b.en_line,
                en_col: b.en_col,
                stmts: b.stmts,
            });
            cs.push(u32::try_from(b.count).unwrap_or(u32::MAX));
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
        assert!(
            matches!(&e, Error::Parse { file, source } if file == "x.out" && source.line == 2),
            "{e:?}"
        );
        assert!(
            crate::error::chain(&e).starts_with("x.out: line 2: "),
            "{e}"
        );
        let e = parse(&[("y.out", "hello\n")]).unwrap_err();
        assert!(crate::error::chain(&e).starts_with("y.out: line 1"), "{e}");
        assert!(matches!(
            parse(&[("a", "mode: set\n"), ("b", "mode: count\n")]),
            Err(Error::Merge { file, .. }) if file == "b"
        ));
        assert_eq!(parse(&[]).unwrap_err(), Error::Empty);
    }
}
