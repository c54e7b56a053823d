//! The static HTML site of a collection: an index of every (namespace, owner,
//! binary) row and one page per row with annotated source.
//!
//! [`model`] is the plain data the site is made from, [`source`] finds each
//! row's source checkout and maps coverage paths into it, and [`site`] writes
//! the pages (offline, no CDN, rewritten only when their inputs change).

pub mod dbsource;
pub mod history;
pub mod model;
pub mod site;
pub mod source;

pub use dbsource::DbSource;
pub use model::{Block, FileCoverage, MemorySource, OwnerRow, SiteSource};
pub use site::{Options, Summary, render};

pub mod cov;
pub mod diff;
pub mod diff_html;
pub mod export;
pub mod funcs;
pub mod patch;
