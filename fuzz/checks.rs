//! The properties each fuzz target checks, shared with the corpus replay test
//! (`crates/covdata/tests/fuzz_corpus.rs`): decoding never panics, and what
//! decodes re-encodes to something that decodes to the same thing.

use covdata::textprofile::Profile;
use covdata::{CounterFile, MetaFile, PackageMeta};

/// `covmeta.*` bytes.
pub fn decode_meta(data: &[u8]) {
    if let Ok((_, spans)) = MetaFile::decode_header(data) {
        for s in spans {
            if let Ok(blob) = s.slice(data) {
                let _ = PackageMeta::decode(blob);
            }
        }
    }
    if let Ok(m) = MetaFile::decode(data) {
        let again = MetaFile::decode(&m.encode()).expect("re-encoded meta-data file must decode");
        assert_eq!(again.packages, m.packages);
        assert_eq!(
            (again.mode, again.granularity, again.hash),
            (m.mode, m.granularity, m.hash)
        );
    }
}

/// `covcounters.*` bytes.
pub fn decode_counters(data: &[u8]) {
    if let Ok(c) = CounterFile::decode(data) {
        let again = CounterFile::decode(&c.encode()).expect("re-encoded counter file must decode");
        assert_eq!(again.funcs, c.funcs);
        assert_eq!(again.os_args, c.os_args);
        assert_eq!(
            (&again.goos, &again.goarch, again.meta_hash),
            (&c.goos, &c.goarch, c.meta_hash)
        );
    }
}

/// A legacy text profile.
pub fn parse_textprofile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Profile::parse(text) {
        let again = Profile::parse(&p.to_text()).expect("written profile must parse");
        assert_eq!(again, p);
        let _ = p.stmt_totals();
        let mut twice = p.clone();
        let _ = twice.merge(&p);
    }
}
