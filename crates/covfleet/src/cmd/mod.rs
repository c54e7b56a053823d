//! One module per subcommand.

pub mod analysis;
pub mod clone_sources;
pub mod collect;
pub mod compile;
pub mod covdata;
pub mod demo;
pub mod diff;
pub mod export;
pub mod go_shim;
pub mod instrument;
pub mod patch;
pub mod render;
pub mod report;
pub mod reset;
