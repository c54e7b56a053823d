//! Go source facts for covfleet's instrumentation.
//!
//! - [`constraint`]: `//go:build` and `// +build` expressions, evaluated
//!   against a [`BuildContext`] (GOOS, GOARCH, tags, cgo, release tags), plus
//!   the `_GOOS` / `_GOARCH` file-name rules;
//! - [`source`]: file headers (build lines, package clause, imports) and the
//!   scan for top-level `_cov…` identifiers;
//! - [`mod@discover`]: the directory walk that picks the `package main`
//!   directories by Go's own rules (skipping `testdata`, `_`/`.` names,
//!   `vendor`, `node_modules` and nested modules);
//! - [`inject`]: writing and removing the embedded coverage server;
//! - [`shim`]: the `go` wrapper that adds `-cover -covermode=atomic`.

pub mod constraint;
pub mod discover;
mod error;
pub mod inject;
pub mod shim;
pub mod source;

pub use constraint::BuildContext;
pub use discover::{DirInfo, discover};
pub use error::{ConstraintError, Error, HeaderError};
pub use inject::{
    InstrumentReport, Options as InstrumentOptions, SERVER_FILE_NAME, SERVER_SOURCE,
    TESTBINARY_FILE_NAME, TESTBINARY_SOURCE, UndoReport, instrument, instrument_with, undo,
};
