//! Facts read from one Go source file: build lines, package clause, whether
//! it imports "C", and top-level `_cov…` identifiers.

use crate::constraint::{
    BuildContext, Expr, go_build_expr, parse_go_build, parse_plus_build, plus_build_expr,
};
use crate::error::{ConstraintError, HeaderError};

/// The build-relevant header of a Go file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The `//go:build` expression, if the file has one.
    pub go_build: Option<String>,
    /// `// +build` expressions (used only when there is no `//go:build`).
    pub plus_build: Vec<String>,
    /// The package clause's name.
    pub package: String,
    /// Whether the file imports "C" (cgo).
    pub imports_c: bool,
}

impl Header {
    /// The file's own constraint as an expression (`None`: none, or a
    /// malformed `//go:build` line, which makes the package broken anyway).
    pub fn condition(&self) -> Option<Expr> {
        if let Some(x) = &self.go_build {
            return parse_go_build(x).ok();
        }
        self.plus_build
            .iter()
            .filter_map(|l| parse_plus_build(l).ok())
            .reduce(Expr::and)
    }

    /// `go/build.Context.shouldBuild`: does the file's constraint hold?
    /// `Err` for a malformed `//go:build` line (go reports the package as broken).
    pub fn should_build(&self, ctx: &BuildContext) -> Result<bool, ConstraintError> {
        if let Some(x) = &self.go_build {
            return Ok(ctx.eval(&parse_go_build(x)?));
        }
        // Malformed +build lines are ignored, as go/build does.
        Ok(self
            .plus_build
            .iter()
            .filter_map(|l| parse_plus_build(l).ok())
            .all(|x| ctx.eval(&x)))
    }
}

/// Parses the header of a Go file: build constraints (by `go/build`'s
/// `parseFileHeader` rules), the package clause and the imports.
pub fn parse_header(src: &[u8]) -> Result<Header, HeaderError> {
    let src = src.strip_prefix(b"\xef\xbb\xbf").unwrap_or(src); // a UTF-8 BOM is allowed
    let (end, go_build) = build_lines(src)?;
    let mut plus_build = Vec::new();
    if go_build.is_none() {
        for line in src[..end].split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line);
            let line = line.trim();
            if line.starts_with("//")
                && line.contains("+build")
                && let Some(x) = plus_build_expr(line)
            {
                plus_build.push(x.to_string());
            }
        }
    }
    let mut lx = Lexer::new(src);
    let mut first = lx.next();
    while first == Some(Tok::Punct(b';')) {
        first = lx.next();
    }
    match first {
        Some(Tok::Ident(s, _)) if s == b"package" => {}
        _ => return Err(HeaderError::NoPackageClause),
    }
    let package = match lx.next() {
        Some(Tok::Ident(s, _)) => String::from_utf8_lossy(s).into_owned(),
        _ => return Err(HeaderError::NoPackageName),
    };
    let imports_c = imports_c(&mut lx);
    Ok(Header {
        go_build,
        plus_build,
        package,
        imports_c,
    })
}

/// Returns (end of the region where `// +build` lines count, the `//go:build` expression).
fn build_lines(content: &[u8]) -> Result<(usize, Option<String>), HeaderError> {
    let mut end = 0;
    let mut p = content;
    let mut ended = false;
    let mut in_slash_star = false;
    let mut go_build: Option<String> = None;
    'lines: while !p.is_empty() {
        let mut line;
        match p.iter().position(|&b| b == b'\n') {
            Some(i) => {
                line = &p[..i];
                p = &p[i + 1..];
            }
            None => {
                line = p;
                p = &p[p.len()..];
            }
        }
        line = line.trim_ascii();
        if line.is_empty() && !ended {
            end = content.len() - p.len();
            continue;
        }
        if !line.starts_with(b"//") {
            ended = true;
        }
        if !in_slash_star {
            let text = String::from_utf8_lossy(line);
            if let Some(x) = go_build_expr(&text) {
                if go_build.is_some() {
                    return Err(HeaderError::MultipleGoBuild);
                }
                go_build = Some(x.to_string());
            }
        }
        loop {
            if line.is_empty() {
                continue 'lines;
            }
            if in_slash_star {
                match find(line, b"*/") {
                    Some(i) => {
                        in_slash_star = false;
                        line = line[i + 2..].trim_ascii();
                        continue;
                    }
                    None => continue 'lines,
                }
            }
            if line.starts_with(b"//") {
                continue 'lines;
            }
            if line.starts_with(b"/*") {
                in_slash_star = true;
                line = line[2..].trim_ascii();
                continue;
            }
            break 'lines;
        }
    }
    Ok((end, go_build))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn imports_c(lx: &mut Lexer) -> bool {
    let mut found = false;
    loop {
        let mut t = lx.next();
        while matches!(t, Some(Tok::Punct(b';'))) {
            t = lx.next();
        }
        match t {
            Some(Tok::Ident(s, _)) if s == b"import" => {}
            _ => return found,
        }
        match lx.next() {
            Some(Tok::Punct(b'(')) => loop {
                match lx.next() {
                    Some(Tok::Str(s)) => found |= s == b"C",
                    Some(Tok::Punct(b')')) | None => break,
                    _ => {}
                }
            },
            Some(Tok::Str(s)) => found |= s == b"C",
            Some(_) => {
                if let Some(Tok::Str(s)) = lx.next() {
                    found |= s == b"C";
                }
            }
            None => return found,
        }
    }
}

