//! One module per subcommand.

pub mod clone_sources;
pub mod compile;
pub mod covdata;
pub mod demo;
pub mod render;
