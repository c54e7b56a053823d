//! Decode errors that say where.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong while decoding coverage data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The data ended before a field was complete (Go: `unexpected EOF`).
    #[error("unexpected EOF")]
    UnexpectedEof,
    /// The meta-data file does not start with `\0cvm`.
    #[error("invalid meta-data file magic string")]
    BadMetaMagic,
    /// A meta-data file version newer than the reader understands.
    #[error("meta-data file with an unknown version {0} (expected 1)")]
    MetaVersion(u32),
    /// The counter file header does not start with `\0cwm`.
    #[error("invalid magic string: not a counter data file")]
    BadCounterMagic,
    /// The counter file footer does not carry `\0cwm`.
    #[error("invalid magic string (not a counter data file)")]
    BadFooterMagic,
    /// A counter file version newer than the reader understands.
    #[error("version data incompatibility: reader is 1 data is {0}")]
    CounterVersion(u32),
    /// The footer says there are no segments.
    #[error("invalid counter data file (no segments)")]
    NoSegments,
    /// A counter flavor other than raw (1) or ULEB128 (2).
    #[error("unknown counter flavor {0}")]
    BadFlavor(u8),
    /// A string-table reference past the end of the table.
    #[error("malformed string table ref {index} (table has {len} strings)")]
    BadStringRef { index: u64, len: usize },
    /// The same key twice in the args table.
    #[error("malformed args table (duplicate key {0:?})")]
    DuplicateArg(String),
    /// `argc` in the args table is not an integer.
    #[error("malformed argc in counter data file args section")]
    BadArgc,
    /// The file-level or counter string table is shorter than its header says.
    #[error("error: short read on string table")]
    ShortStringTable,
    /// The counter file's args table is shorter than its header says.
    #[error("error: short read on args table")]
    ShortArgsTable,
    /// The meta-data header claims more packages than its table can hold.
    #[error("meta-data file claims {claimed} packages but has room for at most {room}")]
    TooManyPackages { claimed: u64, room: u64 },
    /// A package blob's offset or length in the table exceeds the file length
    /// the header records (Go: `insane pkg offset`).
    #[error("insane pkg {field} {index}: {value} > totlen {total_len}")]
    InsaneBlob {
        field: BlobField,
        index: usize,
        value: u64,
        total_len: u64,
    },
    /// A package blob claims more functions than its bytes can hold.
    #[error("package blob claims {claimed} functions but has room for at most {room}")]
    TooManyFuncs { claimed: u64, room: u64 },
    /// A function offset pointing into the blob header or past the blob.
    #[error("malformed func offset {0}")]
    BadFuncOffset(u64),
    /// A function claims more units than its bytes can hold.
    #[error("function claims {claimed} units in {bytes} bytes")]
    TooManyUnits { claimed: u64, bytes: u64 },
    /// A string table claims more strings than its bytes can hold.
    #[error("string table claims {claimed} strings in {bytes} bytes")]
    TooManyStrings { claimed: u64, bytes: u64 },
    /// A counter mode of 0 (unset), which Go cannot report on.
    #[error("counter mode unset in meta-data file")]
    ModeUnset,
}

/// Which field of a meta-data file's package table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobField {
    /// The blob's offset in the file.
    Offset,
    /// The blob's length.
    Length,
}

impl fmt::Display for BlobField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlobField::Offset => "offset",
            BlobField::Length => "length",
        })
    }
}

/// A decode error: what, at which byte offset, in which file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset in the file where the problem was seen, when known.
    pub offset: Option<u64>,
    /// The file, when known.
    pub path: Option<PathBuf>,
}

impl Error {
    pub(crate) fn at(kind: ErrorKind, offset: usize) -> Self {
        Error {
            kind,
            offset: Some(offset as u64),
            path: None,
        }
    }

    /// Attaches the file this error came from.
    #[must_use]
    pub fn with_path(mut self, path: &Path) -> Self {
        self.path = Some(path.to_path_buf());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        if let Some(o) = self.offset {
            write!(f, "at offset {o} (0x{o:x}): ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for Error {}
