use std::path::PathBuf;

/// Errors of this crate; each names the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The package declares a name the injected server uses.
    #[error(
        "{path}:{line}: the package already declares `{ident}`; the coverage server's \
         `_cov…` names would collide, so this directory is not instrumented"
    )]
    CovIdentifier {
        path: PathBuf,
        line: usize,
        ident: String,
    },
    /// A file with a name covfleet writes exists but covfleet did not write it.
    #[error("{path}: exists but was not written by covfleet; refusing to touch it")]
    NotOurs { path: PathBuf },
    /// A `-coverpkg` setting with characters no package pattern has.
    #[error("-coverpkg {value:?}: package patterns are import paths and `...`, comma-separated")]
    CoverPkg { value: String },
    /// The path given as a directory is not one.
    #[error("{path}: not a directory")]
    NotADir { path: PathBuf },
}

/// Why a build-constraint expression does not parse (the text is quoted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// A `// +build` tag with characters Go does not allow.
    #[error("invalid tag {tag:?} in +build line")]
    InvalidTag { tag: String },
    /// A `// +build` clause with nothing between commas.
    #[error("empty clause in +build line")]
    EmptyClause,
    /// A `// +build` line with no expression.
    #[error("empty +build line")]
    Empty,
    /// A `//go:build` expression with `found` where it cannot be.
    #[error("unexpected {found:?} in //go:build {expr}")]
    Unexpected { found: String, expr: String },
    /// A `//go:build` expression with an unclosed parenthesis.
    #[error("missing ) in //go:build {expr}")]
    MissingParen { expr: String },
    /// A `//go:build` expression that ends after an operator.
    #[error("unexpected end of expression in //go:build {expr}")]
    UnexpectedEnd { expr: String },
}

/// Why the header of a Go file (constraints, package clause) does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// More than one `//go:build` line.
    #[error("multiple //go:build comments")]
    MultipleGoBuild,
    /// The file does not start with `package`.
    #[error("expected the package clause")]
    NoPackageClause,
    /// `package` without a name.
    #[error("expected a package name after `package`")]
    NoPackageName,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
