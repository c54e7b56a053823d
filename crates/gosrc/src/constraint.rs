//! Build constraints as `go/build` evaluates them.
//!
//! The known GOOS/GOARCH lists and the `unix` set follow Go's
//! `internal/syslist` (formerly `go/build/syslist.go`); tag matching follows
//! `go/build.Context.matchTag`, file names `goodOSArchFile`.

use crate::error::ConstraintError;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Every GOOS Go knows (a `_GOOS` file-name suffix is a constraint only for these).
pub const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

/// The GOOS values that satisfy the `unix` build tag.
pub const UNIX_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "linux",
    "netbsd",
    "openbsd",
    "solaris",
];

/// Every GOARCH Go knows.
pub const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// What a build is for: the facts build constraints are evaluated against.
#[derive(Debug)]
pub struct BuildContext {
    pub goos: String,
    pub goarch: String,
    pub cgo_enabled: bool,
    /// User tags (`-tags`), goexperiment tags and GOARCH feature tags.
    pub tags: BTreeSet<String>,
    /// Highest N for which the release tag `go1.N` holds; asked from
    /// `go env GOVERSION` on first need when `None`.
    go_minor: OnceLock<u32>,
}

impl BuildContext {
    /// A context with explicit values and no release-tag lookup (all `go1.N`
    /// up to `go_minor` hold).
    pub fn new(goos: &str, goarch: &str, cgo_enabled: bool, tags: &[&str], go_minor: u32) -> Self {
        let ctx = BuildContext {
            goos: goos.to_string(),
            goarch: goarch.to_string(),
            cgo_enabled,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            go_minor: OnceLock::new(),
        };
        let _ = ctx.go_minor.set(go_minor);
        ctx
    }

    /// The context the go command would use here: GOOS/GOARCH/CGO_ENABLED/
    /// GOEXPERIMENT/GOAMD64… from the environment, defaulting to the host;
    /// `tags` from the caller, else from `-tags` in GOFLAGS.
    pub fn from_env(tags: &[String]) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (host_os, host_arch) = host_goos_goarch();
        let goos = env("GOOS").unwrap_or_else(|| host_os.to_string());
        let goarch = env("GOARCH").unwrap_or_else(|| host_arch.to_string());
        let cgo_enabled = match env("CGO_ENABLED").as_deref() {
            Some("1") => true,
            Some(_) => false,
            None => goos == host_os && goarch == host_arch && c_compiler_available(&goos),
        };
        let mut set = BTreeSet::new();
        let mut user: Vec<String> = tags.to_vec();
        if user.is_empty()
            && let Some(goflags) = env("GOFLAGS")
        {
            let mut words = goflags.split_whitespace();
            while let Some(w) = words.next() {
                let w = w.trim_start_matches('-');
                if let Some(v) = w.strip_prefix("tags=") {
                    user.push(v.to_string());
                } else if w == "tags"
                    && let Some(v) = words.next()
                {
                    user.push(v.to_string());
                }
            }
        }
        for t in &user {
            // -tags takes a comma-separated list (the old form: spaces).
            for tag in t.split([',', ' ']).filter(|s| !s.is_empty()) {
                set.insert(tag.to_string());
            }
        }
        if let Some(exps) = env("GOEXPERIMENT") {
            for e in exps.split(',').map(str::trim) {
                if !e.is_empty() && !e.starts_with("no") {
                    set.insert(format!("goexperiment.{e}"));
                }
            }
        }
        set.extend(goarch_feature_tags(&goarch, &env));
        BuildContext {
            goos,
            goarch,
            cgo_enabled,
            tags: set,
            go_minor: OnceLock::new(),
        }
    }

    fn go_minor(&self) -> u32 {
        *self.go_minor.get_or_init(|| {
            let out = std::process::Command::new("go")
                .args(["env", "GOVERSION"])
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    parse_go_minor(String::from_utf8_lossy(&o.stdout).trim()).unwrap_or(u32::MAX)
                }
                // No go command: take every release tag as satisfied.
                _ => u32::MAX,
            }
        })
    }

    /// `go/build.Context.matchTag`.
    pub fn match_tag(&self, name: &str) -> bool {
        if name == "cgo" {
            return self.cgo_enabled;
        }
        if name == self.goos || name == self.goarch || name == "gc" {
            return true;
        }
        match (self.goos.as_str(), name) {
            ("android", "linux") | ("illumos", "solaris") | ("ios", "darwin") => return true,
            _ => {}
        }
        if name == "unix" && UNIX_OS.contains(&self.goos.as_str()) {
            return true;
        }
        let name = if name == "boringcrypto" {
            "goexperiment.boringcrypto"
        } else {
            name
        };
        if self.tags.contains(name) {
            return true;
        }
        if let Some(n) = name.strip_prefix("go1.")
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            return n
                .parse::<u32>()
                .is_ok_and(|n| n >= 1 && n <= self.go_minor());
        }
        false
    }

    /// `go/build.Context.goodOSArchFile`: false when the file name carries a
    /// `_GOOS`, `_GOARCH` or `_GOOS_GOARCH` suffix (before an optional
    /// `_test`) that does not match.
    pub fn good_os_arch_file(&self, file_name: &str) -> bool {
        let name = file_name.split('.').next().unwrap_or("");
        let Some(i) = name.find('_') else {
            return true;
        };
        let mut l: Vec<&str> = name[i..].split('_').collect();
        if l.last() == Some(&"test") {
            l.pop();
        }
        let n = l.len();
        if n >= 2 && KNOWN_OS.contains(&l[n - 2]) && KNOWN_ARCH.contains(&l[n - 1]) {
            return self.match_tag(l[n - 1]) && self.match_tag(l[n - 2]);
        }
        if n >= 1 && (KNOWN_OS.contains(&l[n - 1]) || KNOWN_ARCH.contains(&l[n - 1])) {
            return self.match_tag(l[n - 1]);
        }
        true
    }

    pub fn eval(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Tag(t) => self.match_tag(t),
            Expr::Not(x) => !self.eval(x),
            Expr::And(a, b) => self.eval(a) && self.eval(b),
            Expr::Or(a, b) => self.eval(a) || self.eval(b),
        }
    }
}

