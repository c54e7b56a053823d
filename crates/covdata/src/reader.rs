//! A bounds-checked little-endian cursor over a byte slice.

use crate::error::{Error, ErrorKind};

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub(crate) fn at(data: &'a [u8], pos: usize) -> Self {
        Reader { data, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn eof(&self) -> Error {
        Error::at(ErrorKind::UnexpectedEof, self.pos)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(self.eof());
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u32_be(&mut self) -> Result<u32, Error> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn hash(&mut self) -> Result<[u8; 16], Error> {
        let mut h = [0u8; 16];
        h.copy_from_slice(self.bytes(16)?);
        Ok(h)
    }

    /// Appends `n` units (five ULEB128 values each, truncated to 32 bits as
    /// Go does), the hot loop of decoding: the position stays local.
    pub(crate) fn units_into(
        &mut self,
        n: usize,
        out: &mut Vec<crate::meta::Unit>,
    ) -> Result<(), Error> {
        let data = self.data;
        let mut pos = self.pos;
        out.reserve(n);
        for _ in 0..n {
            let mut next = || match data.get(pos) {
                // One byte: most values of a unit (columns, statement counts).
                Some(&b) if b < 0x80 => {
                    pos += 1;
                    Some(u32::from(b))
                }
                _ => crate::uleb::read(data, &mut pos).map(|v| v as u32),
            };
            // After a failed read the later ones fail too, leaving `pos`
            // where the first failure left it (the error's offset).
            let (Some(st_line), Some(st_col), Some(en_line), Some(en_col), Some(stmts)) =
                (next(), next(), next(), next(), next())
            else {
                self.pos = pos;
                return Err(self.eof());
            };
            out.push(crate::meta::Unit {
                st_line,
                st_col,
                en_line,
                en_col,
                stmts,
            });
        }
        self.pos = pos;
        Ok(())
    }

    /// ULEB128 as Go reads it: any length, bits past 64 silently dropped.
    #[inline]
    pub(crate) fn uleb(&mut self) -> Result<u64, Error> {
        crate::uleb::read(self.data, &mut self.pos).ok_or_else(|| self.eof())
    }
}

pub(crate) use crate::uleb::append as put_uleb;

/// Reads a string table: `uleb(count)` then `count` × (`uleb(len)`, bytes).
/// The count is bounded by the bytes left (each string needs at least one).
pub(crate) fn read_string_table(r: &mut Reader<'_>) -> Result<Vec<String>, Error> {
    let mut raw = Vec::new();
    read_string_table_into(r, &mut raw)?;
    Ok(raw.into_iter().map(crate::gostr::from_go_bytes).collect())
}

/// [`read_string_table`] without copying: appends the strings' bytes to `out`.
pub(crate) fn read_string_table_into<'a>(
    r: &mut Reader<'a>,
    out: &mut Vec<&'a [u8]>,
) -> Result<(), Error> {
    let start = r.pos();
    let n = r.uleb()?;
    if n > r.remaining() as u64 {
        return Err(Error::at(
            ErrorKind::TooManyStrings {
                claimed: n,
                bytes: r.remaining() as u64,
            },
            start,
        ));
    }
    out.reserve(n as usize);
    for _ in 0..n {
        let len = r.uleb()?;
        if len > r.remaining() as u64 {
            return Err(r.eof());
        }
        out.push(r.bytes(len as usize)?);
    }
    Ok(())
}

pub(crate) fn put_string_table(out: &mut Vec<u8>, strings: &[&str]) {
    put_uleb(out, strings.len() as u64);
    for s in strings {
        let b = crate::gostr::to_go_bytes(s);
        put_uleb(out, b.len() as u64);
        out.extend_from_slice(&b);
    }
}
