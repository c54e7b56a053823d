//! Compact blob encodings: counter vectors (ULEB128 + zlib) and raw
//! meta-data files (zlib).

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

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
pub fn decode_counters(blob: &[u8]) -> Result<Vec<u32>, String> {
    let (&tag, rest) = blob.split_first().ok_or("empty counter blob")?;
    if tag != COUNTERS_V1 {
        return Err(format!("unknown counter blob format {tag}"));
    }
    let raw = inflate(rest)?;
    let mut pos = 0;
    let n = get_uleb(&raw, &mut pos)? as usize;
    if n > raw.len() {
        return Err(format!(
            "counter blob claims {n} counters in {} bytes",
            raw.len()
        ));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let v = get_uleb(&raw, &mut pos)?;
        out.push(u32::try_from(v).map_err(|_| format!("counter {v} overflows u32"))?);
    }
    Ok(out)
}

/// zlib-compresses bytes (meta-data files).
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::with_capacity(data.len() / 3), Compression::default());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Inverse of [`deflate`].
pub fn inflate(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() * 4);
    ZlibDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| format!("zlib: {e}"))?;
    Ok(out)
}

/// Reads one ULEB128 value of a counter blob.
fn get_uleb(data: &[u8], pos: &mut usize) -> Result<u64, String> {
    covdata::uleb::read(data, pos).ok_or_else(|| "truncated counter blob".to_string())
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
        assert!(decode_counters(&[]).is_err());
        assert!(decode_counters(&[9, 1, 2]).is_err());
        let mut b = encode_counters(&[1, 2, 3]);
        b.truncate(b.len() - 3);
        assert!(decode_counters(&b).is_err());
    }

    #[test]
    fn deflate_round_trip() {
        let d = b"covmeta bytes covmeta bytes".repeat(50);
        assert_eq!(inflate(&deflate(&d)).unwrap(), d);
    }
}