fn parse_go_minor(v: &str) -> Option<u32> {
    // "go1.26.8", "go1.27rc1", "devel go1.27-abcdef …"
    let i = v.find("go1.")?;
    let rest = &v[i + 4..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// GOOS/GOARCH of the machine covfleet runs on.
pub fn host_goos_goarch() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "loongarch64" => "loong64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        other => other,
    };
    (os, arch)
}

fn c_compiler_available(goos: &str) -> bool {
    let cc = std::env::var("CC").ok().filter(|s| !s.trim().is_empty());
    let name = cc
        .as_deref()
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or(match goos {
            "darwin" | "ios" | "freebsd" | "openbsd" => "clang",
            _ => "gcc",
        })
        .to_string();
    if name.contains('/') {
        return std::path::Path::new(&name).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(&name).is_file()))
}

fn goarch_feature_tags(goarch: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    match goarch {
        "amd64" => {
            let v = env("GOAMD64").unwrap_or_else(|| "v1".into());
            let level = v.trim_start_matches('v').parse::<u32>().unwrap_or(1);
            out.extend((1..=level).map(|i| format!("amd64.v{i}")));
        }
        "arm64" => {
            let v = env("GOARM64").unwrap_or_else(|| "v8.0".into());
            let v = v
                .split(',')
                .next()
                .unwrap_or("v8.0")
                .trim_start_matches('v');
            let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
            let major = major.parse::<u32>().unwrap_or(8);
            let minor = minor.parse::<u32>().unwrap_or(0);
            out.extend((0..=minor).map(|i| format!("arm64.v{major}.{i}")));
            if major == 9 {
                out.extend((0..=(minor + 5).min(9)).map(|i| format!("arm64.v8.{i}")));
            }
        }
        "arm" => {
            let v = env("GOARM").unwrap_or_else(|| "7".into());
            let level = v
                .split(',')
                .next()
                .unwrap_or("7")
                .parse::<u32>()
                .unwrap_or(7);
            out.extend((5..=level).map(|i| format!("arm.{i}")));
        }
        "386" => out.push(format!(
            "386.{}",
            env("GO386").unwrap_or_else(|| "sse2".into())
        )),
        _ => {}
    }
    out
}

/// A parsed build-constraint expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Tag(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl std::fmt::Display for Expr {
    /// Prints the expression in `//go:build` syntax.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Tag(t) => f.write_str(t),
            Expr::Not(x) => match **x {
                Expr::Tag(_) | Expr::Not(_) => write!(f, "!{x}"),
                _ => write!(f, "!({x})"),
            },
            Expr::And(a, b) => {
                for (i, x) in [a, b].into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(" && ")?;
                    }
                    match **x {
                        Expr::Or(..) => write!(f, "({x})")?,
                        _ => write!(f, "{x}")?,
                    }
                }
                Ok(())
            }
            Expr::Or(a, b) => write!(f, "{a} || {b}"),
        }
    }
}

