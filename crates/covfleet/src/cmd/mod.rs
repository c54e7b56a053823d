//! One module per subcommand.

pub mod agent;
pub mod clone_sources;
pub mod collect;
pub mod compile;
pub mod covdata;
pub mod demo;
pub mod download;
pub mod go_shim;
pub mod instrument;
pub mod render;
pub mod reset;
pub mod upload;
