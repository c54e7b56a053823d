//! Compact blob encodings: counter vectors (ULEB128 + zlib) and raw
//! meta-data files (zlib).

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

/// Why a stored blob could not be decoded (the database is corrupt).
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// A counter blob without even its format byte.
    #[error("empty counter blob")]
    Empty,
    /// A counter blob in a format this covfleet does not know.
    #[error("unknown counter blob format {0}")]
    UnknownFormat(u8),
    /// The zlib stream is damaged.
    #[error("zlib")]
    Zlib(#[source] std::io::Error),
    /// The blob ends inside a value.
    #[error("truncated counter blob")]
    Truncated,
    /// The blob claims more counters than it has bytes.
    #[error("counter blob claims {claimed} counters in {bytes} bytes")]
    Length { claimed: u64, bytes: usize },
    /// A counter does not fit 32 bits.
    #[error("counter {0} overflows u32")]
    Overflow(u64),
    /// A stored meta-data file does not decode.
    #[error("meta-data file")]
    Meta(#[source] Box<covdata::Error>),
    /// Counters and meta-data disagree on the number of blocks.
    #[error("{counters} counters for {units} units")]
    Mismatch { counters: usize, units: usize },
}

/// Format tag of counter blobs.
const COUNTERS_V1: u8 = 1;

/// Encodes a dense counter vector: a version byte, then zlib(ULEB128 of
/// the length, then ULEB128 of every counter).
pub fn encode_counters(counters: &[u32]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(counters.len() + 8);
    covdata::uleb::append(&mut raw, counters.len() as u64);
    for &c in counters {
        covdata::uleb::append(&mut raw, u64::from(c));
    }
    let mut out = vec![COUNTERS_V1];
    let mut enc = ZlibEncoder::new(&mut out, Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(&raw);
    let _ = enc.finish();
    out
}

/// Decodes a blob written by [`encode_counters`].
pub fn decode_counters(blob: &[u8]) -> Result<Vec<u32>, BlobError> {
    let (&tag, rest) = blob.split_first().ok_or(BlobError::Empty)?;
    if tag != COUNTERS_V1 {
        return Err(BlobError::UnknownFormat(tag));
    }
    let raw = inflate(rest)?;
    let mut pos = 0;
    let n = get_uleb(&raw, &mut pos)?;
    if n > raw.len() as u64 {
        return Err(BlobError::Length {
            claimed: n,
            bytes: raw.len(),
        });
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let v = get_uleb(&raw, &mut pos)?;
        out.push(u32::try_from(v).map_err(|_| BlobError::Overflow(v))?);
    }
    Ok(out)
}

/// Decodes a counter blob that must hold one counter per unit of a layout
/// with `units` units.
pub fn decode_counters_for(blob: &[u8], units: usize) -> Result<Vec<u32>, BlobError> {
    let c = decode_counters(blob)?;
    if c.len() != units {
        return Err(BlobError::Mismatch {
            counters: c.len(),
            units,
        });
    }
    Ok(c)
}

/// zlib-compresses bytes (meta-data files).
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::with_capacity(data.len() / 3), Compression::default());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Inverse of [`deflate`].
pub fn inflate(data: &[u8]) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::with_capacity(data.len() * 4);
    ZlibDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(BlobError::Zlib)?;
    Ok(out)
}

/// Reads one ULEB128 value of a counter blob.
fn get_uleb(data: &[u8], pos: &mut usize) -> Result<u64, BlobError> {
    covdata::uleb::read(data, pos).ok_or(BlobError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip() {
        for v in [vec![], vec![0; 1000], vec![1, 0, u32::MAX, 127, 128, 300]] {
            assert_eq!(decode_counters(&encode_counters(&v)).unwrap(), v);
        }
    }

    #[test]
    fn corrupt_counter_blobs_are_errors() {
        assert!(matches!(decode_counters(&[]), Err(BlobError::Empty)));
        assert!(matches!(
            decode_counters(&[9, 1, 2]),
            Err(BlobError::UnknownFormat(9))
        ));
        let mut b = encode_counters(&[1, 2, 3]);
        b.truncate(b.len() - 3);
        assert!(decode_counters(&b).is_err());
        assert!(matches!(
            decode_counters_for(&encode_counters(&[1, 2]), 3),
            Err(BlobError::Mismatch {
                counters: 2,
                units: 3
            })
        ));
    }

    #[test]
    fn deflate_round_trip() {
        let d = b"covmeta bytes covmeta bytes".repeat(50);
        assert_eq!(inflate(&deflate(&d)).unwrap(), d);
    }
}