/// The first top-level `_cov…` identifier a file declares (or refers to at
/// package level), with its 1-based line: such a name could collide with the
/// injected server's. Identifiers inside function bodies, parameter lists,
/// struct/interface bodies and composite literals do not count.
pub fn top_level_cov_identifier(src: &[u8]) -> Option<(usize, String)> {
    let mut lx = Lexer::new(src);
    let mut braces = 0usize;
    let mut brackets = 0usize;
    // One entry per open parenthesis: true when it opens a grouped
    // declaration (`var (`, `const (`, `type (`, `import (`) at top level.
    let mut parens: Vec<bool> = Vec::new();
    let mut prev_decl_kw = false;
    while let Some(t) = lx.next() {
        let top = braces == 0 && brackets == 0 && parens.iter().all(|&g| g);
        let mut decl_kw = false;
        match t {
            Tok::Punct(b'{') => braces += 1,
            Tok::Punct(b'}') => braces = braces.saturating_sub(1),
            Tok::Punct(b'[') => brackets += 1,
            Tok::Punct(b']') => brackets = brackets.saturating_sub(1),
            Tok::Punct(b'(') => parens.push(prev_decl_kw && top),
            Tok::Punct(b')') => {
                parens.pop();
            }
            Tok::Ident(s, line) => {
                if top && s.starts_with(b"_cov") {
                    return Some((line, String::from_utf8_lossy(s).into_owned()));
                }
                decl_kw = top && matches!(s, b"var" | b"const" | b"type" | b"import");
            }
            _ => {}
        }
        prev_decl_kw = decl_kw;
    }
    None
}

