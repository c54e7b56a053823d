//! The legacy text profile (`go test -coverprofile`, `covdata textfmt`):
//! a `mode: M` line, then `file:SL.SC,EL.EC NumStmt Count` lines.
//!
//! Parsing follows `golang.org/x/tools/cover.ParseProfiles`: lines are parsed
//! right to left (file names may contain `:`), blocks are grouped per file,
//! sorted by start, and adjacent blocks with the same range are merged (OR in
//! set mode, sum otherwise). covfleet additionally accepts repeated identical
//! `mode:` lines, as produced by concatenating profiles.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::meta::CounterMode;

pub use crate::block::Block;

/// A parsed text profile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    /// `set`, `count` or `atomic` (kept as written).
    pub mode: String,
    /// Blocks per file name, files sorted by name, blocks by (start line, column).
    pub files: BTreeMap<String, Vec<Block>>,
}

/// A text profile that could not be read, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ProfileError {
    pub line: usize,
    pub message: String,
}

fn parse_line(line: &str) -> Option<(&str, Block)> {
    // Right to left: count, stmts, then "SL.SC,EL.EC", then ':' and the name.
    let (rest, count) = line.rsplit_once(' ')?;
    let (rest, stmts) = rest.rsplit_once(' ')?;
    let (name, range) = rest.rsplit_once(':')?;
    let (start, end) = range.split_once(',')?;
    let (sl, sc) = start.split_once('.')?;
    let (el, ec) = end.split_once('.')?;
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if name.is_empty() {
        return None;
    }
    let count_ok = !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit());
    Some((
        name,
        Block {
            st_line: num(sl)?,
            st_col: num(sc)?,
            en_line: num(el)?,
            en_col: num(ec)?,
            stmts: num(stmts)?,
            // Go parses counts as int: at most 2^63-1.
            count: if count_ok {
                count.parse::<i64>().ok()? as u64
            } else {
                return None;
            },
        },
    ))
}

impl Profile {
    /// Parses a whole profile.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let mut mode: Option<String> = None;
        let mut files: BTreeMap<String, Vec<Block>> = BTreeMap::new();
        // Lines as Go's bufio.Scanner splits them: at '\n', dropping one '\r'.
        let body = text.strip_suffix('\n').unwrap_or(text);
        for (i, line) in body.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Some(m) = line.strip_prefix("mode: ") {
                match &mode {
                    // A mode with control characters could not be written
                    // back; Go's reader would take it, covfleet refuses it.
                    None if !m.is_empty() && !m.chars().any(char::is_control) => {
                        mode = Some(m.to_string());
                        continue;
                    }
                    Some(prev) if prev == m => continue,
                    Some(prev) => {
                        return Err(ProfileError {
                            line: i + 1,
                            message: format!("mode {m:?} differs from the earlier mode {prev:?}"),
                        });
                    }
                    None => {}
                }
            }
            if mode.is_none() {
                return Err(ProfileError {
                    line: i + 1,
                    message: format!("bad mode line: {line}"),
                });
            }
            if line.is_empty() {
                continue;
            }
            let (name, block) = parse_line(line).ok_or_else(|| ProfileError {
                line: i + 1,
                message: format!("line {line:?} doesn't match expected format"),
            })?;
            files.entry(name.to_string()).or_default().push(block);
        }
        let Some(mode) = mode else {
            return Err(ProfileError {
                line: 1,
                message: "bad mode line: (empty profile)".into(),
            });
        };
        let set = mode == "set";
        for blocks in files.values_mut() {
            blocks.sort_by_key(|b| (b.st_line, b.st_col));
            let mut out: Vec<Block> = Vec::with_capacity(blocks.len());
            for b in blocks.drain(..) {
                if let Some(last) = out.last_mut()
                    && (last.st_line, last.st_col, last.en_line, last.en_col)
                        == (b.st_line, b.st_col, b.en_line, b.en_col)
                {
                    if last.stmts != b.stmts {
                        return Err(ProfileError {
                            line: 0,
                            message: format!(
                                "inconsistent NumStmt: changed from {} to {}",
                                last.stmts, b.stmts
                            ),
                        });
                    }
                    if set {
                        last.count |= b.count;
                    } else {
                        // Go adds ints (wrapping past 2^63); covfleet saturates.
                        last.count = last.count.saturating_add(b.count);
                    }
                    continue;
                }
                out.push(b);
            }
            *blocks = out;
        }
        Ok(Profile { mode, files })
    }

    /// Merges another profile into this one (same semantics as parsing both
    /// concatenated).
    pub fn merge(&mut self, other: &Profile) -> Result<(), ProfileError> {
        if self.mode.is_empty() {
            self.mode = other.mode.clone();
        } else if !other.mode.is_empty() && other.mode != self.mode {
            return Err(ProfileError {
                line: 1,
                message: format!(
                    "mode {:?} differs from the earlier mode {:?}",
                    other.mode, self.mode
                ),
            });
        }
        let mut text = self.to_text();
        for line in other.to_text().lines().skip(1) {
            text.push_str(line);
            text.push('\n');
        }
        *self = Profile::parse(&text)?;
        Ok(())
    }

    /// Writes the profile back out.
    pub fn to_text(&self) -> String {
        let mut s = format!("mode: {}\n", self.mode);
        for (name, blocks) in &self.files {
            for b in blocks {
                let _ = writeln!(
                    s,
                    "{name}:{}.{},{}.{} {} {}",
                    b.st_line, b.st_col, b.en_line, b.en_col, b.stmts, b.count
                );
            }
        }
        s
    }

    /// The counter mode, when it is one Go knows.
    pub fn counter_mode(&self) -> Option<CounterMode> {
        CounterMode::parse(&self.mode)
    }

    /// (covered, total) statements over the whole profile.
    pub fn stmt_totals(&self) -> (u64, u64) {
        let (mut c, mut t) = (0, 0);
        for b in self.files.values().flatten() {
            t += u64::from(b.stmts);
            if b.count != 0 {
                c += u64::from(b.stmts);
            }
        }
        (c, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_merges_and_writes() {
        let p = Profile::parse(
            "mode: count\nc:/x:y.go:3.1,4.2 1 2\na.go:1.1,2.2 2 0\nc:/x:y.go:3.1,4.2 1 5\n",
        )
        .expect("valid");
        assert_eq!(p.files["c:/x:y.go"][0].count, 7);
        assert_eq!(
            p.to_text(),
            "mode: count\na.go:1.1,2.2 2 0\nc:/x:y.go:3.1,4.2 1 7\n"
        );
        assert_eq!(p.stmt_totals(), (1, 3));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Profile::parse("a.go:1.1,2.2 1 1\n").is_err());
        assert!(Profile::parse("mode: set\na.go:1.1,2.2 1 -1\n").is_err());
        assert!(Profile::parse("mode: set\na.go:1.1,2.2 1 1\na.go:1.1,2.2 2 1\n").is_err());
    }
}
