//! Textual edits of a pull secret (a Docker `config.json`): the
//! `auths.<name>` member is added, replaced or removed, and every other byte
//! of the document stays exactly as it was (key order, whitespace, escapes).
//!
//! The document is first validated with `serde_json`; the small scanner here
//! then only has to find spans in text known to be valid JSON.

use std::ops::Range;

/// Why a pull secret cannot be edited. Messages never quote the document.
#[derive(Debug, thiserror::Error)]
pub enum SpliceError {
    /// The input is not JSON.
    #[error("the pull secret is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The top level is not an object.
    #[error("the pull secret is not a JSON object")]
    NotObject,
    /// `auths` is present but not an object.
    #[error("the pull secret's \"auths\" is not an object")]
    AuthsNotObject,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The entry was not there and was added.
    Added,
    /// The entry was there and was replaced (with the same or another value).
    Replaced,
    /// The entry was removed.
    Removed,
    /// `--remove` and the entry was not there: nothing changed.
    Absent,
}

/// One member of an object: its whole span (key through value), the key's
/// decoded text and the value's span.
struct Member {
    whole: Range<usize>,
    key: String,
    value: Range<usize>,
}

/// An object's members and the offset of its closing `}`.
struct Object {
    members: Vec<Member>,
    close: usize,
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    /// Skips a string starting at `"`; returns its span including quotes.
    fn string(&mut self) -> Range<usize> {
        let start = self.i;
        self.i += 1;
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    break;
                }
                _ => self.i += 1,
            }
        }
        start..self.i
    }

    /// Skips any value; returns its span.
    fn value(&mut self) -> Range<usize> {
        self.ws();
        let start = self.i;
        match self.s.get(self.i) {
            Some(b'"') => {
                self.string();
            }
            Some(b'{') | Some(b'[') => {
                let mut depth = 0usize;
                while self.i < self.s.len() {
                    match self.s[self.i] {
                        b'"' => {
                            self.string();
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                while self.i < self.s.len()
                    && !matches!(
                        self.s[self.i],
                        b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    self.i += 1;
                }
            }
        }
        start..self.i
    }

    /// Reads the object starting at the current `{`.
    fn object(&mut self) -> Object {
        self.i += 1;
        let mut members = Vec::new();
        loop {
            self.ws();
            match self.s.get(self.i) {
                Some(b'}') | None => break,
                Some(b',') => {
                    self.i += 1;
                    continue;
                }
                _ => {}
            }
            let key_span = self.string();
            let key =
                serde_json::from_slice::<String>(&self.s[key_span.clone()]).unwrap_or_default();
            self.ws();
            self.i += 1; // ':'
            let value = self.value();
            members.push(Member {
                whole: key_span.start..value.end,
                key,
                value,
            });
        }
        Object {
            members,
            close: self.i,
        }
    }
}

/// Sets (`Some(value_json)`) or removes (`None`) `auths.<name>` in `doc`,
/// keeping every other byte. `value_json` is inserted as given.
pub fn apply(
    doc: &str,
    name: &str,
    value_json: Option<&str>,
) -> Result<(String, Change), SpliceError> {
    let parsed: serde_json::Value = serde_json::from_str(doc).map_err(SpliceError::NotJson)?;
    let Some(top) = parsed.as_object() else {
        return Err(SpliceError::NotObject);
    };
    if top.get("auths").is_some_and(|a| !a.is_object()) {
        return Err(SpliceError::AuthsNotObject);
    }
    let key_json = serde_json::to_string(name).unwrap_or_default();
    let mut sc = Scanner {
        s: doc.as_bytes(),
        i: 0,
    };
    sc.ws();
    let top = sc.object();
    // The last "auths" wins, like serde_json's own reading of duplicates.
    let Some(auths) = top.members.iter().rev().find(|m| m.key == "auths") else {
        let Some(value) = value_json else {
            return Ok((doc.to_string(), Change::Absent));
        };
        let member = format!("\"auths\":{{{key_json}:{value}}}");
        return Ok((insert_member(doc, &top, &member), Change::Added));
    };
    let mut sc = Scanner {
        s: doc.as_bytes(),
        i: auths.value.start,
    };
    let obj = sc.object();
    let found: Vec<&Member> = obj.members.iter().filter(|m| m.key == name).collect();
    match (found.is_empty(), value_json) {
        (true, None) => Ok((doc.to_string(), Change::Absent)),
        (true, Some(value)) => {
            let member = format!("{key_json}:{value}");
            Ok((insert_member(doc, &obj, &member), Change::Added))
        }
        (false, Some(value)) => {
            // Replace the last occurrence's value; drop earlier duplicates.
            let last = found[found.len() - 1];
            let mut out = doc.to_string();
            out.replace_range(last.value.clone(), value);
            for m in found[..found.len() - 1].iter().rev() {
                out.replace_range(removal_span(doc, &obj, m), "");
            }
            Ok((out, Change::Replaced))
        }
        (false, None) => {
            let mut out = doc.to_string();
            for m in found.iter().rev() {
                out.replace_range(removal_span(doc, &obj, m), "");
            }
            Ok((out, Change::Removed))
        }
    }
}

/// Inserts `member` as the object's last member, before its `}`.
fn insert_member(doc: &str, obj: &Object, member: &str) -> String {
    let mut out = doc.to_string();
    match obj.members.last() {
        Some(last) => out.insert_str(last.whole.end, &format!(",{member}")),
        None => out.insert_str(obj.close, member),
    }
    out
}

/// The span to delete for `m`: the member and the comma joining it to a
/// neighbour (the preceding one, or the following one for the first member).
fn removal_span(doc: &str, obj: &Object, m: &Member) -> Range<usize> {
    let b = doc.as_bytes();
    let idx = obj
        .members
        .iter()
        .position(|x| x.whole == m.whole)
        .unwrap_or(0);
    if idx > 0 {
        let prev = &obj.members[idx - 1];
        prev.whole.end..m.whole.end
    } else if let Some(next) = obj.members.get(1) {
        m.whole.start..next.whole.start
    } else {
        // The only member: remove it and surrounding whitespace inside {}.
        let mut start = m.whole.start;
        while start > 0 && b[start - 1] != b'{' {
            start -= 1;
        }
        start..obj.close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "cluster-code-coverage.openshift.io";

    #[test]
    fn adds_keeping_every_other_byte() {
        let doc = "{ \"auths\" : {\n  \"quay.io\": {\"auth\":\"eDp5\", \"email\": \"\\u00e9t\\u00e9\"},\n  \"z\\u002eio\" : {}\n }, \"zz\": [1, 2.50]}\n";
        let (out, ch) = apply(doc, E, Some(r#"{"auth":"QQ=="}"#)).unwrap();
        assert_eq!(ch, Change::Added);
        assert!(out.starts_with("{ \"auths\" : {\n  \"quay.io\": {\"auth\":\"eDp5\", \"email\": \"\\u00e9t\\u00e9\"},\n  \"z\\u002eio\" : {}"));
        assert!(out.ends_with(" }, \"zz\": [1, 2.50]}\n"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["auths"][E]["auth"], "QQ==");
        // Removing again gives back the original bytes.
        let (back, ch) = apply(&out, E, None).unwrap();
        assert_eq!(ch, Change::Removed);
        assert_eq!(back, doc);
    }

    #[test]
    fn replaces_in_place_and_handles_escaped_keys() {
        let doc = r#"{"auths":{"cluster-code-coverage\u002eopenshift.io":{"auth":"old"},"b":{"auth":"x"}}}"#;
        let (out, ch) = apply(doc, E, Some(r#"{"auth":"new"}"#)).unwrap();
        assert_eq!(ch, Change::Replaced);
        assert_eq!(
            out,
            r#"{"auths":{"cluster-code-coverage\u002eopenshift.io":{"auth":"new"},"b":{"auth":"x"}}}"#
        );
        let (out, ch) = apply(&out, E, None).unwrap();
        assert_eq!(ch, Change::Removed);
        assert_eq!(out, r#"{"auths":{"b":{"auth":"x"}}}"#);
    }

    #[test]
    fn empty_and_missing_auths() {
        let (out, _) = apply("{\"auths\": {}}", E, Some("{}")).unwrap();
        assert_eq!(out, format!("{{\"auths\": {{\"{E}\":{{}}}}}}"));
        let (out, _) = apply("{\"x\": 1}", E, Some("{}")).unwrap();
        assert_eq!(out, format!("{{\"x\": 1,\"auths\":{{\"{E}\":{{}}}}}}"));
        let (out, _) = apply("{}", E, Some("{}")).unwrap();
        assert_eq!(out, format!("{{\"auths\":{{\"{E}\":{{}}}}}}"));
        let (out, ch) = apply("{\"auths\":{\"a\":{}}}", E, None).unwrap();
        assert_eq!(
            (out.as_str(), ch),
            ("{\"auths\":{\"a\":{}}}", Change::Absent)
        );
        let (out, _) = apply(&format!("{{\"auths\": {{ \"{E}\": {{}} }} }}"), E, None).unwrap();
        assert_eq!(out, "{\"auths\": {} }");
        let (out, _) = apply(&format!("{{\"auths\":{{\"{E}\":{{}}, \"b\":1}}}}"), E, None).unwrap();
        assert_eq!(out, "{\"auths\":{\"b\":1}}");
    }

    #[test]
    fn bad_documents_are_errors() {
        assert!(matches!(apply("{", E, None), Err(SpliceError::NotJson(_))));
        assert!(matches!(apply("[]", E, None), Err(SpliceError::NotObject)));
        assert!(matches!(
            apply("{\"auths\":[]}", E, None),
            Err(SpliceError::AuthsNotObject)
        ));
    }
}