#[derive(Debug, PartialEq, Eq)]
enum Tok<'a> {
    /// An identifier or keyword, with its line.
    Ident(&'a [u8], usize),
    /// The contents of a string literal (escapes not processed).
    Str(&'a [u8]),
    Number,
    Char,
    /// Punctuation; `;` also stands for a newline.
    Punct(u8),
}

/// A forgiving Go lexer: enough to find identifiers outside comments,
/// strings and runes, and the structure of the import block.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a [u8]) -> Self {
        Lexer { s, pos: 0, line: 1 }
    }

    fn next(&mut self) -> Option<Tok<'a>> {
        let s = self.s;
        loop {
            let c = *s.get(self.pos)?;
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                    return Some(Tok::Punct(b';'));
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'/' if s.get(self.pos + 1) == Some(&b'/') => {
                    while self.pos < s.len() && s[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b'/' if s.get(self.pos + 1) == Some(&b'*') => {
                    self.pos += 2;
                    while self.pos < s.len()
                        && !(s[self.pos] == b'*' && s.get(self.pos + 1) == Some(&b'/'))
                    {
                        if s[self.pos] == b'\n' {
                            self.line += 1;
                        }
                        self.pos += 1;
                    }
                    self.pos = (self.pos + 2).min(s.len());
                }
                b'"' | b'\'' => {
                    self.pos += 1;
                    let start = self.pos;
                    while self.pos < s.len() && s[self.pos] != c && s[self.pos] != b'\n' {
                        if s[self.pos] == b'\\' {
                            self.pos += 1;
                        }
                        self.pos += 1;
                    }
                    let end = self.pos.min(s.len());
                    self.pos = (self.pos + 1).min(s.len());
                    return Some(if c == b'"' {
                        Tok::Str(&s[start..end])
                    } else {
                        Tok::Char
                    });
                }
                b'`' => {
                    self.pos += 1;
                    let start = self.pos;
                    while self.pos < s.len() && s[self.pos] != b'`' {
                        if s[self.pos] == b'\n' {
                            self.line += 1;
                        }
                        self.pos += 1;
                    }
                    let end = self.pos;
                    self.pos = (self.pos + 1).min(s.len());
                    return Some(Tok::Str(&s[start..end]));
                }
                c if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 => {
                    let start = self.pos;
                    while self.pos < s.len()
                        && (s[self.pos] == b'_'
                            || s[self.pos].is_ascii_alphanumeric()
                            || s[self.pos] >= 0x80)
                    {
                        self.pos += 1;
                    }
                    return Some(Tok::Ident(&s[start..self.pos], self.line));
                }
                c if c.is_ascii_digit() => {
                    while self.pos < s.len()
                        && (s[self.pos].is_ascii_alphanumeric()
                            || matches!(s[self.pos], b'.' | b'_'))
                    {
                        self.pos += 1;
                    }
                    return Some(Tok::Number);
                }
                _ => {
                    self.pos += 1;
                    return Some(Tok::Punct(c));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h = parse_header(b"// Copyright\n\n//go:build linux && !cgo\n\n// Package doc\npackage main\n\nimport \"C\"\n").unwrap();
        assert_eq!(h.go_build.as_deref(), Some("linux && !cgo"));
        assert_eq!(h.package, "main");
        assert!(h.imports_c);

        let h = parse_header(b"// +build tools\n\npackage main\n\nimport (\n\t_ \"fmt\"\n\tc `C`\n)\nfunc main(){}\n").unwrap();
        assert_eq!(h.plus_build, vec!["tools".to_string()]);
        assert!(h.imports_c);

        // A +build line not followed by a blank line is package doc, not a constraint.
        let h = parse_header(b"// +build tools\npackage main\n").unwrap();
        assert!(h.plus_build.is_empty());

        // //go:build wins over +build.
        let h = parse_header(b"//go:build linux\n// +build ignore\n\npackage x\n").unwrap();
        assert_eq!(h.go_build.as_deref(), Some("linux"));
        assert!(h.plus_build.is_empty());

        // Block comments before the clause.
        let h = parse_header(
            b"/* a\n b */ /* c */\n//go:build ignore\n\npackage /* x */ gen\nimport \"fmt\"\n",
        )
        .unwrap();
        assert_eq!(h.go_build.as_deref(), Some("ignore"));
        assert_eq!(h.package, "gen");
        assert!(!h.imports_c);

        let h = parse_header(b"\xef\xbb\xbf//go:build linux\r\n\r\npackage main\r\n").unwrap();
        assert_eq!(
            (h.go_build.as_deref(), h.package.as_str()),
            (Some("linux"), "main")
        );

        assert_eq!(
            parse_header(b"//go:build a\n//go:build b\n\npackage x\n").unwrap_err(),
            HeaderError::MultipleGoBuild
        );
        assert_eq!(
            parse_header(b"// nothing\n").unwrap_err(),
            HeaderError::NoPackageClause
        );
        assert_eq!(
            parse_header(b"package\n").unwrap_err(),
            HeaderError::NoPackageName
        );
    }

    #[test]
    fn cov_identifiers() {
        let none: &[&[u8]] = &[
            b"package main\nfunc f(_covA int) { var _covB = 1; _ = _covB }\n",
            b"package main\ntype T struct { _covX int }\n",
            b"package main\n// var _covX\nvar s = \"_covX\"\nvar r = `_covY`\n",
            b"package main\nvar x = []int{_covZ: 1}\n",
            b"package main\nfunc g() (_covR int) { return }\n",
        ];
        for src in none {
            assert_eq!(
                top_level_cov_identifier(src),
                None,
                "{}",
                String::from_utf8_lossy(src)
            );
        }
        let some: &[(&[u8], usize, &str)] = &[
            (b"package main\n\nvar _covPort = 1\n", 3, "_covPort"),
            (
                b"package main\nvar (\n\tx = 1\n\t_covA, y = 2, 3\n)\n",
                4,
                "_covA",
            ),
            (
                b"package main\nimport _covHTTP \"net/http\"\n",
                2,
                "_covHTTP",
            ),
            (b"package main\nfunc _covStart() {}\n", 2, "_covStart"),
            (b"package main\ntype _covT int\n", 2, "_covT"),
            (b"package main\nconst (\n\ta = iota\n\t_cov\n)\n", 4, "_cov"),
        ];
        for (src, line, ident) in some {
            assert_eq!(
                top_level_cov_identifier(src),
                Some((*line, ident.to_string())),
                "{}",
                String::from_utf8_lossy(src)
            );
        }
    }
}
