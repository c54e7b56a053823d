//! The hash Go's coverage tooling uses since Go 1.24: FNV-1a with 128 bits.
//!
//! Go ≤ 1.23 used MD5. Readers never check hashes, so only writers (merge
//! outputs) need one; covfleet writes FNV-1a-128 like current Go.

use crate::Hash;

/// Something that absorbs bytes.
pub trait HashWriter {
    fn write(&mut self, bytes: &[u8]);
}

const OFFSET_BASIS: u128 = 0x6c62272e07bb014262b821756295c58d;
const PRIME: u128 = (1u128 << 88) + 0x13b;

/// FNV-1a-128, as Go's `hash/fnv.New128a`.
#[derive(Debug, Clone)]
pub struct Fnv128 {
    state: u128,
}

impl Default for Fnv128 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv128 {
    pub fn new() -> Self {
        Fnv128 {
            state: OFFSET_BASIS,
        }
    }

    /// The digest, big-endian as Go's `Sum` writes it.
    pub fn finish(&self) -> Hash {
        self.state.to_be_bytes()
    }
}

impl HashWriter for Fnv128 {
    fn write(&mut self, bytes: &[u8]) {
        let mut s = self.state;
        for &b in bytes {
            s ^= u128::from(b);
            s = s.wrapping_mul(PRIME);
        }
        self.state = s;
    }
}

/// FNV-1a-128 of one byte string.
pub fn fnv128(bytes: &[u8]) -> Hash {
    let mut h = Fnv128::new();
    h.write(bytes);
    h.finish()
}

/// What [`verify_meta`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaHashCheck {
    /// Every package blob hashes (FNV-1a-128, Go ≥ 1.24) to the hash in its
    /// header, and the file's header hash is the one the Go runtime gives
    /// those packages (or, for a one-package static meta file from
    /// `go test -cover`, that package's hash).
    Verified,
    /// Some hash does not match FNV-1a-128: a file written by Go ≤ 1.23
    /// (MD5, not checked here) or content that was altered.
    NotFnv,
}

/// Checks a meta-data file's content against its hashes, as Go ≥ 1.24
/// computes them. Decode errors are returned as such.
pub fn verify_meta(bytes: &[u8]) -> Result<MetaHashCheck, crate::Error> {
    let m = crate::MetaFile::decode(bytes)?;
    let blobs_ok = m.packages.iter().all(|p| p.compute_hash() == p.hash);
    let static_file = m.packages.len() == 1 && m.packages[0].hash == m.hash;
    Ok(if blobs_ok && (static_file || m.runtime_hash() == m.hash) {
        MetaHashCheck::Verified
    } else {
        MetaHashCheck::NotFnv
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv128_known_vectors() {
        // Go: fmt.Printf("%x", fnv.New128a().Sum(nil)) and of "a".
        assert_eq!(crate::hex(&fnv128(b"")), "6c62272e07bb014262b821756295c58d");
        assert_eq!(
            crate::hex(&fnv128(b"a")),
            "d228cb696f1a8caf78912b704e4a8964"
        );
    }
}
