//! covfleet's coverage database: the SQLite schema, the read API the
//! renderer uses ([`Database`]), and the compile pipeline ([`compile()`])
//! that turns a collection directory into `coverage.db`. SQLite only: no
//! network, no async; image lookups come in through [`ImageInspector`].
//!
//! Coverage is stored compactly: each meta-data file once (zlib), each
//! process's counters and each owner's merged counters as one blob (ULEB128
//! and zlib over a dense vector in meta-data order), next to the seed system's
//! tables (`report_sources`, `owners`, `owner_reports`, `owner_file_stats`,
//! `image_sources`, `schema_version`) with their core columns. See
//! `docs/database.md`.

pub mod codec;
pub mod compile;
pub mod entry;
pub mod error;
pub mod inspect;
pub mod labels;
pub mod layout;
pub mod merge;
pub mod owner;
pub mod phases;
pub mod read;
pub mod regular;
pub mod schema;
pub mod textprof;

pub use compile::{CompileOptions, CompileSummary, DB_FILE, ProgressFn, UpdateFilter, compile};
pub use error::Error;
pub use inspect::{ImageInspector, ImageLabels};
pub use labels::Labels;
pub use layout::{INJECTED_PREFIX, is_injected_file};
pub use merge::ReplicaMerge;
pub use phases::{Phase, PhaseOwner};
pub use read::{Block, Database, FileStat, ImageSource, LineCoverage, Owner, Report};