impl Expr {
    pub fn and(a: Expr, b: Expr) -> Expr {
        Expr::And(Box::new(a), Box::new(b))
    }
    pub fn or(a: Expr, b: Expr) -> Expr {
        Expr::Or(Box::new(a), Box::new(b))
    }
}

/// The constraint a file name implies (`x_linux.go` → `linux`,
/// `x_linux_arm64_test.go` → `linux && arm64`), or `None`.
pub fn file_name_expr(file_name: &str) -> Option<Expr> {
    let name = file_name.split('.').next().unwrap_or("");
    let i = name.find('_')?;
    let mut l: Vec<&str> = name[i..].split('_').collect();
    if l.last() == Some(&"test") {
        l.pop();
    }
    let n = l.len();
    let tag = |t: &str| Expr::Tag(t.to_string());
    if n >= 2 && KNOWN_OS.contains(&l[n - 2]) && KNOWN_ARCH.contains(&l[n - 1]) {
        return Some(Expr::and(tag(l[n - 2]), tag(l[n - 1])));
    }
    if n >= 1 && (KNOWN_OS.contains(&l[n - 1]) || KNOWN_ARCH.contains(&l[n - 1])) {
        return Some(tag(l[n - 1]));
    }
    None
}

/// The expression of a `//go:build` line, or `None` when `line` is not one.
pub fn go_build_expr(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("//go:build")?;
    if rest.is_empty() {
        return Some("");
    }
    let trimmed = rest.trim();
    (trimmed.len() < rest.len()).then_some(trimmed)
}

/// The expression text of a `// +build` line, or `None` when it is not one.
pub fn plus_build_expr(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("//")?.trim();
    let rest = rest.strip_prefix("+build")?;
    let trimmed = rest.trim();
    if rest.len() == trimmed.len() && !rest.is_empty() {
        return None;
    }
    Some(trimmed)
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
}

/// Parses a `// +build` expression: space-separated OR of comma-separated AND
/// of possibly `!`-negated tags. `!!x` and a lone `!` mean the tag `ignore`.
pub fn parse_plus_build(text: &str) -> Result<Expr, ConstraintError> {
    let mut x: Option<Expr> = None;
    for clause in text.split_whitespace() {
        let mut y: Option<Expr> = None;
        for lit in clause.split(',') {
            let z = if lit.starts_with("!!") || lit == "!" {
                Expr::Tag("ignore".into())
            } else {
                let (neg, name) = match lit.strip_prefix('!') {
                    Some(n) => (true, n),
                    None => (false, lit),
                };
                if !valid_tag(name) {
                    return Err(ConstraintError::InvalidTag {
                        tag: name.to_string(),
                    });
                }
                let t = Expr::Tag(name.to_string());
                if neg { Expr::Not(Box::new(t)) } else { t }
            };
            y = Some(match y {
                None => z,
                Some(prev) => Expr::And(Box::new(prev), Box::new(z)),
            });
        }
        let y = y.ok_or(ConstraintError::EmptyClause)?;
        x = Some(match x {
            None => y,
            Some(prev) => Expr::Or(Box::new(prev), Box::new(y)),
        });
    }
    x.ok_or(ConstraintError::Empty)
}

