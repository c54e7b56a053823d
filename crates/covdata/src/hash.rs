//! The hash Go's coverage tooling uses since Go 1.24: FNV-1a with 128 bits.
//!
//! Go ≤ 1.23 used MD5. Go's readers never check hashes; covfleet writes
//! FNV-1a-128 like current Go, and checks meta-data it receives from
//! untrusted sources against its content with [`verify_meta`] (either
//! algorithm), because a meta-data file is stored and shared by its hash.

use crate::Hash;
use crate::meta::MetaFile;

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

/// The hash a Go toolchain used for coverage meta-data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaHashAlgo {
    /// FNV-1a-128: Go 1.24 and later.
    Fnv128a,
    /// MD5: Go 1.20 to 1.23.
    Md5,
}

impl MetaHashAlgo {
    fn digest(self, feed: impl Fn(&mut dyn HashWriter)) -> Hash {
        match self {
            MetaHashAlgo::Fnv128a => {
                let mut h = Fnv128::new();
                feed(&mut h);
                h.finish()
            }
            MetaHashAlgo::Md5 => {
                use md5::Digest;
                struct W(md5::Md5);
                impl HashWriter for W {
                    fn write(&mut self, bytes: &[u8]) {
                        self.0.update(bytes);
                    }
                }
                let mut h = W(md5::Md5::new());
                feed(&mut h);
                h.0.finalize().into()
            }
        }
    }
}

impl<W: HashWriter + ?Sized> HashWriter for &mut W {
    fn write(&mut self, bytes: &[u8]) {
        (**self).write(bytes);
    }
}

/// Why a meta-data file's content does not match the hash it claims.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// It does not decode at all.
    #[error("meta-data does not decode: {0}")]
    Decode(#[from] crate::Error),
    /// A package blob's content does not hash to the hash in its header.
    #[error(
        "meta-data package {index} ({path}) does not match its hash {stored} (content altered?)"
    )]
    Package {
        index: usize,
        path: String,
        stored: String,
    },
    /// The file hash is not the hash of its packages, mode and granularity.
    #[error("meta-data hash {stored} does not match its content (which hashes to {computed})")]
    File { stored: String, computed: String },
}

/// Checks a whole meta-data file against its hash the way the Go runtime
/// and `cmd/cover` compute it: every package blob's hash over its content
/// (path, name, module, then per function: name, file, units, literal
/// flag), and the file hash over the blob hashes, the counter mode and the
/// granularity. Go ≥ 1.24 uses FNV-1a-128, Go ≤ 1.23 MD5; a file must use
/// one algorithm throughout. Returns the decoded file and the algorithm.
pub fn verify_meta(data: &[u8]) -> Result<(MetaFile, MetaHashAlgo), VerifyError> {
    let file = MetaFile::decode(data)?;
    let mut last = None;
    for algo in [MetaHashAlgo::Fnv128a, MetaHashAlgo::Md5] {
        match verify_with(&file, algo) {
            Ok(()) => return Ok((file, algo)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(VerifyError::File {
        stored: crate::hex(&file.hash),
        computed: String::new(),
    }))
}

fn verify_with(file: &MetaFile, algo: MetaHashAlgo) -> Result<(), VerifyError> {
    for (index, p) in file.packages.iter().enumerate() {
        if algo.digest(|h| p.hash_into(&mut &mut *h)) != p.hash {
            return Err(VerifyError::Package {
                index,
                path: p.path.clone(),
                stored: crate::hex(&p.hash),
            });
        }
    }
    // `go test -cover` writes a package without tests as a "static" meta
    // file whose hash is its one blob's hash.
    if let [only] = file.packages.as_slice()
        && only.hash == file.hash
    {
        return Ok(());
    }
    let computed = algo.digest(|h| {
        for p in &file.packages {
            h.write(&p.hash);
        }
        h.write(file.mode.as_str().as_bytes());
        h.write(file.granularity.as_str().as_bytes());
    });
    if computed != file.hash {
        return Err(VerifyError::File {
            stored: crate::hex(&file.hash),
            computed: crate::hex(&computed),
        });
    }
    Ok(())
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
