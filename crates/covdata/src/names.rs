//! Names built from untrusted strings: one path component or object-key
//! level, whatever a pod, a cluster or a coverage server calls itself.
//!
//! Shared by the collection directory (`scrape::output`: entry-name parts)
//! and the object-storage layout (`store::layout`: key components), which
//! differ only in their [`NameLimit`].

/// How long a sanitized name may get, and how much of the original's hash
/// a shortened name keeps so that long names stay distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameLimit {
    /// Longest result, in bytes.
    pub max_len: usize,
    /// Hex digits (at most 16) of [`fnv64`] of the original name appended,
    /// after a `-`, to a name that was cut.
    pub hash_digits: usize,
}

/// Makes one name safe as a path component or key level: keeps
/// `[A-Za-z0-9._-]`, maps every other character to `_`, never starts with
/// `.`, never empty, at most `limit.max_len` bytes (a longer name keeps its
/// start and ends with `-` and a hash of the original).
pub fn sanitize(name: &str, limit: NameLimit) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    if s.is_empty() {
        s.push('_');
    }
    if s.len() > limit.max_len {
        let digits = limit.hash_digits.min(16);
        let hash = format!("{:016x}", fnv64(name.as_bytes()));
        // Only ASCII is left: any byte index is a char boundary.
        s.truncate(limit.max_len.saturating_sub(digits + 1));
        s.push('-');
        s.push_str(&hash[..digits]);
    }
    s
}

/// FNV-1a, 64 bits: only for disambiguating names, not for integrity.
pub fn fnv64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY_PART: NameLimit = NameLimit {
        max_len: 80,
        hash_digits: 8,
    };
    const KEY_COMPONENT: NameLimit = NameLimit {
        max_len: 120,
        hash_digits: 16,
    };

    #[test]
    fn fnv64_known_vectors() {
        assert_eq!(fnv64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn short_names_are_only_mapped() {
        for limit in [ENTRY_PART, KEY_COMPONENT] {
            assert_eq!(sanitize("api-7d9f.v2_x", limit), "api-7d9f.v2_x");
            assert_eq!(sanitize("../etc/passwd", limit), "_._etc_passwd");
            assert_eq!(sanitize(".", limit), "_");
            assert_eq!(sanitize("", limit), "_");
            assert_eq!(sanitize("pod/ä b", limit), "pod___b");
        }
    }

    #[test]
    fn long_names_are_cut_to_each_limit_with_a_hash() {
        let long = format!("ns/ééé{}", "x".repeat(200));
        let entry = sanitize(&long, ENTRY_PART);
        assert_eq!(entry.len(), 80);
        assert_eq!(entry, format!("ns____{}-77824b00", "x".repeat(65)));
        let key = sanitize(&long, KEY_COMPONENT);
        assert_eq!(key.len(), 120);
        assert_eq!(key, format!("ns____{}-77824b00b8e0ca83", "x".repeat(97)));
        // Exactly at the limit: kept whole.
        assert_eq!(sanitize(&"y".repeat(80), ENTRY_PART), "y".repeat(80));
        assert_eq!(sanitize(&"y".repeat(120), KEY_COMPONENT), "y".repeat(120));
        // Names that differ only past the cut stay distinct.
        for limit in [ENTRY_PART, KEY_COMPONENT] {
            let a = sanitize(&"a".repeat(200), limit);
            let b = sanitize(&format!("{}b", "a".repeat(199)), limit);
            assert_ne!(a, b);
            assert_eq!((a.len(), b.len()), (limit.max_len, limit.max_len));
        }
    }
}