/// Parses a `//go:build` expression (`||`, `&&`, `!`, parentheses, tags).
pub fn parse_go_build(text: &str) -> Result<Expr, ConstraintError> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        text,
    };
    let x = p.or()?;
    p.skip_space();
    if p.pos != p.s.len() {
        return Err(ConstraintError::Unexpected {
            found: text[p.pos..].to_string(),
            expr: text.to_string(),
        });
    }
    Ok(x)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t') {
            self.pos += 1;
        }
    }
    fn eat(&mut self, tok: &str) -> bool {
        self.skip_space();
        if self.text[self.pos..].starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<Expr, ConstraintError> {
        let mut x = self.and()?;
        while self.eat("||") {
            x = Expr::Or(Box::new(x), Box::new(self.and()?));
        }
        Ok(x)
    }
    fn and(&mut self) -> Result<Expr, ConstraintError> {
        let mut x = self.not()?;
        while self.eat("&&") {
            x = Expr::And(Box::new(x), Box::new(self.not()?));
        }
        Ok(x)
    }
    fn not(&mut self) -> Result<Expr, ConstraintError> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if self.eat("(") {
            let x = self.or()?;
            if !self.eat(")") {
                return Err(ConstraintError::MissingParen {
                    expr: self.text.to_string(),
                });
            }
            return Ok(x);
        }
        self.skip_space();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest
            .char_indices()
            .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .map_or(rest.len(), |(i, _)| i);
        if len == 0 {
            let expr = self.text.to_string();
            return Err(if rest.is_empty() {
                ConstraintError::UnexpectedEnd { expr }
            } else {
                ConstraintError::Unexpected {
                    found: rest.to_string(),
                    expr,
                }
            });
        }
        self.pos += len;
        Ok(Expr::Tag(rest[..len].to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux() -> BuildContext {
        BuildContext::new("linux", "amd64", true, &["amd64.v1"], 26)
    }

    #[test]
    fn go_build_expressions() {
        let c = linux();
        let cases = [
            ("linux", true),
            ("!linux", false),
            ("linux && amd64", true),
            ("linux && !cgo", false),
            ("windows || (unix && !plan9)", true),
            ("ignore", false),
            ("tools", false),
            ("go1.21 && !go1.27", true),
            ("go1.27", false),
            ("gc", true),
            ("gccgo", false),
            ("amd64.v1 && !amd64.v2", true),
            ("!!linux", true),
        ];
        for (src, want) in cases {
            let x = parse_go_build(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(c.eval(&x), want, "{src}");
        }
        for bad in [
            "",
            "linux &&",
            "(linux",
            "linux)",
            "linux | amd64",
            "a b",
            "linux,amd64",
        ] {
            assert!(parse_go_build(bad).is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn plus_build_expressions() {
        let c = linux();
        let cases = [
            ("linux darwin", true),
            ("linux,386", false),
            ("!windows,amd64 plan9", true),
            ("tools", false),
            ("!!linux", false),
            ("ignore", false),
        ];
        for (src, want) in cases {
            assert_eq!(c.eval(&parse_plus_build(src).unwrap()), want, "{src}");
        }
        assert_eq!(plus_build_expr("// +build linux"), Some("linux"));
        assert_eq!(plus_build_expr("//+build linux"), Some("linux"));
        assert_eq!(plus_build_expr("// +buildlinux"), None);
        assert_eq!(go_build_expr("//go:build linux"), Some("linux"));
        assert_eq!(go_build_expr("//go:buildx"), None);
    }

    #[test]
    fn file_names() {
        let c = linux();
        let android = BuildContext::new("android", "arm64", false, &[], 26);
        let cases = [
            ("main.go", true, true),
            ("main_windows.go", false, false),
            ("main_linux.go", true, true),
            ("main_linux_amd64.go", true, false),
            ("main_linux_arm64.go", false, true),
            ("x_amd64_test.go", true, false),
            ("linux.go", true, true),
            ("foo_bar.go", true, true),
            ("main_unix.go", true, true), // `unix` is not a file-name constraint
            ("a.linux_386.go", true, true), // cut at the first dot
        ];
        for (name, on_linux, on_android) in cases {
            assert_eq!(c.good_os_arch_file(name), on_linux, "{name} on linux/amd64");
            assert_eq!(
                android.good_os_arch_file(name),
                on_android,
                "{name} on android/arm64"
            );
        }
    }

    #[test]
    fn printing_round_trips() {
        for src in [
            "linux",
            "!linux",
            "linux && (amd64 || arm64)",
            "(a || b) && !(c && d)",
            "a || b && c",
            "!!a",
        ] {
            let x = parse_go_build(src).unwrap();
            assert_eq!(
                parse_go_build(&x.to_string()).unwrap(),
                x,
                "{src} printed as {x}"
            );
        }
        assert_eq!(
            file_name_expr("m_linux_arm64_test.go").unwrap().to_string(),
            "linux && arm64"
        );
        assert_eq!(
            file_name_expr("m_windows.go").unwrap().to_string(),
            "windows"
        );
        assert_eq!(file_name_expr("main.go"), None);
        assert_eq!(file_name_expr("linux.go"), None);
    }

    #[test]
    fn go_minor_parsing() {
        assert_eq!(parse_go_minor("go1.26.8"), Some(26));
        assert_eq!(parse_go_minor("go1.27rc1"), Some(27));
        assert_eq!(parse_go_minor("devel go1.28-abc"), Some(28));
        assert_eq!(parse_go_minor("nope"), None);
    }
}
