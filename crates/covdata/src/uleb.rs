//! ULEB128, the variable-length integers of Go's coverage files.

/// Appends `v` in shortest form (what Go's writers produce).
pub fn append(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Reads one value at `*pos` as Go's readers do: any length is accepted and
/// bits past 64 are silently dropped. `None` when the data ends first (then
/// `*pos` is past the end of `data`).
#[inline]
pub fn read(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0u32;
    loop {
        let &b = data.get(*pos)?;
        *pos += 1;
        if shift < 64 {
            value |= u64::from(b & 0x7f) << shift;
        }
        if b & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_go_quirks() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            append(&mut b, v);
            let mut pos = 0;
            assert_eq!(read(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
        // Non-shortest forms are accepted; bits past 64 are dropped.
        assert_eq!(read(&[0x80, 0x00], &mut 0), Some(0));
        let mut long = vec![0xff; 10];
        long.push(0x01);
        assert_eq!(read(&long, &mut 0), Some(u64::MAX));
        assert_eq!(read(&[0x80], &mut 0), None);
    }
}
