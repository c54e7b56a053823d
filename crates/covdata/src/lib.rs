//! Go's binary coverage data, read and written natively.
//!
//! This crate decodes and encodes the `covmeta.<hash>` and
//! `covcounters.<hash>.<pid>.<nanotime>` files that Go programs built with
//! `-cover` write (to `GOCOVERDIR`, or through `runtime/coverage`), discovers
//! "pods" in directories exactly as `go tool covdata` does, merges counters
//! with Go's semantics, formats the `textfmt`, `percent`, `func`, `pkglist`
//! and `debugdump` reports byte-for-byte like the Go tool, and reads and
//! writes the legacy text profile (`mode: set` + `file:L.C,L.C N C` lines).
//!
//! It is pure: no async, no global state, and no I/O beyond reading the
//! directories and files it is pointed at. Every decoder works on a byte
//! slice, bounds every allocation by the input's size, and returns an
//! [`Error`] naming the offset (and, through [`Error::with_path`], the file)
//! instead of panicking on malformed input.

pub mod block;
pub mod counters;
pub mod error;
pub mod gostr;
pub mod hash;
pub mod merge;
pub mod meta;
pub mod names;
mod onepod;
pub mod pods;
mod reader;
pub mod report;
pub mod tabwriter;
pub mod textprofile;
pub mod tool;
pub mod uleb;

pub use block::Block;
pub use counters::{CounterFile, CounterFlavor, FuncCounters};
pub use error::{BlobField, Error, ErrorKind};

pub use meta::{CounterGranularity, CounterMode, FuncDesc, MetaFile, PackageMeta, Unit};

/// A 16-byte coverage hash (FNV-1a-128 in Go ≥ 1.24, MD5 before).
pub type Hash = [u8; 16];

/// Lower-case hex of a hash, as used in `covmeta.<hex>` file names.
pub fn hex(hash: &Hash) -> String {
    let mut s = String::with_capacity(32);
    for b in hash {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    s
}

/// Parses 32 hex digits into a hash.
pub fn parse_hex(s: &str) -> Option<Hash> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = (chunk[0] as char).to_digit(16)?;
        let lo = (chunk[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}
pub use merge::{Merger, ModeMergePolicy};
pub use pods::{Pod, collect_pods};
