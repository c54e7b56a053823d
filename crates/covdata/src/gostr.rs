//! Go strings are bytes: coverage files may carry names that are not UTF-8.
//!
//! covfleet keeps its API in `String`s and stays lossless: each byte of an
//! invalid UTF-8 sequence decodes to the private-use character
//! `U+10FF00 + byte` ([`from_go_bytes`]), and every writer turns such
//! characters back into the original byte ([`to_go_bytes`]). Real names
//! (Go identifiers, import paths, file paths) are UTF-8 and pass unchanged.

use std::borrow::Cow;

const ESCAPE_BASE: u32 = 0x10_FF00;

/// Decodes bytes as UTF-8, escaping each byte of an invalid sequence (and
/// of any character that itself lies in the escape range, so the mapping
/// stays reversible for every input).
pub fn from_go_bytes(b: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(b)
        && !s.chars().any(is_escape)
    {
        return s.to_string();
    }
    let mut out = String::with_capacity(b.len() + 8);
    let escape_bytes = |out: &mut String, bytes: &[u8]| {
        for &byte in bytes {
            out.push(char::from_u32(ESCAPE_BASE + u32::from(byte)).unwrap_or('\u{FFFD}'));
        }
    };
    let mut rest = b;
    while !rest.is_empty() {
        let (good, bad_len) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => {
                let valid = std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default();
                (
                    valid,
                    e.error_len().unwrap_or(rest.len() - e.valid_up_to()).max(1),
                )
            }
        };
        for c in good.chars() {
            if is_escape(c) {
                let mut buf = [0u8; 4];
                escape_bytes(&mut out, c.encode_utf8(&mut buf).as_bytes());
            } else {
                out.push(c);
            }
        }
        let bad = &rest[good.len()..good.len() + bad_len];
        escape_bytes(&mut out, bad);
        rest = &rest[good.len() + bad_len..];
    }
    out
}

/// The original bytes of a string decoded by [`from_go_bytes`].
pub fn to_go_bytes(s: &str) -> Cow<'_, [u8]> {
    if !s.chars().any(is_escape) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if is_escape(c) {
            out.push((u32::from(c) - ESCAPE_BASE) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Cow::Owned(out)
}

fn is_escape(c: char) -> bool {
    (ESCAPE_BASE..=ESCAPE_BASE + 0xFF).contains(&u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_invalid_utf8() {
        for b in [
            &b"plain/a.go"[..],
            b"bad\xffutf8",
            b"w\xe4rker",
            b"\xc3",
            b"ok\xc3\xa4\xff",
        ] {
            let s = from_go_bytes(b);
            assert_eq!(&*to_go_bytes(&s), b, "{s:?}");
        }
        assert_eq!(from_go_bytes("ä".as_bytes()), "ä");
    }
}
