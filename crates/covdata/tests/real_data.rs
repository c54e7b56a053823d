//! The decoders and encoders on real files written by Go programs (the
//! fixtures of `go/fixtures/covdata`, `cmd/gofmt`, and Go 1.23 data), built
//! at test time by the shared fixture builder.

#[path = "../../covfleet/tests/common/fixtures.rs"]
mod fixtures;

use std::fs;
use std::path::PathBuf;

use covdata::textprofile::Profile;
use covdata::{CounterFile, MetaFile, PackageMeta};
use fixtures::fixtures;

fn files_with_prefix(prefix: &str) -> Vec<(PathBuf, bool)> {
    let f = fixtures();
    let mut dirs: Vec<(PathBuf, bool)> =
        f.all_data_dirs().into_iter().map(|d| (d, false)).collect();
    if let Some(old) = &f.old_go_data {
        dirs.push((old.clone(), true));
    }
    let mut out = Vec::new();
    for (d, old) in dirs {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(prefix) {
                out.push((e.path(), old));
            }
        }
    }
    out.sort();
    out
}

fn tag_of(path: &std::path::Path) -> String {
    let n = path.file_name().unwrap().to_string_lossy().into_owned();
    n.split('.').nth(1).unwrap().to_string()
}

#[test]
fn meta_files_decode_and_reencode_byte_for_byte() {
    let metas = files_with_prefix("covmeta.");
    assert!(metas.len() >= 10, "only {} meta files", metas.len());
    let mut checked_old = false;
    for (p, old) in &metas {
        let data = fs::read(p).unwrap();
        let m = MetaFile::decode(&data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        // Static meta files from `go test -cover` (packages without tests) are
        // named by sha256(import path) and carry their one blob's hash.
        let is_static = tag_of(p).len() == 64;
        if is_static {
            assert_eq!(m.packages.len(), 1, "{}", p.display());
            assert_eq!(
                m.hash,
                m.packages[0].hash,
                "{}: static meta hash",
                p.display()
            );
        } else {
            assert_eq!(
                covdata::hex(&m.hash),
                tag_of(p),
                "{}: header hash vs name",
                p.display()
            );
        }
        assert_eq!(m.version, 1);
        assert!(!m.packages.is_empty());
        let (_, algo) = covdata::hash::verify_meta(&data).unwrap();
        let want = if *old {
            covdata::hash::MetaHashAlgo::Md5
        } else {
            covdata::hash::MetaHashAlgo::Fnv128a
        };
        assert_eq!(algo, want, "{}: verify_meta", p.display());
        // One changed unit (the last byte of the file is in the last
        // function's record) no longer verifies.
        let mut altered = data.clone();
        let last = altered.len() - 2;
        altered[last] ^= 1;
        assert!(
            covdata::hash::verify_meta(&altered).is_err(),
            "{}: altered file verifies",
            p.display()
        );
        // Every blob re-encodes to the same bytes cmd/cover wrote.
        let (_, spans) = MetaFile::decode_header(&data).unwrap();
        assert_eq!(spans.len(), m.packages.len());
        for (pkg, span) in m.packages.iter().zip(&spans) {
            let blob = span.slice(&data).unwrap();
            assert_eq!(
                pkg.encode(),
                blob,
                "{}: package {} re-encodes differently",
                p.display(),
                pkg.path
            );
            assert_eq!(PackageMeta::decode(blob).unwrap(), *pkg);
            if !old {
                // Go >= 1.24 hashes with FNV-1a-128.
                assert_eq!(
                    pkg.compute_hash(),
                    pkg.hash,
                    "{}: blob hash of {}",
                    p.display(),
                    pkg.path
                );
            }
        }
        assert_eq!(
            m.encode(),
            data,
            "{}: whole file re-encodes differently",
            p.display()
        );
        if !old && !is_static {
            assert_eq!(
                m.runtime_hash(),
                m.hash,
                "{}: runtime file hash",
                p.display()
            );
        } else {
            checked_old = true;
        }
    }
    if fixtures().old_go_data.is_some() {
        assert!(checked_old);
    }
}

#[test]
fn meta_files_hold_what_the_sources_have() {
    let f = fixtures();
    let dir = f.data("count/app");
    let meta = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("covmeta."))
        .unwrap()
        .path();
    let m = MetaFile::decode(&fs::read(meta).unwrap()).unwrap();
    assert_eq!(m.mode.as_str(), "count");
    let pkg = |path: &str| {
        m.packages
            .iter()
            .find(|p| p.path == path)
            .unwrap_or_else(|| panic!("no {path}"))
    };
    // A package with no functions still has a blob.
    assert!(pkg("example.com/covfix/consts").funcs.is_empty());
    // Pointer and value receivers, generics.
    let shapes = pkg("example.com/covfix/shapes");
    let names: Vec<&str> = shapes.funcs.iter().map(|f| f.name.as_str()).collect();
    for n in [
        "Circle.Area",
        "*Rect.Area",
        "*Rect.Scale",
        "Parse",
        "Largest",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(
        !names.contains(&"Circle.Perimeter"),
        "extra.go leaked into the default build"
    );
    let gen_names: Vec<&str> = pkg("example.com/covfix/gen")
        .funcs
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    // cmd/cover names methods of generic types without their receiver.
    for n in ["Map", "Filter", "Sum", "Push", "Pop", "Len", "Index"] {
        assert!(gen_names.contains(&n), "{n} missing from {gen_names:?}");
    }
    // Package-level function literals.
    let hooks = pkg("example.com/covfix/hooks");
    let lits = hooks
        .funcs
        .iter()
        .filter(|f| f.literal && f.name.starts_with("func.L"))
        .count();
    assert_eq!(
        lits,
        4,
        "{:?}",
        hooks.funcs.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    // Three init functions over two files.
    let reg = pkg("example.com/covfix/registry");
    let inits: Vec<&str> = reg
        .funcs
        .iter()
        .filter(|f| f.name == "init")
        .map(|f| f.file.as_str())
        .collect();
    assert_eq!(inits.len(), 3, "{inits:?}");
    assert!(
        inits.iter().any(|f| f.ends_with("/a.go")) && inits.iter().any(|f| f.ends_with("/b.go"))
    );
    for p in &m.packages {
        assert_eq!(p.module_path, "example.com/covfix");
        for func in &p.funcs {
            assert!(
                func.file.starts_with(&format!("{}/", p.path)),
                "{}",
                func.file
            );
        }
    }
}

#[test]
fn counter_files_decode_match_their_meta_and_roundtrip() {
    let ctrs = files_with_prefix("covcounters.");
    assert!(ctrs.len() >= 40, "only {} counter files", ctrs.len());
    let mut with_meta = 0;
    for (p, _) in &ctrs {
        let data = fs::read(p).unwrap();
        let c = CounterFile::decode(&data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let tag = tag_of(p);
        assert_eq!(covdata::hex(&c.meta_hash), tag, "{}", p.display());
        assert_eq!(c.num_segments, 1);
        assert!(!c.os_args.is_empty(), "{}: no argv", p.display());
        assert_eq!(c.goos, std::env::consts::OS);
        // Records reference real functions and have one counter per unit.
        let meta = p.with_file_name(format!("covmeta.{tag}"));
        if let Ok(md) = fs::read(&meta) {
            with_meta += 1;
            let m = MetaFile::decode(&md).unwrap();
            for r in &c.funcs {
                let pkg = m
                    .packages
                    .get(r.pkg as usize)
                    .unwrap_or_else(|| panic!("{}: pkg {}", p.display(), r.pkg));
                let func = pkg
                    .funcs
                    .get(r.func as usize)
                    .unwrap_or_else(|| panic!("{}: func {}", p.display(), r.func));
                assert_eq!(
                    r.counters.len(),
                    func.units.len(),
                    "{}: {}",
                    p.display(),
                    func.name
                );
                assert!(
                    r.counters.iter().any(|&v| v != 0),
                    "runtime writes only executed functions"
                );
            }
        }
        // Encode → decode keeps everything Go reads.
        let again = CounterFile::decode(&c.encode()).unwrap();
        assert_eq!(again.funcs, c.funcs);
        assert_eq!(again.os_args, c.os_args);
        assert_eq!(
            (again.goos.as_str(), again.goarch.as_str()),
            (c.goos.as_str(), c.goarch.as_str())
        );
        assert_eq!(again.meta_hash, c.meta_hash);
    }
    assert!(with_meta > 30);
}

#[test]
fn textprofiles_from_go_parse_and_roundtrip() {
    let f = fixtures();
    let mut n = 0;
    for dir in ["count/pods", "set/app", "atomic/appx", "gofmt"] {
        let out = std::process::Command::new(&f.covdata)
            .arg("textfmt")
            .arg(format!("-i={}", f.data(dir).display()))
            .arg(format!(
                "-o={}",
                f.root
                    .join(format!("tp-{}.txt", dir.replace('/', "-")))
                    .display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success());
        let text =
            fs::read_to_string(f.root.join(format!("tp-{}.txt", dir.replace('/', "-")))).unwrap();
        let p = Profile::parse(&text).unwrap_or_else(|e| panic!("{dir}: {e}"));
        // Totals computed straight from the lines.
        let (mut c, mut t) = (0u64, 0u64);
        for l in text.lines().skip(1) {
            let mut it = l.rsplit(' ');
            let cnt: u64 = it.next().unwrap().parse().unwrap();
            let st: u64 = it.next().unwrap().parse().unwrap();
            t += st;
            if cnt != 0 {
                c += st;
            }
        }
        assert_eq!(p.stmt_totals(), (c, t), "{dir}");
        assert_eq!(
            p.mode,
            text.lines().next().unwrap().trim_start_matches("mode: ")
        );
        // Writing and parsing again is a fixed point; merging with itself
        // doubles counts (or keeps them, in set mode).
        let again = Profile::parse(&p.to_text()).unwrap();
        assert_eq!(again, p);
        let mut twice = p.clone();
        twice.merge(&p).unwrap();
        assert_eq!(twice.stmt_totals(), p.stmt_totals());
        for (file, blocks) in &twice.files {
            for (b2, b1) in blocks.iter().zip(&p.files[file]) {
                let want = if p.mode == "set" {
                    b1.count
                } else {
                    b1.count * 2
                };
                assert_eq!(b2.count, want);
            }
        }
        n += 1;
    }
    assert_eq!(n, 4);
}

/// Issue 13 #2: every meta-data file Go wrote verifies against its hash
/// (FNV-1a-128 from current Go, MD5 from Go ≤ 1.23); one changed byte of
/// content does not.
#[test]
fn issue13_2_real_meta_files_verify_against_their_hash() {
    use covdata::hash::{MetaHashAlgo, verify_meta};
    let metas = files_with_prefix("covmeta.");
    assert!(metas.len() >= 10, "only {} meta files", metas.len());
    for (p, old) in &metas {
        let data = fs::read(p).unwrap();
        let (m, algo) = verify_meta(&data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let want = if *old {
            MetaHashAlgo::Md5
        } else {
            MetaHashAlgo::Fnv128a
        };
        assert_eq!(algo, want, "{}", p.display());
        // Rename the first function's file, keep every stored hash.
        let mut forged = m.clone();
        let Some(f) = forged.packages.iter_mut().flat_map(|p| &mut p.funcs).next() else {
            continue;
        };
        f.file.push('x');
        assert!(verify_meta(&forged.encode()).is_err(), "{}", p.display());
    }
}
